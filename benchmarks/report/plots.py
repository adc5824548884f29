"""The figures of a run, drawn from its results.json alone.

One function per figure, each taking the run and returning a matplotlib
Figure, or None with a note when the run lacks the scenario it needs (a custom
profile without ``open``, say). :func:`write_plots` draws them all in one
process (importing matplotlib once is most of the cost) and saves PNG + SVG.

Conventions every figure keeps: a model has one colour (iobench.benchmarks.report.presentation),
a line is the median over repetitions with the min-max range as error bars, a
failed point is a red cross on the axis floor, axes are logarithmic where the
data spans decades, and a footnote names the machine and the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench.benchmarks.report.presentation import (
    model_colour,
    series_label,
    series_sort_key,
    style,
)
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
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * (1 if ncols == 1 else 0.7) * ncols, 4.8), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0].tolist()
    fig.suptitle(title, fontsize=12)
    fig.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))
    fig.text(0.01, 0.01, footnote(run), fontsize=7, color="#555555", ha="left", va="bottom")
    return fig, axes


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


def line_plot(ax: Any, groups: Iterable[CellGroup], x_of: Callable[[CellGroup], float | None],
              metric: str, *, failed_label: list[bool] | None = None,
              label_of: Callable[[CellGroup], str] = series_label) -> Drawn:
    """Median lines with min-max error bars, one per series.

    When every point has the same x (a quick profile measures one connection
    count), lines would collapse onto one vertical stack of dots, so the
    series are drawn as one bar each instead.
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
    for label, members in by_series(groups, label_of).items():
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
            # One repetition has no spread to show: no error-bar caps then.
            error = [below, above] if any(below) or any(above) else None
            ax.errorbar(xs, medians, yerr=error, color=model_colour(str(members[0].model)),
                        marker="o", capsize=3, label=label)
            drawn.ys += medians
        mark_failed(ax, failed_xs, failed_label)
    return drawn


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
                   yerr=error, capsize=2, label=label)
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
    fig, axes = new_figure(run, "Peak throughput vs connections (closed loop)", ncols=len(sizes))
    failed: list[bool] = [False]
    for ax, size in zip(axes, sizes, strict=True):
        groups = [g for g in closed if g.size_bytes == size]
        drawn = line_plot(ax, groups, lambda g: g.connections, "throughput_rps",
                       failed_label=failed)
        ax.set_title(payload_label(size), fontsize=10)
        finish_axes(ax, "connections", "throughput (requests/s)",
                    [g.connections or 0 for g in groups], drawn)
    return fig


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
    fig, (ax,) = new_figure(run, f"Latency by percentile, open loop at {how} (corrected)")
    failed: list[bool] = [False]
    all_y: list[float] = []
    for group in groups:
        histogram = None if group.failed else group.merged_histogram
        label = f"{series_label(group)} @ {group.rate_rps:,.0f} req/s"
        if histogram is None or histogram.get_total_count() == 0:
            if group.failed:
                mark_failed(ax, [1.0], failed)
            continue
        xs, ys = spectrum_points(histogram)
        all_y += ys
        ax.plot(xs, ys, color=model_colour(str(group.model)), label=label, linewidth=1.8)
    ax.set_xscale("log")
    ax.set_xlim(1, SPECTRUM_MAX_INVERSE)
    ax.set_xticks(list(SPECTRUM_TICKS), list(SPECTRUM_TICKS.values()))
    finish_axes(ax, "percentile (log scale of 1/(1-p))", "latency (us)", [], all_y)
    if all_y:
        ax.set_yscale("log")
        log_axis(ax.yaxis, all_y)
    return fig


def fig_latency_vs_rate(run: Run) -> Any | None:
    groups = run.scenario("open")
    if not groups:
        return None
    fig, axes = new_figure(run, "Latency vs offered rate (open loop, corrected)", ncols=2)
    failed: list[bool] = [False]
    rates = [g.rate_rps for g in groups if g.rate_rps is not None]
    for ax, metric in zip(axes, ("p50_us", "p99_us"), strict=True):
        drawn = line_plot(ax, groups, lambda g: g.rate_rps, metric, failed_label=failed)
        ax.set_title(style(metric).title, fontsize=10)
        finish_axes(ax, "offered rate (requests/s)", f"{style(metric).title} latency (us)",
                    rates, drawn)
    return fig


def fig_cpu_vs_rate(run: Run) -> Any | None:
    groups = run.scenario("open")
    if not groups:
        return None
    fig, axes = new_figure(run, "Server CPU vs offered rate (open loop)", ncols=2)
    failed: list[bool] = [False]
    rates = [g.rate_rps for g in groups if g.rate_rps is not None]
    for ax, metric, ylabel in ((axes[0], "server_cpu_percent", "server CPU (% of one core)"),
                               (axes[1], "cpu_us_per_request", "CPU per request (us)")):
        drawn = line_plot(ax, groups, lambda g: g.rate_rps, metric, failed_label=failed)
        ax.set_title(style(metric).title, fontsize=10)
        finish_axes(ax, "offered rate (requests/s)", ylabel, rates, drawn)
    return fig


def fig_idle_cpu(run: Run) -> Any | None:
    idle = run.scenario("idle")
    if not idle:
        return None
    fig, (ax,) = new_figure(run, "Idle server CPU (no requests)")
    counts = sorted({g.connections or 0 for g in idle})
    series = by_series(idle)
    width = 0.8 / max(1, len(series))
    failed: list[bool] = [False]
    for index, (label, members) in enumerate(series.items()):
        colour = model_colour(str(members[0].model))
        for position, count in enumerate(counts):
            x = position + (index - (len(series) - 1) / 2) * width
            group = next((g for g in members if (g.connections or 0) == count), None)
            spread = group.metric("server_cpu_percent") if group else None
            if group is not None and group.failed:
                mark_failed(ax, [x], failed)
                continue
            if spread is None:
                continue
            error = [[spread.median - spread.low], [spread.high - spread.median]] \
                if spread.count > 1 else None
            ax.bar(x, spread.median, width=width * 0.95, color=colour, yerr=error,
                   capsize=2, label=label if position == 0 else None)
            ax.annotate(f"{spread.median:.1f}", (x, spread.median), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points",
                        rotation=90 if len(series) > 6 else 0)
    ax.set_xticks(range(len(counts)), [f"{c} idle connections" for c in counts])
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
    fig, axes = new_figure(run, f"Memory and threads vs connections (closed loop, "
                                f"{payload_label(smallest)})", ncols=2)
    failed: list[bool] = [False]
    connections = [g.connections or 0 for g in groups]
    for ax, metric, ylabel in ((axes[0], "peak_rss_bytes", "peak RSS (MiB)"),
                               (axes[1], "peak_threads", "peak threads")):
        drawn = line_plot(ax, groups, lambda g: g.connections, metric, failed_label=failed)
        ax.set_title(style(metric).title, fontsize=10)
        finish_axes(ax, "connections", ylabel, connections, drawn)
    return fig


# File stem, builder, and the scenario a skipped figure would have needed.
FIGURES: tuple[tuple[str, Callable[..., Any], str], ...] = (
    ("throughput_vs_connections", fig_throughput_vs_connections, "closed"),
    ("latency_spectrum", fig_latency_spectrum, "open"),
    ("latency_vs_rate", fig_latency_vs_rate, "open"),
    ("cpu_vs_rate", fig_cpu_vs_rate, "open"),
    ("idle_cpu", fig_idle_cpu, "idle"),
    ("poll_sleep_tradeoff", fig_poll_sleep_tradeoff, "interval"),
    ("memory_threads_vs_connections", fig_memory_threads, "closed"),
)


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
