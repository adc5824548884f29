"""Closed loop: peak throughput, and the system calls per request behind it."""

from __future__ import annotations

from typing import Any

from iobench.benchmarks.report.plots import (
    multiples_line_figure,
    payload_label,
)
from iobench.benchmarks.report.presentation import (
    style,
)
from iobench.benchmarks.report.scenario import FigureSpec, Headline, ReportScenario
from iobench.benchmarks.results.loader import CellGroup, Run

THROUGHPUT = "throughput_rps"


def _throughput(group: CellGroup) -> float:
    spread = group.metric(THROUGHPUT)
    return spread.median if spread is not None else 0.0


def _peak(groups: list[CellGroup]) -> CellGroup:
    return max(groups, key=_throughput)


def fig_throughput_vs_connections(run: Run) -> Any | None:
    closed = run.scenario("closed")
    if not closed:
        return None
    sizes = sorted({g.size_bytes for g in closed}, key=lambda s: s or 0)
    columns = [("throughput_rps", "throughput (requests/s)", payload_label(size),
                lambda g, s=size: g.size_bytes == s) for size in sizes]
    return multiples_line_figure(run, "Peak throughput vs connections (closed loop)", closed,
                                 columns, lambda g: g.connections, "connections")


def fig_memory_threads(run: Run) -> Any | None:
    closed = run.scenario("closed")
    if not closed:
        return None
    smallest = min((g.size_bytes or 0) for g in closed)
    groups = [g for g in closed if (g.size_bytes or 0) == smallest]
    # PSS where the run measured it (RSS counts a forking server's shared pages
    # once per child); runs from before PSS was measured show RSS, labelled so.
    memory = "pss_bytes" if any(g.metric("pss_bytes") for g in groups) else "peak_rss_bytes"
    columns = [(memory, f"{style(memory).title} (MiB)", style(memory).title,
                lambda g: True),
               ("peak_threads", "peak threads", style("peak_threads").title, lambda g: True)]
    return multiples_line_figure(run, f"Memory and threads vs connections (closed loop, "
                                      f"{payload_label(smallest)})", groups, columns,
                                 lambda g: g.connections, "connections")


SCENARIO = ReportScenario(
    name="closed",
    title="Closed loop: peak throughput",
    description="Each connection sends a request and waits for the whole response before the "
                "next: the most the server does with that many connections.",
    metrics=(THROUGHPUT, "p50_us", "p99_us", "server_cpu_percent", "cpu_us_per_request",
             "ctx_voluntary_per_request", "syscalls_per_request", "pss_bytes", "peak_threads"),
    key_metric=THROUGHPUT,
    figures=(FigureSpec("throughput_vs_connections",
                        "Peak throughput vs connections (closed loop)",
                        fig_throughput_vs_connections),
             FigureSpec("memory_threads_vs_connections",
                        "Memory (PSS) and threads vs connections", fig_memory_threads)),
    syscall_tool="perf stat on the syscall tracepoints",
    headlines=(Headline("peak_throughput", THROUGHPUT, "peak closed-loop throughput", _peak),),
    ratios=True,
)
