"""Closed loop: peak throughput, and the system calls per request behind it."""

from __future__ import annotations

from typing import Any

from iobench.benchmarks.report.claims import default_params
from iobench.benchmarks.report.finding import (
    Finding,
    Notes,
    by_label,
    cell_text,
    claim_finding,
    figure_of,
    markdown_table,
    value,
)
from iobench.benchmarks.report.plots import (
    multiples_line_figure,
    payload_label,
)
from iobench.benchmarks.report.presentation import (
    plural,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scenario import FigureSpec, Headline, ReportScenario
from iobench.benchmarks.results.loader import CellGroup, Run

THROUGHPUT = "throughput_rps"


def _throughput(group: CellGroup) -> float:
    spread = group.metric(THROUGHPUT)
    return spread.value if spread is not None else 0.0


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


def findings(run: Run) -> list[Finding]:
    """Throughput with few and many connections; select against threads at the most."""
    groups = [g for g in run.scenario("closed") if g.model is not None]
    if not groups:
        return []
    return throughput_finding(run, groups) + many_connections_finding(run, groups)


def throughput_finding(run: Run, groups: list[CellGroup]) -> list[Finding]:
    counts = sorted({g.connections or 0 for g in groups})
    sizes = sorted({g.size_bytes or 0 for g in groups})
    notes = Notes()
    rows = []
    article = [g for g in groups if g.model in ("busy-poll", "poll-sleep", "select")
               and default_params(g)]
    for size in sizes:
        for label, members in by_label(g for g in article if g.size_bytes == size).items():
            by_count = {g.connections or 0: g for g in members}
            rows.append([f"{label}, {size} B", *(cell_text(
                by_count.get(c), "throughput_rps", notes, f"{label}, "
                f"{plural(c, 'connection')}, {size} B") for c in counts)])
    fewest, size = counts[0], sizes[0]

    def at(model: str) -> CellGroup | None:
        return next((g for g in article if g.model == model and g.connections == fewest
                     and g.size_bytes == size), None)

    ps, sel, busy = (figure_of(at(m), "throughput_rps")
                      for m in ("poll-sleep", "select", "busy-poll"))
    busy_cpu = figure_of(at("busy-poll"), "server_cpu_percent")
    summary = None
    if ps is not None and sel:
        summary = (f"closed loop, {plural(fewest, 'connection')}, {size} B: poll-sleep served "
                   f"{value('throughput_rps', ps)} requests/s against select's "
                   f"{value('throughput_rps', sel)} ({ps / sel:.0%})")
        if busy is not None and busy_cpu is not None:
            summary += (f", busy-poll {value('throughput_rps', busy)} at "
                        f"{value('server_cpu_percent', busy_cpu)}% of a core")
        more = [r for r in (ratio_at(article, c, s) for c in counts[1:] for s in sizes)
                if r is not None]
        if more:
            summary += (f"; with {plural(counts[1], 'connection')} or more poll-sleep reached "
                        f"{min(more):.0%}-{max(more):.0%} of select's")
    headers = ["model, payload", *(f"{plural(c, 'connection')} (req/s)" for c in counts)]
    detail = ["Closed-loop throughput of the article's models:", "",
              *markdown_table(headers, rows), *notes.lines()]
    return claim_finding(run, "sleep_lowers_throughput", summary, detail)


def ratio_at(groups: list[CellGroup], count: int, size: int) -> float | None:
    """poll-sleep's throughput over select's at one point, when both are measured."""
    def at(model: str) -> float | None:
        return figure_of(next((g for g in groups if g.model == model and g.connections == count
                            and g.size_bytes == size), None), "throughput_rps")

    ps, sel = at("poll-sleep"), at("select")
    return ps / sel if ps is not None and sel else None


MANY_CONNECTION_METRICS = ("throughput_rps", "cpu_us_per_request", "peak_threads",
                           "pss_bytes", "rss_bytes")


def many_connections_finding(run: Run, groups: list[CellGroup]) -> list[Finding]:
    most = max(g.connections or 0 for g in groups)
    size = min(g.size_bytes or 0 for g in groups)
    notes = Notes()
    rows = [[series_label(g), *(cell_text(g, m, notes) for m in MANY_CONNECTION_METRICS)]
            for g in sorted(groups, key=series_sort_key)
            if g.connections == most and g.size_bytes == size]
    headers = ["model", *(style(m).header for m in MANY_CONNECTION_METRICS)]
    detail = [f"Closed loop, {plural(most, 'connection')}, {size} B (threads: the server's "
              "threads, summed over its processes; RSS counts a page shared by N processes "
              "N times, PSS divides it among them):", "", *markdown_table(headers, rows),
              *notes.lines()]
    return claim_finding(run, "select_scales", None, detail)


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
    findings=findings,
)
