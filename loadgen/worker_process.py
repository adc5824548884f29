"""``python -m iobench.loadgen.worker_process``: one worker in its own process.

The parent talks to it in JSON lines on stdin and stdout: it writes the plan,
the worker answers with how many connections it opened, the parent writes the
common start time (or null to call the run off), the worker answers with its
result. A fresh interpreter rather than a fork or multiprocessing's spawn, so
neither the caller's threads nor its ``__main__`` module come along.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TextIO

from iobench.loadgen.loops import run_worker
from iobench.loadgen.plan import WorkerResult, plan_from_json


def serve(stdin: TextIO, stdout: TextIO) -> None:
    plan = plan_from_json(stdin.readline())

    def await_start(ready: WorkerResult) -> int | None:
        stdout.write(json.dumps({"connected": ready.connected,
                                 "first_error": ready.first_connect_error,
                                 "starved": ready.starved}) + "\n")
        stdout.flush()
        return json.loads(stdin.readline() or "null")

    result = run_worker(plan, await_start)
    stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
    stdout.flush()


if __name__ == "__main__":
    try:
        serve(sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group; the parent reports it once.
        sys.exit(130)
