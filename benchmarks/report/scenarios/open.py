"""Open loop: latency at a fixed offered rate."""

from __future__ import annotations

import math
from typing import Any

from iobench.benchmarks.report.plots import (
    REFERENCE_COLOUR,
    SPECTRUM_MAX_INVERSE,
    SPECTRUM_TICKS,
    by_series,
    family_panels,
    finish_axes,
    log_axis,
    mark_failed,
    multiples_line_figure,
    panel_figure,
    reference_for,
    spectrum_points,
)
from iobench.benchmarks.report.presentation import (
    model_style,
    series_label,
    style,
)
from iobench.benchmarks.report.scenario import FigureSpec, Headline, ReportScenario
from iobench.benchmarks.results.loader import CellGroup, Run


def middle_load(groups: list[CellGroup]) -> CellGroup:
    """The middle open-loop load level, as the latency spectrum picks it."""
    ordered = sorted(groups, key=lambda g: (g.peak_fraction or 0.0, g.rate_rps or 0.0))
    return ordered[(len(ordered) - 1) // 2]


def choose_spectrum_groups(run: Run, rate: float | None) -> tuple[list[CellGroup], str]:
    """One open-loop point per model series: the one nearest ``rate``, else the middle load.

    Open-loop rates may differ per model (fractions of each model's peak), so
    the default picks the same load level (middle of each model's rates), not
    the same absolute rate.
    """
    open_groups = [g for g in run.scenario("open") if g.rate_rps is not None]
    chosen = []
    for members in by_series(open_groups).values():
        members = sorted(members, key=lambda g: (g.peak_fraction or 0.0, g.rate_rps or 0.0))
        if rate is None:
            chosen.append(members[(len(members) - 1) // 2])
        else:
            chosen.append(min(members, key=lambda g: abs(math.log((g.rate_rps or 1) / rate))))
    rates = {g.rate_rps for g in chosen}
    fractions = {g.peak_fraction for g in chosen}
    if len(rates) == 1:
        how = f"{rates.pop():,.0f} req/s"
    elif len(fractions) == 1 and None not in fractions:
        how = f"{fractions.pop():.0%} of each model's peak"
    else:
        how = "middle load level" if rate is None else f"rate nearest {rate:,.0f} req/s"
    return chosen, how


def fig_latency_spectrum(run: Run, rate: float | None = None) -> Any | None:
    groups, how = choose_spectrum_groups(run, rate)
    if not groups:
        return None
    panels = family_panels(groups)
    fig, grid = panel_figure(run, f"Latency by percentile, open loop at {how} (corrected)",
                             columns=1, panels=len(panels))
    failed: list[bool] = [False]
    all_y: list[float] = []
    curves = {}
    for group in groups:
        histogram = None if group.failed else group.merged_histogram
        if histogram is not None and histogram.get_total_count() > 0:
            curves[group.key] = spectrum_points(histogram)
            all_y += curves[group.key][1]
    for (family, members), (ax,) in zip(panels, grid, strict=True):
        if len(panels) > 1:
            for ref in reference_for(members, groups):
                if ref.key in curves:
                    ax.plot(*curves[ref.key], color=REFERENCE_COLOUR, linestyle="--",
                            linewidth=1.2, label=f"{series_label(ref)} (grey: reference)")
        for group in members:
            label = f"{series_label(group)} @ {group.rate_rps:,.0f} req/s"
            if group.key not in curves:
                if group.failed:
                    mark_failed(ax, [1.0], failed)
                continue
            look = model_style(str(group.model))
            xs, ys = curves[group.key]
            ax.plot(xs, ys, color=look.colour, label=label,
                    linewidth=2.2 if look.highlighted else 1.4, marker=look.marker,
                    markevery=10, markersize=5, markeredgecolor="white", markeredgewidth=0.6)
        ax.set_xscale("log")
        ax.set_xlim(1, SPECTRUM_MAX_INVERSE)
        ax.set_xticks(list(SPECTRUM_TICKS), list(SPECTRUM_TICKS.values()))
        ax.set_title(family, fontsize=10)
        finish_axes(ax, "percentile (log scale of 1/(1-p))", "latency (us)", [], all_y)
        if all_y:
            ax.set_yscale("log")
            log_axis(ax.yaxis, all_y)
    if len(panels) > 2:
        for row in grid[:-2]:
            row[0].set_xlabel("")
    return fig


def fig_latency_vs_rate(run: Run) -> Any | None:
    groups = run.scenario("open")
    if not groups:
        return None
    columns = [(metric, f"{style(metric).title} latency (us)", style(metric).title,
                lambda g: True) for metric in ("p50_us", "p99_us")]
    return multiples_line_figure(run, "Latency vs offered rate (open loop, corrected)", groups,
                                 columns, lambda g: g.rate_rps, "offered rate (requests/s)")


def fig_cpu_vs_rate(run: Run) -> Any | None:
    groups = run.scenario("open")
    if not groups:
        return None
    columns = [("server_cpu_percent", "server CPU (% of one core)",
                style("server_cpu_percent").title, lambda g: True),
               ("cpu_us_per_request", "CPU per request (us)",
                style("cpu_us_per_request").title, lambda g: True)]
    return multiples_line_figure(run, "Server CPU vs offered rate (open loop)", groups,
                                 columns, lambda g: g.rate_rps, "offered rate (requests/s)")


SCENARIO = ReportScenario(
    name="open",
    title="Open loop: latency at a fixed offered rate",
    description="Requests at a constant total rate, latency measured from each request's "
                "intended send time (coordinated-omission corrected).",
    metrics=("throughput_rps", "p50_us", "p99_us", "p99_9_us", "server_cpu_percent",
             "cpu_us_per_request"),
    key_metric="p99_us",
    figures=(FigureSpec("latency_spectrum",
                        "Latency by percentile (open loop, merged histograms)",
                        fig_latency_spectrum, takes_rate=True),
             FigureSpec("latency_vs_rate", "p50 and p99 latency vs offered rate",
                        fig_latency_vs_rate),
             FigureSpec("cpu_vs_rate", "Server CPU and CPU per request vs offered rate",
                        fig_cpu_vs_rate)),
    headlines=(Headline("open_p99", "p99_us", "open-loop p99 latency", middle_load),),
)
