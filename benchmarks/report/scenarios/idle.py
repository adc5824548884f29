"""Idle: connections open, no requests; what it costs to wait."""

from __future__ import annotations

from typing import Any

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
    mark_failed,
    panel_figure,
)
from iobench.benchmarks.report.presentation import (
    family_order,
    model_colour,
    model_family,
    plural,
    series_label,
    series_sort_key,
)
from iobench.benchmarks.report.scenario import FigureSpec, Headline, ReportScenario
from iobench.benchmarks.results.loader import Run


def fig_idle_cpu(run: Run) -> Any | None:
    """One panel per idle-connection count, one labelled bar per model in family order.

    Bars are named on the axis, so thirteen models stay readable without a legend
    to decode; the colours still follow the families.
    """
    idle = run.scenario("idle")
    if not idle:
        return None
    counts = sorted({g.connections or 0 for g in idle})
    fig, grid = panel_figure(run, "Idle server CPU (no requests)", columns=len(counts),
                             panels=1, width=8.0 if len(counts) == 1 else 7.0)
    failed: list[bool] = [False]
    for ax, count in zip(grid[0], counts, strict=True):
        members = sorted((g for g in idle if (g.connections or 0) == count),
                         key=lambda g: (family_order(model_family(g.model)),
                                        series_sort_key(g)))
        labels = [series_label(g) for g in members]
        for position, group in enumerate(members):
            spread = group.bars("server_cpu_percent")
            if group.failed:
                mark_failed(ax, [position], failed)
                continue
            if spread is None:
                continue
            error = [[spread.value - spread.low], [spread.high - spread.value]] \
                if spread.count > 1 else None
            ax.bar(position, spread.value, width=0.75, color=model_colour(str(group.model)),
                   yerr=error, capsize=2, error_kw={"elinewidth": 0.8})
            ax.annotate(f"{spread.value:.1f}", (position, spread.value), ha="center",
                        va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{count} idle connections", fontsize=10)
        ax.set_ylabel("server CPU (% of one core)")
        ax.set_ylim(bottom=0, top=max(110.0, ax.get_ylim()[1]))
        ax.axhline(100, color="#888888", linestyle=":", linewidth=1)
        ax.grid(True, axis="y", alpha=0.3)
    return fig


def findings(run: Run) -> list[Finding]:
    """Busy polling burns a core doing nothing: idle CPU per model and connection count."""
    groups = [g for g in run.scenario("idle") if g.model is not None]
    if not groups:
        return []
    counts = sorted({g.connections or 0 for g in groups})
    notes = Notes()
    rows = []
    at_most: dict[str, float | None] = {}
    for label, members in by_label(groups).items():
        at = {g.connections or 0: g for g in members}
        rows.append([label, *(cell_text(at.get(c), "server_cpu_percent", notes,
                                        f"{label} with {plural(c, 'connection')}")
                              for c in counts)])
        at_most[label] = figure_of(at.get(counts[-1]), "server_cpu_percent")
    metric = "server_cpu_percent"
    named = [m for m in ("busy-poll", "poll-sleep", "select") if at_most.get(m) is not None]
    others = [v for m, v in at_most.items() if m not in named and v is not None]
    summary = None
    if named:
        summary = (f"idle with {plural(counts[-1], 'connection')}, {named[0]} used "
                   f"{value(metric, at_most[named[0]])}% of a core, "
                   + ", ".join(f"{m} {value(metric, at_most[m])}%" for m in named[1:])
                   + (f", every other model at most {value(metric, max(others))}%"
                      if others else ""))
    headers = ["model", *(f"{plural(c, 'connection')} (% of a core)" for c in counts)]
    detail = ["Idle server CPU, no requests:", "", *markdown_table(headers, rows), *notes.lines()]
    return claim_finding(run, "busy_poll_burns_cpu", summary, detail)


SCENARIO = ReportScenario(
    name="idle",
    title="Idle: connections open, no requests",
    description="The server holds idle connections and gets no requests; what it costs to "
                "wait.",
    # Memory by PSS: RSS counts a page shared by N processes N times (a forking
    # server's copy-on-write pages once per child). RSS stays in the data.
    metrics=("server_cpu_percent", "ctx_voluntary_per_s", "pss_bytes",
             "pss_per_connection_bytes", "peak_threads"),
    key_metric="server_cpu_percent",
    figures=(FigureSpec("idle_cpu", "Idle server CPU", fig_idle_cpu),),
    headlines=(Headline("idle_cpu", "server_cpu_percent", "idle server CPU",
                        lambda groups: max(groups, key=lambda g: g.connections or 0)),),
    findings=findings,
)
