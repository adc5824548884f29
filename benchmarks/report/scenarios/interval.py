"""Interval: poll-sleep's sleep interval swept against reference models."""

from __future__ import annotations

from typing import Any

from iobench.benchmarks.report.finding import (
    Finding,
    Notes,
    cell_text,
    claim_finding,
    figure_of,
    markdown_table,
    value,
)
from iobench.benchmarks.report.plots import (
    finish_axes,
    line_plot,
    new_figure,
)
from iobench.benchmarks.report.presentation import (
    format_duration_s,
    model_colour,
    plural,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scenario import FigureSpec, ReportScenario
from iobench.benchmarks.results.loader import CellGroup, Run


def interval_of(group: CellGroup) -> float | None:
    value = group.params.get("interval")
    return float(value) if isinstance(value, int | float) else None


def interval_us_of(group: CellGroup) -> float | None:
    """The swept sleep interval in microseconds, or None for a reference model's cell."""
    interval = interval_of(group)
    return interval * 1e6 if interval is not None else None


def fig_poll_sleep_tradeoff(run: Run) -> Any | None:
    groups = run.scenario("interval")
    swept = [g for g in groups if interval_of(g) is not None]
    if not swept:
        return None
    references = [g for g in groups if interval_of(g) is None]
    rate = swept[0].rate_rps
    fig, axes = new_figure(run, "Poll-sleep trade-off: sleep interval vs latency and CPU"
                           + (f" (open loop, {rate:,.0f} req/s)" if rate else ""), ncols=2)
    intervals_us = [us for g in swept if (us := interval_us_of(g)) is not None]
    failed: list[bool] = [False]
    for ax, metric, ylabel in ((axes[0], "p50_us", "p50 latency (us)"),
                               (axes[1], "server_cpu_percent", "server CPU (% of one core)")):
        drawn = line_plot(ax, swept, interval_us_of, metric, failed_label=failed,
                          label_of=lambda g: f"{g.model} (interval swept)")
        for ref in references:
            spread = ref.metric(metric)
            if spread is None:
                continue
            drawn.ys.append(spread.value)
            ax.axhline(spread.value, color=model_colour(str(ref.model)), linestyle="--",
                       label=f"{series_label(ref)} (reference)")
        if metric == "p50_us":
            base = next((r.metric("p50_us") for r in references if r.model == "select"), None)
            if base is not None:
                guide = sorted(intervals_us)
                guide_ys = [base.value + i / 2 for i in guide]
                drawn.ys += guide_ys
                ax.plot(guide, guide_ys, color="#777777", linestyle=":",
                        label="select p50 + interval/2 (expected)")
        ax.set_title(style(metric).title, fontsize=10)
        finish_axes(ax, "sleep interval (us)", ylabel, intervals_us, drawn)
    return fig


def findings(run: Run) -> list[Finding]:
    """Sleeping between polls trades CPU for latency: the interval sweep."""
    groups = [g for g in run.scenario("interval") if g.model is not None]
    if not groups:
        return []
    notes = Notes()
    metrics = ("p50_us", "p99_us", "server_cpu_percent")
    rows = []
    for group in sorted(groups, key=series_sort_key):
        rows.append([series_label(group), *(cell_text(group, m, notes) for m in metrics)])
    sleepers = sorted((g for g in groups if g.model == "poll-sleep"),
                      key=lambda g: g.params.get("interval") or 0.0)
    select = next((g for g in groups if g.model == "select"), None)
    first = groups[0]
    where = (f"open loop at {value('throughput_rps', first.rate_rps)} requests/s over "
             f"{plural(first.connections, 'connection')}")
    summary = None
    select_p50 = figure_of(select, "p50_us")
    points = [(g, figure_of(g, "p50_us"), figure_of(g, "server_cpu_percent")) for g in sleepers]
    if select_p50 is not None and points and all(p and c is not None for _, p, c in points):
        summary = (f"{where}, select answered in {value('p50_us', select_p50)} us (p50); "
                   "poll-sleep in "
                   + ", ".join(f"{value('p50_us', p)} us at "
                               f"{format_duration_s(float(g.params.get('interval') or 0))}"
                               for g, p, _ in points)
                   + ", its CPU falling from "
                   + " to ".join(f"{value('server_cpu_percent', c)}%" for _, _, c in
                                 (points[0], points[-1]))
                   + " of a core")
    headers = ["model", "p50 (us)", "p99 (us)", "server CPU (% of a core)"]
    detail = [f"The interval sweep, {where}:", "", *markdown_table(headers, rows),
              *notes.lines()]
    return claim_finding(run, "sleep_raises_latency", summary, detail)


SCENARIO = ReportScenario(
    name="interval",
    title="Poll-sleep interval sweep",
    description="poll-sleep at several sleep intervals against reference models, same rate.",
    metrics=("throughput_rps", "p50_us", "p99_us", "server_cpu_percent", "cpu_us_per_request"),
    key_metric="p50_us",
    figures=(FigureSpec("poll_sleep_tradeoff", "Poll-sleep: sleep interval vs latency and CPU",
                        fig_poll_sleep_tradeoff),),
    findings=findings,
)
