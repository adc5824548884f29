"""Closed loop: peak throughput, and the system calls per request behind it."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import Headline, ReportScenario
from iobench.benchmarks.results.loader import CellGroup

THROUGHPUT = "throughput_rps"


def _throughput(group: CellGroup) -> float:
    spread = group.metric(THROUGHPUT)
    return spread.median if spread is not None else 0.0


def _peak(groups: list[CellGroup]) -> CellGroup:
    return max(groups, key=_throughput)


SCENARIO = ReportScenario(
    name="closed",
    title="Closed loop: peak throughput",
    description="Each connection sends a request and waits for the whole response before the "
                "next: the most the server does with that many connections.",
    metrics=(THROUGHPUT, "p50_us", "p99_us", "server_cpu_percent", "cpu_us_per_request",
             "ctx_voluntary_per_request", "syscalls_per_request", "pss_bytes", "peak_threads"),
    key_metric=THROUGHPUT,
    figures=(("throughput_vs_connections", "Peak throughput vs connections (closed loop)"),
             ("memory_threads_vs_connections", "Memory (PSS) and threads vs connections")),
    syscall_tool="perf stat on the syscall tracepoints",
    headlines=(Headline("peak_throughput", THROUGHPUT, "peak closed-loop throughput", _peak),),
)
