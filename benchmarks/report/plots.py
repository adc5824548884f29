"""The drawing toolkit every figure is made with; the figures are the scenarios' own.

Each scenario's report module (``iobench.benchmarks.report.scenarios``) draws
its figures with these functions, and ``iobench.benchmarks.report.figures``
draws them all and saves them with :func:`save`.

Conventions every figure keeps: a model has one colour and one marker
(iobench.benchmarks.report.presentation), its family's hue; a line is the figure
over rounds with its 95% interval as thin error bars under the points,
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
from iobench.benchmarks.results.loader import CellGroup, Run
from iobench.common.files import save_figure

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
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    wrap = columns == 1 and panels > 1
    nrows, ncols = ((panels + 1) // 2, 2) if wrap else (panels, columns)
    if panels == 1:
        size = (width * (1 if ncols == 1 else 0.7) * ncols, 4.8)
    else:
        size = (PANEL_WIDTH_IN * ncols + 2.2, PANEL_HEIGHT_IN * nrows + 0.9)
    # The title above the panels and the footnote below them keep their margins.
    fig = Figure(figsize=size, layout=ConstrainedLayoutEngine(
        rect=(0, 0.05 if panels == 1 else 0.03, 1, 0.95 if panels == 1 else 0.97)))
    # Bars name their models on the x axis, different in each panel: never shared then.
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey="all" if wrap else "col",
                        sharex=("all" if wrap else "col") if share_x else False)
    fig.suptitle(title, fontsize=12)
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
    """Median lines with 95%-interval error bars, one per series, in each model's colour
    and marker.

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
        xs, figures = [], []
        for group in sorted(members, key=lambda g: x_of(g) or 0.0):
            spread, x = group.metric(metric), x_of(group)
            if not group.failed and spread is not None and x is not None:
                xs.append(x)
                figures.append(spread.value * scale)
        if xs:
            ax.plot(xs, figures, color=REFERENCE_COLOUR, linestyle="--", linewidth=1.2,
                    marker=model_style(str(members[0].model)).marker, markersize=4,
                    label=f"{label} (grey: reference)", zorder=1)
            drawn.ys += figures
    for index, (label, members) in enumerate(series.items()):
        xs, figures, below, above, failed_xs = [], [], [], [], []
        for group in sorted(members, key=lambda g: x_of(g) or 0.0):
            spread, x = group.bars(metric), x_of(group)
            if x is None:  # groups without an x were set apart above
                continue
            if group.failed:
                failed_xs.append(x)
            elif spread is not None:
                xs.append(x)
                figures.append(spread.value * scale)
                below.append((spread.value - spread.low) * scale)
                above.append((spread.high - spread.value) * scale)
        if xs:
            look = model_style(str(members[0].model))
            # One repetition has no spread to show: no error-bar caps then.
            error = [below, above] if any(below) or any(above) else None
            ax.errorbar(dodged(xs, index, len(series), log_x, span), figures, yerr=error,
                        color=look.colour, marker=look.marker,
                        markersize=6 if look.highlighted else 5,
                        markeredgecolor="white", markeredgewidth=0.6,
                        linewidth=2.2 if look.highlighted else 1.3,
                        elinewidth=0.8, capsize=2, ecolor=look.colour, label=label,
                        zorder=3 if look.highlighted else 2)
            drawn.ys += figures
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
        all_ys = [s.value * scale for s in (g.metric(metric) for g in kept if not g.failed)
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
    """One bar per series (figure, 95%-interval error bar) at a single x value."""
    drawn = Drawn(categorical_x=x_value)
    scale = style(metric).scale
    series = by_series(groups, label_of)
    for position, (label, members) in enumerate(series.items()):
        group = members[0]
        spread = group.bars(metric)
        if group.failed:
            mark_failed(ax, [position], failed_label)
        elif spread is not None:
            error = [[(spread.value - spread.low) * scale],
                     [(spread.high - spread.value) * scale]] if spread.count > 1 else None
            ax.bar(position, spread.value * scale, color=model_colour(str(group.model)),
                   yerr=error, capsize=2, label=label, error_kw={"elinewidth": 0.8})
            drawn.ys.append(spread.value * scale)
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


def spectrum_points(histogram: Any) -> tuple[list[float], list[float]]:
    """(1/(1-p), latency) pairs up to the percentile the sample size supports."""
    total = histogram.get_total_count()
    limit = min(SPECTRUM_MAX_INVERSE, max(2, total))
    steps = 60
    inverses = [limit ** (i / steps) for i in range(steps + 1)]
    percentiles = [100.0 * (1 - 1 / inv) for inv in inverses]
    values = histogram.get_percentile_to_value_dict(percentiles)
    return inverses, [float(values[p]) for p in percentiles]


def save(fig: Any, directory: Path, stem: str) -> list[Path]:
    """PNG and SVG; the SVG keeps text as text (searchable, selectable) and has no
    date or random ids, so regenerating the plots of a run gives equal files."""
    import matplotlib

    paths = []
    for fmt in FORMATS:
        path = directory / f"{stem}.{fmt}"
        if fmt == "svg":
            with matplotlib.rc_context({"svg.hashsalt": stem, "svg.fonttype": "none"}):
                save_figure(fig, path, follow_dir=False, format="svg", metadata={"Date": None})
        else:
            save_figure(fig, path, follow_dir=False, format="png", dpi=PNG_DPI)
        paths.append(path)
    return paths


