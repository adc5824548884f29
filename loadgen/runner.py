"""``run(params)``: split the load over worker processes, start them together, merge.

With one worker the loop runs in the calling process (nothing to coordinate,
and the CPU a caller pinned is the CPU it runs on). With more, each worker is
a fresh ``python -m iobench.loadgen.worker_process``: it connects, reports how many
connections it has, and waits; once every worker has reported, the parent
hands out one start time (CLOCK_MONOTONIC is shared by all processes), so
warm-up and the measured window line up across workers. Histograms come back encoded and are merged
with HdrHistogram ``add``, never by averaging percentiles.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from iobench.common.errors import UsageError
from iobench.common.lifeline import spawn_command
from iobench.common.processes import fd_limit_error
from iobench.loadgen.connection_report import connection_fields
from iobench.loadgen.histograms import merge_encoded, summarize
from iobench.loadgen.loops import WORKERS, run_worker
from iobench.loadgen.params import LoadParams, resolve_target, split_evenly
from iobench.loadgen.plan import (
    ERROR_KINDS,
    WorkerPlan,
    WorkerResult,
    plan_to_json,
    result_from_json,
)
from iobench.loadgen.report import ClientReport, LoadReport
from iobench.loadgen.worker import IDLE_ACCEPTS_PER_S

SCHEMA = "iobench.load/1"
EVENT_LOOP = "epoll"
# Head start between handing out the start time and using it, so every worker
# is waiting for it rather than late; a worker in this process needs little.
START_DELAY_NS = 100_000_000
LOCAL_START_DELAY_NS = 10_000_000
# Spawning a worker imports the package; allow for a slow, busy machine.
WORKER_START_S = 30.0
# A worker whose CPU use during the window reaches this share of one core is
# the bottleneck, not the server.
SATURATED_CPU_PERCENT = 90.0
# An open-loop run that sent fewer than this share of its target is behind.
ON_SCHEDULE_RATIO = 0.95
# Descriptors a worker needs beside its connections: epoll, pipes, /proc reads.
FD_HEADROOM = 32


class WorkerFailed(RuntimeError):
    """A worker process crashed or did not answer in time."""


def make_plans(params: LoadParams) -> list[WorkerPlan]:
    """Each worker's connections (global indices) and share of the rate."""
    target = resolve_target(params.target)
    plans = []
    first = 0
    idle_first = 0
    idle_counts = split_evenly(params.idle, params.workers)
    for worker_index, count in enumerate(split_evenly(params.connections, params.workers)):
        rate = None
        if params.rate_rps is not None:
            rate = params.rate_rps * count / params.connections
        plans.append(WorkerPlan(
            worker_index=worker_index, family=target.family, sockaddr=target.sockaddr,
            connection_indices=tuple(range(first, first + count)),
            mode=params.mode, size_bytes=params.size_bytes, expect=params.expect,
            rate_rps=rate, total_rate_rps=params.rate_rps, arrival=params.arrival,
            timeout_s=params.timeout_s, warmup_s=params.warmup_s,
            duration_s=params.duration_s, seed=params.seed,
            idle_first=idle_first, idle_count=idle_counts[worker_index],
            idle_total=params.idle, requests_per_connection=params.requests_per_connection))
        first += count
        idle_first += idle_counts[worker_index]
    return plans


def checked_plans(params: LoadParams) -> list[WorkerPlan]:
    """Each worker's plan, once the busiest worker's connections fit its descriptor limit
    (UsageError if not)."""
    largest_share = (max(split_evenly(params.connections, params.workers))
                     + max(split_evenly(params.idle, params.workers)))
    error = fd_limit_error(largest_share + FD_HEADROOM, "a load worker",
                           ", or split the connections over more --workers")
    if error is not None:
        raise error
    return make_plans(params)


def window_ns(params: LoadParams, start_ns: int) -> tuple[int, int]:
    """The measured window (CLOCK_MONOTONIC ns) of a run that starts at ``start_ns``."""
    measure_ns = start_ns + int(params.warmup_s * 1e9)
    return measure_ns, measure_ns + int(params.duration_s * 1e9)


# Told the measured window's start and end (CLOCK_MONOTONIC nanoseconds) once
# they are set, before it opens.
Announce = Callable[[int, int], None]


def run(params: LoadParams, *, allow_errors: bool = False,
        announce: Announce | None = None) -> LoadReport:
    """Run the load described by ``params``; return its report (``to_json()``: the JSON).

    Raises UsageError for bad parameters or an unresolvable host. A target
    that refuses connections is not an exception: the result says so in
    ``errors.connect`` and ``connect_error``, with ``ok`` false.
    """
    params.validate()
    plans = checked_plans(params)

    def scheduled(start_ns: int | None) -> int | None:
        if start_ns is not None and announce is not None:
            announce(*window_ns(params, start_ns))
        return start_ns

    if len(plans) == 1:
        results = [run_worker(plans[0], lambda ready: scheduled(_start_now(ready)))]
    else:
        results = _run_processes(plans, scheduled)
    return build_result(params, results, allow_errors=allow_errors)


# Told once the connections are up and served once, and then, for each round,
# the round's index and report.
Ready = Callable[[WorkerResult], None]
Finished = Callable[[int, LoadReport], None]


def run_rounds(params: LoadParams, rounds: int, *, ready: Ready, go: Callable[[int], bool],
               announce: Callable[[int, int, int], None], finished: Finished,
               allow_errors: bool = False) -> None:
    """``rounds`` measured windows on the same connections, each when ``go(index)`` allows.

    The connections (idle ones too) are opened and served once, ``ready`` is
    told, and then each round waits for ``go`` (False: stop here), warms up,
    measures, drains and hands its report to ``finished``: a caller measures
    other servers between the rounds without this one reconnecting. One
    worker only (this process). A run called off in the first exchange
    reports so for every round it is asked for.
    """
    params.validate()
    if params.workers != 1:
        raise UsageError("--rounds needs --workers 1: the rounds run in this process")
    plan = checked_plans(params)[0]
    worker = WORKERS[plan.mode](plan)
    try:
        worker.connect()
        on = runnable([worker.result])
        ready(worker.result)
        for index in range(rounds):
            if not go(index):
                return
            if not on:
                finished(index, build_result(params, [worker.result], allow_errors=allow_errors))
                continue
            start_ns = time.monotonic_ns() + LOCAL_START_DELAY_NS
            announce(index, *window_ns(params, start_ns))
            result = worker.run(start_ns)
            worker.check_idle()
            finished(index, build_result(params, [result], allow_errors=allow_errors))
            worker.next_round()
    finally:
        worker.close()


def _start_now(ready: WorkerResult) -> int | None:
    return time.monotonic_ns() + LOCAL_START_DELAY_NS if runnable([ready]) else None


def runnable(ready: list[WorkerResult | dict[str, Any]]) -> bool:
    """Whether the window may start: a connection is up and none was starved (first exchange)."""
    def get(item: WorkerResult | dict[str, Any], name: str) -> int:
        return int(item.get(name, 0) if isinstance(item, dict) else getattr(item, name))
    return (sum(get(item, "connected") for item in ready) > 0
            and sum(get(item, "starved") for item in ready) == 0)


def _read_line(process: subprocess.Popen[str], deadline: float, worker_index: int) -> str:
    """The worker's next line, or WorkerFailed if it dies or keeps silent past ``deadline``."""
    assert process.stdout is not None
    remaining = deadline - time.monotonic()
    ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0.0))
    line = process.stdout.readline() if ready else ""
    if line:
        return line
    if process.poll() is None:
        raise WorkerFailed(f"load worker {worker_index} did not answer in time")
    raise WorkerFailed(f"load worker {worker_index} exited with code {process.returncode}")


def _run_processes(plans: list[WorkerPlan],
                   scheduled: Callable[[int | None], int | None]) -> list[WorkerResult]:
    processes: list[subprocess.Popen[str]] = []
    try:
        for plan in plans:
            # A worker dies with this process, even one killed with SIGKILL.
            process = subprocess.Popen(
                spawn_command([sys.executable, "-m", "iobench.loadgen.worker_process"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write(plan_to_json(plan) + "\n")
            process.stdin.flush()
        plan = plans[0]
        # Connecting, then the first exchange (see Worker.first_exchange_limit_s).
        deadline = (time.monotonic() + WORKER_START_S + 2 * plan.timeout_s
                    + (plan.idle_total + sum(len(p.connection_indices) for p in plans))
                    / IDLE_ACCEPTS_PER_S)
        ready = [json.loads(_read_line(process, deadline, index))
                 for index, process in enumerate(processes)]
        start_ns = scheduled(time.monotonic_ns() + START_DELAY_NS if runnable(ready) else None)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(json.dumps(start_ns) + "\n")
            process.stdin.flush()
        deadline = (time.monotonic() + WORKER_START_S + plan.warmup_s + plan.duration_s
                    + 2 * plan.timeout_s)
        results = [result_from_json(_read_line(process, deadline, index))
                   for index, process in enumerate(processes)]
    except BaseException:
        # Failed or interrupted: the workers' results are of no use any more.
        for process in processes:
            if process.poll() is None:
                process.kill()
        raise
    finally:
        for process in processes:
            _stop(process)
    return results


def _stop(process: subprocess.Popen[str]) -> None:
    """Wait briefly for a worker that has sent its result; kill one that lingers."""
    try:
        process.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def teardown_s(results: list[WorkerResult]) -> float | None:
    """Seconds from the end of the measured window until now (the result is built last).

    The drain, and closing thousands of idle connections, come after the
    window; a caller that times the server from outside (the matrix runner)
    subtracts this to line its window up with the measured one (from another
    host; on this one, :func:`window_monotonic_s` places it exactly). None
    when nothing was measured.
    """
    window = window_monotonic_s(results)
    if window is None:
        return None
    return round(max(time.monotonic() - window[1], 0.0), 6)


def window_monotonic_s(results: list[WorkerResult]) -> list[float] | None:
    """The measured window as [start, end] on this host's CLOCK_MONOTONIC, in seconds.

    Every process on the host reads the same clock, so a caller here (the
    matrix runner) picks its own readings of the server inside exactly this
    window. None when nothing was measured.
    """
    ends = [result for result in results if result.window_end_ns]
    if not ends:
        return None
    last = max(ends, key=lambda result: result.window_end_ns)
    end_s = last.window_end_ns / 1e9
    return [round(end_s - last.measured_s, 6), round(end_s, 6)]


def build_result(params: LoadParams, results: list[WorkerResult], *,
                 allow_errors: bool = False) -> LoadReport:
    """The load report (docs/formats.md) from the workers' results."""
    measured_s = max(result.measured_s for result in results)
    requests = sum(result.requests for result in results)
    throughput = requests / measured_s if measured_s else 0.0
    errors = {kind: sum(result.errors[kind] for result in results) for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    cpu_percent = [round(100.0 * result.cpu_s / measured_s, 1) if measured_s else 0.0
                   for result in results]
    open_loop = params.mode == "open"
    sent = sum(result.sent_in_window for result in results)
    achieved = (sent / measured_s if measured_s else 0.0) if open_loop else throughput
    behind = bool(open_loop and params.rate_rps and achieved < ON_SCHEDULE_RATIO * params.rate_rps)
    latency = summarize(merge_encoded(r.histogram for r in results if r.histogram))
    uncorrected = None
    if open_loop:
        uncorrected = summarize(merge_encoded(
            r.histogram_uncorrected for r in results if r.histogram_uncorrected))
    connected = sum(result.connected for result in results)
    first_errors = [r.first_connect_error for r in results if r.first_connect_error]
    report = LoadReport(
        schema=SCHEMA,
        params=params.record(),
        requests=requests,
        measured_s=round(measured_s, 6),
        throughput_rps=round(throughput, 1),
        latency=latency,
        latency_uncorrected=uncorrected,
        errors=errors,
        client=ClientReport(
            workers=len(results),
            cpu_percent=cpu_percent,
            target_rate_rps=params.rate_rps,
            achieved_rate_rps=round(achieved, 1),
            max_schedule_lag_us=round(max(r.max_schedule_lag_us for r in results), 1),
            event_loop=EVENT_LOOP,
            connected=connected,
            unfinished_requests=sum(result.unfinished for result in results),
            teardown_s=teardown_s(results),
            window_monotonic_s=window_monotonic_s(results),
            idle_connected=sum(result.idle_connected for result in results),
            idle_open=sum(result.idle_open for result in results),
        ),
        client_saturated=any(cpu >= SATURATED_CPU_PERCENT for cpu in cpu_percent),
        behind_schedule=behind,
        connect_error=first_errors[0] if first_errors else None,
        ok=connected > 0 and (errors["total"] == 0 or allow_errors),
    )
    for name, value in connection_fields(params, results, measured_s).items():
        setattr(report, name, value)
    if report.starved is not None and report.starved["when"] == "first exchange":
        report.ok = False  # the run was called off: nothing was measured
    return report
