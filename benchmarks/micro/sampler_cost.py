"""What the runner's 10 Hz sampling thread costs, watching one server that holds N idle clients.

    python benchmarks/micro/sampler_cost.py MODEL [IDLE] [SECONDS]

Prints the thread's own CPU time (``thread_time``, which other load on the
machine cannot inflate) as a share of one core, and how CPU was counted
(a cgroup when one can be made, else psutil). Run it pinned and on a quiet
machine, e.g. ``taskset -c 1``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time

from iobench.benchmarks.run import accounting
from iobench.benchmarks.run.sampler import Sampler
from iobench.common.lifeline import spawn_command


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, idle = argv[0], int(argv[1]) if len(argv) > 1 else 0
    seconds = float(argv[2]) if len(argv) > 2 else 10.0
    cgroup, note = accounting.create_or_note("sampler-cost")
    procs_file = cgroup.procs_file if cgroup is not None else None
    server = subprocess.Popen(
        spawn_command([sys.executable, "-m", "iobench.servers", model], cgroup_procs=procs_file),
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        with contextlib.ExitStack() as clients:
            for _ in range(idle):
                clients.enter_context(socket.create_connection(("127.0.0.1", port)))
            time.sleep(0.5)
            sampler = Sampler()
            sampler.watch("server", server.pid, cgroup=cgroup)
            with sampler:
                time.sleep(seconds)
        cost = sampler.thread_cpu_percent
        readings = len(sampler.series["server"].readings)
        print(f"{model} with {idle} idle clients: the sampling thread used "
              f"{cost:.2f}% of a core over {seconds:g} s ({readings} readings; "
              f"CPU counted by {sampler.accounting('server')}{'; ' + note if note else ''})")
    finally:
        server.terminate()
        server.wait()
        if cgroup is not None:
            cgroup.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
