"""Scale: a few active connections beside many idle ones, in a section of its own.

Its figures and verdicts stand beside the article's claims ("Beyond the
article"), with the thresholds in ``iobench.benchmarks.report.scale``.
"""

from __future__ import annotations

from typing import Any

from iobench.benchmarks.report.blocks import Block, Heading, Paragraph, Table
from iobench.benchmarks.report.finding import (
    Finding,
    Notes,
    cell_text,
    claim_finding,
    markdown_table,
    verdict_of,
)
from iobench.benchmarks.report.plots import (
    log_axis,
    multiples_line_figure,
    new_figure,
    payload_label,
    spans_decades,
)
from iobench.benchmarks.report.presentation import (
    model_colour,
    plural,
    style,
)
from iobench.benchmarks.report.scale import (
    COST_METRIC,
    MemoryPerConnection,
    closed_series,
    judge_scale,
    memory_per_connection,
    models_that,
)
from iobench.benchmarks.report.scenario import (
    FigureLookup,
    FigureSpec,
    ReportScenario,
    failed_cells_blocks,
    verdict_blocks,
)
from iobench.benchmarks.results.loader import CellGroup, Run
from iobench.servers.base import Watching


def watched(group: CellGroup) -> float:
    """Connections the server watches: the idle crowd plus the active ones (never 0,
    so the no-idle point has a place on a log axis)."""
    return float(group.idle_connections + (group.connections or 0))


def fig_scale(run: Run) -> Any | None:
    """Throughput and CPU per request as idle connections grow: the C10K curve."""
    closed = [g for g in run.scenario("scale") if g.mode == "closed"]
    if not closed:
        return None
    active = closed[0].connections
    columns = [("throughput_rps", "throughput (requests/s)", "throughput", lambda g: True),
               ("cpu_us_per_request", "server CPU per request (us)", "CPU per request",
                lambda g: True)]
    return multiples_line_figure(
        run, f"{active} active connections beside idle ones (closed loop, "
             f"{payload_label(closed[0].size_bytes)})",
        closed, columns, watched, f"connections watched ({active} active + idle)")


def fig_scale_memory(run: Run) -> Any | None:
    """What one idle connection adds to each model's server: the process's memory and,
    stacked on it, the kernel's (sockets, kernel stacks), one bar per model."""
    found = memory_per_connection(run)
    if not found:
        return None
    found.sort(key=lambda m: (m.total_bytes_per_connection or m.bytes_per_connection))
    metrics = {m.metric for m in found}
    what = "PSS" if metrics == {"pss_bytes"} else "RSS" if metrics == {"peak_rss_bytes"} \
        else "PSS (RSS where PSS was not measured)"
    kernel = any(m.kernel_bytes_per_connection is not None for m in found)
    title = (f"Memory per idle connection: the process's ({what}) and the kernel's"
             if kernel else f"Memory per idle connection ({what})")
    fig, (ax,) = new_figure(run, f"{title}, from the most idle cell vs none")
    colours = [model_colour(m.model.split(" ")[0]) for m in found]
    user = [max(m.bytes_per_connection, 0.0) / 1024 for m in found]
    ax.barh(range(len(found)), user, color=colours)
    totals = list(user)
    if kernel:
        # A kernel figure below zero (noise over few connections) draws nothing.
        kernel_kib = [max(m.kernel_bytes_per_connection or 0.0, 0.0) / 1024 for m in found]
        ax.barh(range(len(found)), kernel_kib, left=user, color=colours, alpha=0.45,
                hatch="//", edgecolor="black", linewidth=0.3)
        totals = [u + k for u, k in zip(user, kernel_kib, strict=True)]
        # The parts in grey: the bars take their model's colour.
        ax.barh([0], [0], color="grey", label=f"process ({what})")
        ax.barh([0], [0], color="grey", alpha=0.45, hatch="//", edgecolor="black",
                linewidth=0.3, label="kernel (the server's cgroup)")
    ax.set_yticks(range(len(found)), [f"{m.model} ({m.idle:,} idle)" for m in found],
                  fontsize=8)
    ax.set_xlabel("KiB per idle connection" + (" (process + kernel)" if kernel else f" ({what})"))
    # A log axis would misdraw stacked parts: linear, unless totals span decades
    # without a kernel part to stack.
    if not kernel and spans_decades(totals):
        ax.set_xscale("log")
        log_axis(ax.xaxis, totals)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    return fig


FIGURES = (
    FigureSpec("scale",
               "Throughput and CPU per request vs connections watched (16 active + idle)",
               fig_scale),
    FigureSpec("scale_memory", "Memory per idle connection, per model: the process's and "
               "the kernel's", fig_scale_memory),
)


def section(run: Run, figure: FigureLookup) -> list[Block]:
    """Beyond the article: the cost of watching many connections, with computed verdicts."""
    verdicts = judge_scale(run)
    if not verdicts:
        return []
    blocks: list[Block] = [
        Heading(2, "Beyond the article: what watching many connections costs"),
        Paragraph("The article's first and fourth claims are both about watching connections. "
                  "Here a few active connections share the server with a crowd of idle ones "
                  "(the C10K problem): a model that looks at every connection on every pass "
                  f"({', '.join(models_that(Watching.SCANS))}) pays for the crowd on every "
                  "request; one the kernel tells which connections are ready "
                  f"({', '.join(models_that(Watching.IS_TOLD))}) should not. Verdicts are "
                  "computed with the thresholds in `benchmarks/report/scale.py`."),
        Table(["verdict", "in this run", "why"],
              [[v.claim, str(v.verdict), v.reason] for v in verdicts]),
    ]
    blocks += verdict_blocks(verdicts)
    for spec in FIGURES:
        drawn = figure(spec.stem)
        if drawn is not None:
            blocks.append(drawn)
    memory = memory_per_connection(run)
    if memory:
        blocks += [Paragraph("Memory one idle connection adds to the server: the difference "
                             "between its most idle successful cell and the one without idle "
                             "connections, divided by the idle count. RSS counts a page that "
                             "forked processes share once per process; PSS splits it. The "
                             "kernel's side (the socket, its buffers, a thread's kernel stack) "
                             "is counted in the server's cgroup; - where nothing counted it."),
                   Table(MEMORY_HEADERS, memory_rows(memory), numeric=(1, 2, 3, 5))]
    blocks += failed_cells_blocks(run, "scale", "Cells that could not run or were starved, "
                                  "with why (a limit met is a result too):")
    return blocks


def _kib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:,.1f}"


MEMORY_HEADERS = ["model", "process KiB", "kernel KiB", "total KiB per idle connection",
                  "measured by", "idle connections"]


def by_memory(memory: list[MemoryPerConnection]) -> list[MemoryPerConnection]:
    """Cheapest first: by the total, or the process's side where the kernel's is unknown."""
    return sorted(memory, key=lambda m: m.total_bytes_per_connection or m.bytes_per_connection)


def memory_rows(memory: list[MemoryPerConnection]) -> list[list[str]]:
    """A row per model for MEMORY_HEADERS, cheapest first."""
    return [[m.model, _kib(m.bytes_per_connection), _kib(m.kernel_bytes_per_connection),
             _kib(m.total_bytes_per_connection), "PSS" if m.metric == "pss_bytes" else "RSS",
             f"{m.idle:,}"] for m in by_memory(memory)]


def findings(run: Run) -> list[Finding]:
    """Beyond the article: CPU per request beside a growing idle crowd, and memory per idle."""
    series = closed_series(run)
    if not series:
        return []
    crowds = sorted({g.idle_connections for members in series.values() for g in members})
    memory = {m.model: m for m in memory_per_connection(run)}
    served = [g.idle_connections for members in series.values() for g in members
              if not g.failed and g.idle_connections]
    ends = sorted({crowds[0], max(served, default=crowds[0])})
    notes = Notes()
    rows = []
    for label, members in series.items():
        at = {g.idle_connections: g for g in members}
        per = memory.get(label)
        rows.append([label, *(cell_text(at.get(n), COST_METRIC, notes,
                                        f"{label} beside {n:,} idle") for n in crowds),
                     *(cell_text(at.get(n), "throughput_rps", notes,
                                 f"{label} beside {n:,} idle") for n in ends),
                     "-" if per is None else
                     f"{per.bytes_per_connection / 1024:,.1f} ({style(per.metric).title})"])
    headers = ["model", *(f"{n:,} idle (us/request)" for n in crowds),
               *(f"{n:,} idle (req/s)" for n in ends), "memory per idle connection (KiB)"]
    active = next(iter(series.values()))[0]
    detail = [f"{plural(active.connections, 'active connection')} (closed loop, "
              f"{active.size_bytes} B) beside idle ones: server CPU per request, throughput "
              "without idle connections and beside the most any model was measured with, and "
              "the memory one idle connection adds (PSS, or peak RSS where PSS was not "
              "measured):", "", *markdown_table(headers, rows), *notes.lines()]
    found = []
    for index, key in enumerate(("scale_scanning_cost_grows", "scale_waiting_cost_flat")):
        claim = verdict_of(run, key)
        summary = (f"beside up to {max(served):,} idle connections (against none), "
                   f"{claim.reason}" if claim is not None and served else None)
        found += claim_finding(run, key, summary, detail if index == 0 else ())
    return found + memory_findings(run)


def memory_findings(run: Run) -> list[Finding]:
    """What one idle connection costs each model in memory: its pages and the kernel's."""
    per = memory_per_connection(run)
    if not per:
        return []
    parts = [f"{m.model} {_kib(m.bytes_per_connection)}"
             + ("" if m.total_bytes_per_connection is None else
                f" + {_kib(m.kernel_bytes_per_connection)} = {_kib(m.total_bytes_per_connection)}")
             for m in by_memory(per)]
    detail = ["Memory per idle connection: the growth from no idle connection to the most "
              "each model held, divided by their number; the process's pages (PSS, or peak "
              "RSS where PSS was not measured) and what the kernel holds for it (sockets, "
              "buffers, a thread's kernel stack, epoll and io_uring state), counted in the "
              "server's own cgroup. \"-\": the kernel's side could not be counted.", "",
              *markdown_table(MEMORY_HEADERS, memory_rows(per))]
    summary = ("per idle connection, the process's memory + the kernel's = total, in KiB: "
               + "; ".join(parts))
    return [Finding("memory_per_idle_connection", "What an idle connection costs in memory",
                    None, summary, detail=tuple(detail))]


SCENARIO = ReportScenario(
    name="scale",
    title="Scale: a few active connections beside many idle ones",
    description="A few active connections beside a crowd of idle ones the load generator "
                "opened first and kept silent: what each model pays for connections it watches "
                "but that have nothing to say. Its figures and verdicts are in the section "
                "'Beyond the article'.",
    metrics=("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request", "server_cpu_percent",
             "pss_bytes", "peak_rss_bytes", "peak_fds", "peak_threads"),
    key_metric="cpu_us_per_request",
    figures=FIGURES,
    section=section,
    findings=findings,
)
