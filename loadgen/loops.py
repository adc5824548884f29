"""Run one worker: the loop its mode asks for, from the common start time."""

from __future__ import annotations

from collections.abc import Callable

from iobench.loadgen.closed_loop import ClosedLoopWorker
from iobench.loadgen.open_loop import OpenLoopWorker
from iobench.loadgen.plan import WorkerPlan, WorkerResult
from iobench.loadgen.worker import Worker

WORKERS: dict[str, type[Worker]] = {"closed": ClosedLoopWorker, "open": OpenLoopWorker}


def run_worker(plan: WorkerPlan, await_start: Callable[[WorkerResult], int | None]
               ) -> WorkerResult:
    """Connect, report through ``await_start``, and run from the time it returns.

    ``await_start(result)`` sees the result so far (connections up, the first
    connect error, connections starved in the first exchange) and returns the
    common start time, or None when the run is off (no worker could connect,
    or one was starved).
    """
    worker = WORKERS[plan.mode](plan)
    try:
        worker.connect()
        start_ns = await_start(worker.result)
        if start_ns is None:
            return worker.result
        result = worker.run(start_ns)
        worker.check_idle()
        return result
    finally:
        worker.close()
