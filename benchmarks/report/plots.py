"""The figures of a run, drawn from its results.json alone.

One function per figure, each taking the run and returning a matplotlib
Figure, or None with a note when the run lacks the scenario it needs (a custom
profile without ``open``, say). :func:`write_plots` draws them all in one
process (importing matplotlib once is most of the cost) and saves PNG + SVG.

Conventions every figure keeps: a model has one colour and one marker
(iobench.benchmarks.report.presentation), its family's hue; a line is the median
over repetitions with the min-max range as thin error bars under the points,
the series nudged apart along x so bars do not hide each other; a failed point
is a red cross on the axis floor; axes are logarithmic where the data spans
decades; a footnote names the machine and the run. An axis never holds more
than ``SMALL_MULTIPLES_ABOVE`` series: beyond that the figure becomes small
multiples, one panel per Stevens family (:func:`family_panels`), panels of one
metric sharing their y axis, with select drawn in grey in the other panels as
the common reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench.benchmarks.report.presentation import (
    family_order,
    model_colour,
    model_family,
    model_style,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scale import memory_per_connection
from iobench.benchmarks.report.scenarios import FIGURE_SCENARIOS
from iobench.benchmarks.results.loader import CellGroup, Run

PLOTS_DIR = "plots"
FORMATS = ("png", "svg")
PNG_DPI = 110
# Data spanning at least a decade (max / min) gets a logarithmic axis: connection
# counts and rates are chosen geometrically (1, 16, 128, 1000).
LOG_SCALE_MIN_RATIO = 10.0
FAILED_COLOUR = "#C00000"
# Spectrum x axis: 1/(1-p) from p=0 to p=99.99%, as in HdrHistogram plots.
SPECTRUM_MAX_INVERSE = 10_000
SPECTRUM_TICKS = {2: "50%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%"}
# More series than this on one axis cannot be told apart: draw one panel per family.
SMALL_MULTIPLES_ABOVE = 6
# The model every panel is compared with, drawn in grey where it is not in the panel.
REFERENCE_MODEL = "select"
REFERENCE_COLOUR = "#9A9A9A"
# Series at the same x are nudged apart by this fraction of a log decade (or of the
# linear x range) per series, so their error bars stay visible.
DODGE_FRACTION = 0.025
PANEL_WIDTH_IN = 4.4
PANEL_HEIGHT_IN = 2.9


@dataclass
class PlotOutcome:
    """The files written and the figures skipped, with why."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, list[Path]] = field(default_factory=dict)


def footnote(run: Run) -> str:
    """Machine, placement and run id: a figure pasted elsewhere still says where it is from."""
    env = run.environment
    placement = run.placement
    parts = [f"run {run.run_id}"]
    machine = ", ".join(str(p) for p in (
        env.get("cpu_model"),
        f"{env['logical_cpus']} CPUs" if env.get("logical_cpus") else None,
        env.get("kernel"),
        f"Python {env['python']}" if env.get("python") else None,
    ) if p)
    if machine:
        parts.append(machine)
    if placement:
        parts.append(f"server CPUs {placement.get('server_cpus')}, "
                     f"client CPUs {placement.get('client_cpus')}")
    return " | ".join(parts)


def new_figure(run: Run, title: str, ncols: int = 1, width: float = 8.0) -> tuple[Any, list[Any]]:
    """A constrained-layout figure with ``ncols`` axes, a title and the run's footnote."""
    fig, grid = panel_figure(run, title, columns=ncols, panels=1, width=width)
    return fig, grid[0]


def panel_figure(run: Run, title: str, columns: int, panels: int,
                 width: float = 8.0, share_x: bool = True) -> tuple[Any, list[list[Any]]]:
    """``grid[panel][column]``: one row of ``columns`` axes per panel, columns sharing y.

    A figure of one column with several panels wraps them two to a row, so it
    stays about as wide as a page.
    """
    from matplotlib.figure import Figure

    wrap = columns == 1 and panels > 1
    nrows, ncols = ((panels + 1) // 2, 2) if wrap else (panels, columns)
    if panels == 1:
        size = (width * (1 if ncols == 1 else 0.7) * ncols, 4.8)
    else:
        size = (PANEL_WIDTH_IN * ncols + 2.2, PANEL_HEIGHT_IN * nrows + 0.9)
    fig = Figure(figsize=size, layout="constrained")
    # Bars name their models on the x axis, different in each panel: never shared then.
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey="all" if wrap else "col",
                        sharex=("all" if wrap else "col") if share_x else False)
    fig.suptitle(title, fontsize=12)
    fig.get_layout_engine().set(rect=(0, 0.05 if panels == 1 else 0.03, 1,
                                      0.95 if panels == 1 else 0.97))
    fig.text(0.01, 0.005, footnote(run), fontsize=7, color="#555555", ha="left", va="bottom")
    if wrap:
        flat = [ax for row in axes for ax in row]
        for spare in flat[panels:]:
            spare.set_visible(False)
        return fig, [[ax] for ax in flat[:panels]]
    return fig, [list(row) for row in axes]


def family_panels(groups: Iterable[CellGroup],
                  label_of: Callable[[CellGroup], str] = series_label,
                  ) -> list[tuple[str, list[CellGroup]]]:
    """[(panel title, its groups)]: one panel when the series fit one axis, else per family.

    Families with a single series share one panel, so thirteen models make four
    panels, not five with one line each.
    """
    groups = list(groups)
    if len(by_series(groups, label_of)) <= SMALL_MULTIPLES_ABOVE:
        return [("", groups)]
    families: dict[str, list[CellGroup]] = {}
    for group in sorted(groups, key=lambda g: family_order(model_family(g.model))):
        families.setdefault(model_family(group.model), []).append(group)
    panels: list[tuple[str, list[CellGroup]]] = []
    singles: list[tuple[str, list[CellGroup]]] = []
    for family, members in families.items():
        (singles if len(by_series(members, label_of)) == 1 else panels).append(
            (family, members))
    if len(singles) == 1:
        panels.append(singles[0])
    elif singles:
        panels.append((" and ".join(f for f, _ in singles),
                       [g for _, members in singles for g in members]))
    return sorted(panels, key=lambda p: min(family_order(model_family(g.model))
                                            for g in p[1]))


def spans_decades(values: Iterable[float]) -> bool:
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) >= LOG_SCALE_MIN_RATIO


def by_series(groups: Iterable[CellGroup],
              label_of: Callable[[CellGroup], str] = series_label) -> dict[str, list[CellGroup]]:
    """Groups keyed by series label, models in registry order."""
    series: dict[str, list[CellGroup]] = {}
    for group in sorted(groups, key=series_sort_key):
        series.setdefault(label_of(group), []).append(group)
    return series


def mark_failed(ax: Any, xs: Sequence[float], label_done: list[bool]) -> None:
    """Red crosses on the axis floor where a point has no successful repetition."""
    if not xs:
        return
    ax.plot(xs, [0.03] * len(xs), linestyle="none", marker="x", markersize=9, mew=2,
            color=FAILED_COLOUR, transform=ax.get_xaxis_transform(), clip_on=False,
            label=None if label_done[0] else "failed", zorder=5)
    label_done[0] = True


@dataclass
class Drawn:
    """What a plotting helper put on an axes: every y value, and whether x is categorical."""

    ys: list[float] = field(default_factory=list)
    categorical_x: float | None = None  # the one x value, when drawn as bars per model


def dodged(xs: list[float], index: int, count: int, log_x: bool, span: float) -> list[float]:
    """``xs`` nudged for series ``index`` of ``count``, so error bars at one x do not overlap."""
    offset = (index - (count - 1) / 2) * DODGE_FRACTION
    if log_x:
        return [x * 10 ** offset for x in xs]
    return [x + offset * span for x in xs]


def line_plot(ax: Any, groups: Iterable[CellGroup], x_of: Callable[[CellGroup], float | None],
              metric: str, *, failed_label: list[bool] | None = None,
              label_of: Callable[[CellGroup], str] = series_label,
              reference: Iterable[CellGroup] = ()) -> Drawn:
    """Median lines with min-max error bars, one per series, in each model's colour and marker.

    ``reference`` groups (select, in panels of other families) are drawn in grey,
    behind, for comparison across panels. When every point has the same x (a
    quick profile measures one connection count), lines would collapse onto one
    vertical stack of dots, so the series are drawn as one bar each instead.
    """
    failed_label = failed_label if failed_label is not None else [False]
    groups = list(groups)
    note_failed_without_x(ax, [g for g in groups if x_of(g) is None and g.failed], label_of)
    groups = [g for g in groups if x_of(g) is not None]
    distinct_x = {x_of(g) for g in groups}
    if len(distinct_x) == 1:
        return bar_plot(ax, groups, metric, failed_label, label_of, distinct_x.pop())
    drawn = Drawn()
    scale = style(metric).scale
    all_x = [float(x) for x in distinct_x if x is not None]
    log_x = spans_decades(all_x)
    span = (max(all_x) - min(all_x)) if all_x else 0.0
    series = by_series(groups, label_of)
    reference_series = by_series([g for g in reference if x_of(g) is not None], label_of)
    for label, members in reference_series.items():
        xs, medians = [], []
        for group in sorted(members, key=lambda g: x_of(g) or 0.0):
            spread = group.metric(metric)
            if not group.failed and spread is not None:
                xs.append(x_of(group))
                medians.append(spread.median * scale)
        if xs:
            ax.plot(xs, medians, color=REFERENCE_COLOUR, linestyle="--", linewidth=1.2,
                    marker=model_style(str(members[0].model)).marker, markersize=4,
                    label=f"{label} (grey: reference)", zorder=1)
            drawn.ys += medians
    for index, (label, members) in enumerate(series.items()):
        xs, medians, below, above, failed_xs = [], [], [], [], []
        for group in sorted(members, key=lambda g: x_of(g) or 0.0):
            spread = group.metric(metric)
            if group.failed:
                failed_xs.append(x_of(group))
            elif spread is not None:
                xs.append(x_of(group))
                medians.append(spread.median * scale)
                below.append((spread.median - spread.low) * scale)
                above.append((spread.high - spread.median) * scale)
        if xs:
            look = model_style(str(members[0].model))
            # One repetition has no spread to show: no error-bar caps then.
            error = [below, above] if any(below) or any(above) else None
            ax.errorbar(dodged(xs, index, len(series), log_x, span), medians, yerr=error,
                        color=look.colour, marker=look.marker,
                        markersize=6 if look.highlighted else 5,
                        markeredgecolor="white", markeredgewidth=0.6,
                        linewidth=2.2 if look.highlighted else 1.3,
                        elinewidth=0.8, capsize=2, ecolor=look.colour, label=label,
                        zorder=3 if look.highlighted else 2)
            drawn.ys += medians
        mark_failed(ax, failed_xs, failed_label)
    return drawn


def reference_for(panel: list[CellGroup], everything: list[CellGroup]) -> list[CellGroup]:
    """select's groups, to draw in grey in a panel of small multiples that lacks it."""
    if any(g.model == REFERENCE_MODEL for g in panel):
        return []
    return [g for g in everything if g.model == REFERENCE_MODEL]


def panel_title(family: str, column_title: str) -> str:
    return " · ".join(t for t in (column_title, family) if t)


def multiples_line_figure(run: Run, title: str, groups: list[CellGroup],
                          columns: Sequence[tuple[str, str, str, Callable[[CellGroup], bool]]],
                          x_of: Callable[[CellGroup], float | None], xlabel: str) -> Any:
    """Line figure with one column per (metric, ylabel, column title, cell filter).

    One row per family panel when there are more series than fit one axis; every
    column shares its y axis, so panels compare at a glance.
    """
    panels = family_panels(groups)
    bars = any(len({x_of(g) for g in groups if keep(g) and x_of(g) is not None}) == 1
               for _, _, _, keep in columns)
    fig, grid = panel_figure(run, title, columns=len(columns), panels=len(panels),
                             share_x=not bars)
    failed: list[bool] = [False]
    for column, (metric, ylabel, column_title, keep) in enumerate(columns):
        kept = [g for g in groups if keep(g)]
        xs = [x for x in (x_of(g) for g in kept) if x is not None]
        scale = style(metric).scale
        all_ys = [s.median * scale for s in (g.metric(metric) for g in kept if not g.failed)
                  if s is not None]
        for row, (family, members) in enumerate(panels):
            ax = grid[row][column]
            members = [g for g in members if keep(g)]
            reference = reference_for(members, kept) if len(panels) > 1 else []
            drawn = line_plot(ax, members, x_of, metric, failed_label=failed,
                              reference=reference)
            ax.set_title(panel_title(family, column_title), fontsize=10)
            drawn.ys = all_ys  # panels share y: one scale decision for all of them
            finish_axes(ax, xlabel, ylabel, xs, drawn)
    bottom_labels_only(grid)
    return fig


def bottom_labels_only(grid: list[list[Any]]) -> None:
    """Panels share x down a column: only the bottom row repeats the x label."""
    for row in grid[:-1]:
        for ax in row:
            ax.set_xlabel("")


def note_failed_without_x(ax: Any, groups: list[CellGroup],
                          label_of: Callable[[CellGroup], str]) -> None:
    """A failed point may have no x (an open-loop rate taken from a peak never measured)."""
    labels = list(by_series(groups, label_of))
    if labels:
        ax.text(0.01, 0.99, "failed, not plotted: " + ", ".join(labels), transform=ax.transAxes,
                ha="left", va="top", fontsize=7, color=FAILED_COLOUR)


def bar_plot(ax: Any, groups: list[CellGroup], metric: str, failed_label: list[bool],
             label_of: Callable[[CellGroup], str], x_value: float | None) -> Drawn:
    """One bar per series (median, min-max error bar) at a single x value."""
    drawn = Drawn(categorical_x=x_value)
    scale = style(metric).scale
    series = by_series(groups, label_of)
    for position, (label, members) in enumerate(series.items()):
        group = members[0]
        spread = group.metric(metric)
        if group.failed:
            mark_failed(ax, [position], failed_label)
        elif spread is not None:
            error = [[(spread.median - spread.low) * scale],
                     [(spread.high - spread.median) * scale]] if spread.count > 1 else None
            ax.bar(position, spread.median * scale, color=model_colour(str(group.model)),
                   yerr=error, capsize=2, label=label, error_kw={"elinewidth": 0.8})
            drawn.ys.append(spread.median * scale)
    ax.set_xticks(range(len(series)), list(series), rotation=60, ha="right", fontsize=8)
    return drawn


def plain_number(value: float, _position: object = None) -> str:
    """Log-axis tick labels as numbers people read (2,000, not 2x10^3)."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def minor_number(axis_span_decades: float) -> Callable[[float, object], str]:
    """Label 2x and 5x minor ticks only when the axis spans too few decades to read."""
    def label(value: float, _position: object = None) -> str:
        if axis_span_decades >= 2 or value <= 0:
            return ""
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return plain_number(value) if mantissa in (2.0, 5.0) else ""
    return label


def log_axis(axis: Any, values: list[float]) -> None:
    from matplotlib.ticker import FuncFormatter

    positive = [v for v in values if v > 0]
    span = math.log10(max(positive) / min(positive)) if positive else 0.0
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_formatter(FuncFormatter(minor_number(span)))


def finish_axes(ax: Any, xlabel: str, ylabel: str, xs: Iterable[float],
                drawn: Drawn | list[float]) -> None:
    """Labels, log scales where the data spans decades, grid."""
    if not isinstance(drawn, Drawn):
        drawn = Drawn(ys=list(drawn))
    xs = list(xs)
    if drawn.categorical_x is not None:
        ax.set_xlabel(f"model ({xlabel} = {drawn.categorical_x:g})")
    else:
        ax.set_xlabel(xlabel)
        if spans_decades(xs):
            ax.set_xscale("log")
            log_axis(ax.xaxis, xs)
    ax.set_ylabel(ylabel)
    if spans_decades(drawn.ys):
        ax.set_yscale("log")
        log_axis(ax.yaxis, drawn.ys)
    elif drawn.ys:
        ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.3)


def figure_legend(fig: Any, axes: list[Any]) -> None:
    """One legend for the figure, right of the axes, so it never hides data."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right center",
                   fontsize=8)


def payload_label(size: int | None) -> str:
    return f"{size} B payload" if size is not None else "payload unknown"


def fig_throughput_vs_connections(run: Run) -> Any | None:
    closed = run.scenario("closed")
    if not closed:
        return None
    sizes = sorted({g.size_bytes for g in closed}, key=lambda s: s or 0)
    columns = [("throughput_rps", "throughput (requests/s)", payload_label(size),
                lambda g, s=size: g.size_bytes == s) for size in sizes]
    return multiples_line_figure(run, "Peak throughput vs connections (closed loop)", closed,
                                 columns, lambda g: g.connections, "connections")


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


def spectrum_points(histogram: Any) -> tuple[list[float], list[float]]:
    """(1/(1-p), latency) pairs up to the percentile the sample size supports."""
    total = histogram.get_total_count()
    limit = min(SPECTRUM_MAX_INVERSE, max(2, total))
    steps = 60
    inverses = [limit ** (i / steps) for i in range(steps + 1)]
    percentiles = [100.0 * (1 - 1 / inv) for inv in inverses]
    values = histogram.get_percentile_to_value_dict(percentiles)
    return inverses, [float(values[p]) for p in percentiles]


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
            spread = group.metric("server_cpu_percent")
            if group.failed:
                mark_failed(ax, [position], failed)
                continue
            if spread is None:
                continue
            error = [[spread.median - spread.low], [spread.high - spread.median]] \
                if spread.count > 1 else None
            ax.bar(position, spread.median, width=0.75, color=model_colour(str(group.model)),
                   yerr=error, capsize=2, error_kw={"elinewidth": 0.8})
            ax.annotate(f"{spread.median:.1f}", (position, spread.median), ha="center",
                        va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{count} idle connections", fontsize=10)
        ax.set_ylabel("server CPU (% of one core)")
        ax.set_ylim(bottom=0, top=max(110.0, ax.get_ylim()[1]))
        ax.axhline(100, color="#888888", linestyle=":", linewidth=1)
        ax.grid(True, axis="y", alpha=0.3)
    return fig


def interval_of(group: CellGroup) -> float | None:
    value = group.params.get("interval")
    return float(value) if isinstance(value, int | float) else None


def fig_poll_sleep_tradeoff(run: Run) -> Any | None:
    groups = run.scenario("interval")
    swept = [g for g in groups if interval_of(g) is not None]
    if not swept:
        return None
    references = [g for g in groups if interval_of(g) is None]
    rate = swept[0].rate_rps
    fig, axes = new_figure(run, "Poll-sleep trade-off: sleep interval vs latency and CPU"
                           + (f" (open loop, {rate:,.0f} req/s)" if rate else ""), ncols=2)
    intervals_us = [interval_of(g) * 1e6 for g in swept]  # type: ignore[operator]
    failed: list[bool] = [False]
    for ax, metric, ylabel in ((axes[0], "p50_us", "p50 latency (us)"),
                               (axes[1], "server_cpu_percent", "server CPU (% of one core)")):
        drawn = line_plot(ax, swept, lambda g: interval_of(g) * 1e6,  # type: ignore[operator]
                       metric, failed_label=failed,
                       label_of=lambda g: f"{g.model} (interval swept)")
        for ref in references:
            spread = ref.metric(metric)
            if spread is None:
                continue
            drawn.ys.append(spread.median)
            ax.axhline(spread.median, color=model_colour(str(ref.model)), linestyle="--",
                       label=f"{series_label(ref)} (reference)")
        if metric == "p50_us":
            base = next((r.metric("p50_us") for r in references if r.model == "select"), None)
            if base is not None:
                guide = sorted(intervals_us)
                guide_ys = [base.median + i / 2 for i in guide]
                drawn.ys += guide_ys
                ax.plot(guide, guide_ys, color="#777777", linestyle=":",
                        label="select p50 + interval/2 (expected)")
        ax.set_title(style(metric).title, fontsize=10)
        finish_axes(ax, "sleep interval (us)", ylabel, intervals_us, drawn)
    return fig


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
    """What one idle connection adds to each model's server, one bar per model."""
    found = memory_per_connection(run)
    if not found:
        return None
    found.sort(key=lambda m: m.bytes_per_connection)
    metrics = {m.metric for m in found}
    what = "PSS" if metrics == {"pss_bytes"} else "RSS" if metrics == {"peak_rss_bytes"} \
        else "PSS (RSS where PSS was not measured)"
    fig, (ax,) = new_figure(run, f"Memory per idle connection ({what}, from the most idle "
                                 "cell vs none)")
    values = [max(m.bytes_per_connection, 0.0) / 1024 for m in found]
    ax.barh(range(len(found)), values, color=[model_colour(m.model.split(" ")[0])
                                              for m in found])
    ax.set_yticks(range(len(found)), [f"{m.model} ({m.idle:,} idle)" for m in found],
                  fontsize=8)
    ax.set_xlabel(f"KiB per idle connection ({what})")
    if spans_decades(values):
        ax.set_xscale("log")
        log_axis(ax.xaxis, values)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    return fig


# How each figure is drawn, by file stem; the scenarios' report declarations
# say which of them they show and with what caption (a test checks that the two
# name the same stems).
BUILDERS: dict[str, Callable[..., Any]] = {
    "throughput_vs_connections": fig_throughput_vs_connections,
    "latency_spectrum": fig_latency_spectrum,
    "latency_vs_rate": fig_latency_vs_rate,
    "cpu_vs_rate": fig_cpu_vs_rate,
    "idle_cpu": fig_idle_cpu,
    "poll_sleep_tradeoff": fig_poll_sleep_tradeoff,
    "memory_threads_vs_connections": fig_memory_threads,
    "scale": fig_scale,
    "scale_memory": fig_scale_memory,
}
# File stem, builder, and the scenario a skipped figure would have needed, in
# the scenarios' order.
FIGURES: tuple[tuple[str, Callable[..., Any], str], ...] = tuple(
    (stem, BUILDERS[stem], scenario) for stem, scenario in FIGURE_SCENARIOS.items())


def save(fig: Any, directory: Path, stem: str) -> list[Path]:
    """PNG and SVG; the SVG keeps text as text (searchable, selectable) and has no
    date or random ids, so regenerating the plots of a run gives equal files."""
    import matplotlib

    paths = []
    for fmt in FORMATS:
        path = directory / f"{stem}.{fmt}"
        if fmt == "svg":
            with matplotlib.rc_context({"svg.hashsalt": stem, "svg.fonttype": "none"}):
                fig.savefig(path, format="svg", metadata={"Date": None})
        else:
            fig.savefig(path, format="png", dpi=PNG_DPI)
        paths.append(path)
    return paths


def write_plots(run: Run, directory: Path | None = None,
                spectrum_rate: float | None = None) -> PlotOutcome:
    """Draw every figure the run has data for into ``run/plots`` (or ``directory``)."""
    import matplotlib

    matplotlib.use("Agg")
    target = directory or run.directory / PLOTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    outcome = PlotOutcome()
    for stem, builder, scenario in FIGURES:
        fig = (builder(run, spectrum_rate) if builder is fig_latency_spectrum else builder(run))
        if fig is None:
            outcome.notes.append(f"{stem}: skipped, the run has no '{scenario}' scenario data")
            continue
        figure_legend(fig, fig.axes)
        paths = save(fig, target, stem)
        outcome.figures[stem] = paths
        outcome.paths += paths
    return outcome
