"""The neighbour: a CPU-bound reference job that shares the server's CPU.

It makes the cost of burnt CPU concrete. Alone on the server's CPU it does
some number of operations per second; beside a server that waits in the
kernel it should do nearly as many; beside a server that busy-polls, the
scheduler splits the CPU between them and the neighbour loses work even
though the server has no client at all.

``python -m iobench.benchmarks.run.neighbour --duration S [--delay S]`` runs the loop for
S seconds (after an optional delay, so it can line up with a measured load
window) and prints one JSON line: ``{"ops": ..., "elapsed_s": ..., "ops_per_s":
..., "start_s": ..., "bucket_s": ..., "bucket_ops": [...], "cpu_s": ...}`` (``cpu_s``: the
CPU its work took, which the runner counts as the cell's own). The launcher
starts it pinned to the server's CPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

# One operation: a fixed amount of pure-Python arithmetic, about 20-50 us on
# current CPUs, so checking the clock once per operation costs nothing.
OPERATION_SIZE = 500
# Operations are counted per bucket of this length, so parts of a run can be compared.
BUCKET_S = 0.01


def one_operation() -> int:
    total = 0
    for i in range(OPERATION_SIZE):
        total += i * i % 7
    return total


def work_for(duration_s: float, bucket_s: float = BUCKET_S) -> dict[str, Any]:
    """Repeat the operation for ``duration_s``, counting operations per ``bucket_s``.

    The buckets let the runner compare slices of the same run (server running
    or stopped); ``start_s`` is on the system-wide monotonic clock, which the
    runner's clock shares.
    """
    start, cpu_began = time.monotonic(), time.process_time()
    deadline = start + duration_s
    buckets = [0] * (int(duration_s / bucket_s) + 1)
    ops = 0
    while (now := time.monotonic()) < deadline:
        one_operation()
        buckets[int((now - start) / bucket_s)] += 1
        ops += 1
    elapsed = time.monotonic() - start
    return {"ops": ops, "elapsed_s": elapsed, "ops_per_s": ops / elapsed, "start_s": start,
            "bucket_s": bucket_s, "bucket_ops": buckets,
            "cpu_s": time.process_time() - cpu_began}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iobench.benchmarks.run.neighbour",
                                     description="Run the CPU-bound reference job.")
    parser.add_argument("--duration", type=float, required=True, help="seconds of work")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait first")
    args = parser.parse_args(argv)
    time.sleep(args.delay)
    print(json.dumps(work_for(args.duration)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
