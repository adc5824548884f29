"""``iobench compare A B``: what changed between two runs, cell by cell.

For each cell key present in both runs, the ratio B/A of throughput, p99
latency and CPU per request. A change is marked only when it is
beyond the runs' own noise, as pyperf's compare does: the two runs' 95%
intervals of the figure (``iobench.benchmarks.results.stats``) are apart and
the ratio differs from 1 by more than ``MIN_CHANGE``; when the intervals
overlap it is "not significant", whatever the figures say. With a single
repetition or round there is no interval, and the table says so instead of
guessing.

The terminal table fits 100 columns: each metric is B's figure, the ratio, and
one symbol (:data:`SYMBOLS`, explained under the table); ``--markdown`` prints
A -> B in full for documents. ``--fail-above PCT`` turns the comparison into a
gate (:func:`gate_failures`: by model, across its cells, beside the machine's
drift between the runs), as pytest-benchmark's ``--benchmark-compare-fail``
does, and ``--plot`` draws every ratio with its range (:func:`plot_comparison`).
"""

from __future__ import annotations

import math
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from iobench.benchmarks.report.points import describe_point
from iobench.benchmarks.report.presentation import (
    format_value,
    model_colour,
    series_label,
    style,
)
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.benchmarks.results.record import METRICS
from iobench.benchmarks.results.stats import Interval, figure_interval, format_interval
from iobench.common.files import make_dir, save_figure

# The metrics whose declaration says they are compared, in the record's order.
COMPARED_METRICS = tuple(name for name, declared in METRICS.items() if declared.compared)
# Metrics where a larger value is the better one.
HIGHER_IS_BETTER = frozenset({"throughput_rps"})
# A ratio within 5% of 1 is not called a change, whatever the spread says.
MIN_CHANGE = 0.05
# Environment fields that must agree for absolute figures to be comparable.
COMPARABLE_FIELDS = ("cpu_model", "logical_cpus", "kernel", "hostname", "placement")
# The terminal output's width: tables and summary lines wrap to it.
TERMINAL_COLUMNS = 100
# One symbol per mark, so a change reads at a glance and the table stays narrow.
SYMBOLS = {"BETTER": "+", "WORSE": "-", "not significant": "~", "spread unknown": "?",
           "": "", "n/a": ""}
LEGEND = ("+ better, - worse: beyond 5% and the two runs' 95% intervals apart; "
          "~ beyond 5% but not significant (the intervals overlap); ? beyond 5%, spread "
          "unknown (one repetition); B's figure is its 20% trimmed mean +- its interval")


@dataclass
class MetricChange:
    """One metric of one cell in both runs: figures, ranges and 95% intervals."""

    metric: str
    a: Spread | None
    b: Spread | None
    interval_a: Interval | None = None
    interval_b: Interval | None = None

    @classmethod
    def of(cls, metric: str, values_a: list[float], values_b: list[float]) -> MetricChange:
        return cls(metric, Spread.of(values_a) if values_a else None,
                   Spread.of(values_b) if values_b else None,
                   figure_interval(values_a), figure_interval(values_b))

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a.value == 0:
            return None
        return self.b.value / self.a.value

    @property
    def beyond_threshold(self) -> bool:
        return self.ratio is not None and abs(self.ratio - 1) > MIN_CHANGE

    @property
    def spread_known(self) -> bool:
        """Both runs have a 95% interval (two or more repetitions or rounds)."""
        return self.interval_a is not None and self.interval_b is not None

    @property
    def significant(self) -> bool:
        """The two runs' intervals are apart: the figures differ beyond both runs' noise."""
        return (self.interval_a is not None and self.interval_b is not None
                and not self.interval_a.overlaps(self.interval_b))

    def ratio_range(self) -> tuple[float, float] | None:
        """The lowest and highest B/A the two intervals allow."""
        if self.interval_a is None or self.interval_b is None or self.interval_a.low <= 0:
            return None
        return self.interval_b.low / self.interval_a.high, \
            self.interval_b.high / self.interval_a.low

    def beyond(self, fraction: float) -> bool:
        """The figure moved by more than ``fraction`` even between the near ends of the
        two runs' intervals: the change is that large at 95% confidence, not only
        its figures. Two quick runs of one commit a minute apart moved threads'
        CPU per request from 18.2 us [16.3, 21.2] to 23.4 us [22.2, 24.6]: 1.28x
        between the medians, apart, but 1.05x between the near ends; the
        machine drifts between runs by more than a run's rounds can show."""
        span = self.ratio_range()
        return span is not None and (span[0] > 1 + fraction or span[1] < 1 - fraction)

    @property
    def changed(self) -> bool:
        """Beyond the threshold and significant."""
        return self.beyond_threshold and self.significant

    @property
    def mark(self) -> str:
        if self.ratio is None:
            return "n/a"
        if not self.beyond_threshold:
            return ""
        if not self.spread_known:
            return "spread unknown"
        if not self.changed:
            return "not significant"
        better = (self.ratio > 1) == (self.metric in HIGHER_IS_BETTER)
        return "BETTER" if better else "WORSE"


@dataclass
class CellComparison:
    key: str
    label: str
    changes: list[MetricChange]
    model: str | None = None


@dataclass
class Comparison:
    """Matched cells with their changes, and what could not be matched."""

    matched: list[CellComparison] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_count(self) -> int:
        return sum(c.changed for cell in self.matched for c in cell.changes)


def environment_warnings(a: Run, b: Run) -> list[str]:
    """Differences that make absolute figures incomparable (design: never compare those)."""
    warnings = []
    for name in COMPARABLE_FIELDS:
        value_a, value_b = a.environment.get(name), b.environment.get(name)
        if value_a != value_b:
            warnings.append(f"{name} differs: A has {value_a!r}, B has {value_b!r}")
    return warnings


def compare_runs(a: Run, b: Run) -> Comparison:
    result = Comparison(warnings=environment_warnings(a, b))
    groups_b = {g.key: g for g in b.groups}
    keys_a = {g.key for g in a.groups}
    for group_a in a.groups:
        group_b = groups_b.get(group_a.key)
        if group_b is None:
            result.only_in_a.append(group_a.key)
            continue
        failed_in = [name for name, g in (("A", group_a), ("B", group_b)) if g.failed]
        if failed_in:
            result.failed.append(f"{group_a.key} (failed in {' and '.join(failed_in)})")
            continue
        changes = [MetricChange.of(m, group_a.values(m), group_b.values(m))
                   for m in COMPARED_METRICS]
        if all(c.a is None and c.b is None for c in changes):
            continue  # idle cells: none of the compared metrics apply
        result.matched.append(CellComparison(group_a.key, describe(group_a), changes,
                                             group_a.model))
    result.only_in_b = [g.key for g in b.groups if g.key not in keys_a]
    return result


def describe(group: CellGroup) -> str:
    """'open select c4 64B 2,000/s': short enough that the table fits 100 columns."""
    return f"{group.scenario} {series_label(group)} {describe_point(group, 'compact')}"


def short_texts(change: MetricChange) -> list[str]:
    """['13,000 ±3%', '1.08x +']: B's figure and interval, then B/A with the mark's symbol."""
    value = format_value(change.metric, change.b.value) if change.b is not None else "-"
    if width := format_interval(change.interval_b):
        value = f"{value} {width}"
    ratio = f"{change.ratio:.2f}x" if change.ratio is not None else "-"
    symbol = SYMBOLS.get(change.mark, "")
    return [value, f"{ratio} {symbol}" if symbol else ratio]


def short_headers() -> list[str]:
    """'cell', then for each metric B's figure and B/A (left-aligned, so symbols line up)."""
    names = [f"B {style(m).short or style(m).header}" for m in COMPARED_METRICS]
    return ["cell"] + [h for name in names for h in (name, "B/A")]


def short_rows(comparison: Comparison) -> list[list[str]]:
    return [[cell.label] + [t for c in cell.changes for t in short_texts(c)]
            for cell in comparison.matched]


@dataclass(frozen=True)
class ModelShift:
    """How far one model's figure moved between the runs beside the others': the figure
    over its cells of B/A divided by the run's drift (the median B/A of every cell),
    with its 95% interval over those cells."""

    model: str
    metric: str
    interval: Interval
    drift: float

    def text(self) -> str:
        i = self.interval
        return (f"{self.model} {style(self.metric).title}: {i.value:.2f}x "
                f"[{i.low:.2f}, {i.high:.2f}] over {i.n} cells")


def model_shifts(comparison: Comparison) -> list[ModelShift]:
    """Every model's move per compared metric, beside the machine's drift between the
    runs (see :func:`gate_failures`); models with fewer than two cells are left out."""
    ratios: dict[str, list[tuple[str, float]]] = {}
    for cell in comparison.matched:
        for change in cell.changes:
            if cell.model is not None and change.ratio is not None and change.ratio > 0:
                ratios.setdefault(change.metric, []).append((cell.model, change.ratio))
    shifts = []
    for metric, pairs in ratios.items():
        drift = math.exp(statistics.median(math.log(r) for _, r in pairs))
        for model in dict.fromkeys(model for model, _ in pairs):
            interval = figure_interval([r / drift for m, r in pairs if m == model])
            if interval is not None:
                shifts.append(ModelShift(model, metric, interval, drift))
    return shifts


def gate_failures(shifts: list[ModelShift], percent: float) -> list[str]:
    """The models whose figure moved by more than ``percent`` across their cells, beside
    the others, at 95% confidence: the interval of the figure of their cells' B/A (each
    divided by the run's drift, the median B/A of every cell) lies beyond it.

    Judged by model, not by cell: two quick runs of one commit moved single
    cells' figures by up to 1.8x with both runs' intervals apart (poll-sleep's
    CPU per request at one connection, 86-101 us in every round of one run and
    49-52 us in the next), while a model's cells together moved by a few
    percent; and the machine as a whole moved by up to 1.12x, which no
    change to the code explains. A model made 30% slower moves all its cells."""
    fraction = percent / 100
    return [shift.text() for shift in shifts
            if shift.interval.low > 1 + fraction or shift.interval.high < 1 - fraction]


def unjudged(comparison: Comparison, percent: float) -> list[str]:
    """Moves beyond ``percent`` that no interval can confirm or dismiss (one sample)."""
    return [f"{cell.key} {style(change.metric).title}: {change.ratio:.2f}x"
            for cell in comparison.matched for change in cell.changes
            if change.ratio is not None and abs(change.ratio - 1) > percent / 100
            and not change.spread_known]


# The figures whose intervals two runs of one commit should share (issue of record:
# "figures you can cite twice"): throughput, the median latency (p50), CPU per request.
OVERLAP_METRICS = ("throughput_rps", "p50_us", "cpu_us_per_request")


@dataclass
class Overlap:
    """How many matched ok cells' 95% intervals of one metric overlap between two runs."""

    metric: str
    overlapping: list[str] = field(default_factory=list)
    apart: list[str] = field(default_factory=list)
    # Cells where a run had a single sample (no interval) or no figure.
    unjudged: list[str] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        judged = len(self.overlapping) + len(self.apart)
        return len(self.overlapping) / judged if judged else None

    def line(self) -> str:
        share = self.share
        text = f"{share:.0%}" if share is not None else "-"
        line = (f"{style(self.metric).title}: {len(self.overlapping)} of "
                f"{len(self.overlapping) + len(self.apart)} cells overlap ({text})")
        if self.unjudged:
            line += f"; {len(self.unjudged)} without an interval in A or B"
        if self.apart:
            line += "; apart: " + ", ".join(self.apart)
        return line


def overlaps(a: Run, b: Run, metrics: tuple[str, ...] = OVERLAP_METRICS) -> list[Overlap]:
    """For each metric, the ok cells of both runs whose 95% intervals share a value.

    This is how far a second run reproduces the first: for two runs of one
    commit on one machine, about 95% of cells or more should overlap.
    """
    found = [Overlap(metric) for metric in metrics]
    groups_b = {g.key: g for g in b.groups}
    for group_a in a.groups:
        group_b = groups_b.get(group_a.key)
        if group_b is None or group_a.failed or group_b.failed:
            continue
        for overlap in found:
            values_a = group_a.values(overlap.metric)
            values_b = group_b.values(overlap.metric)
            if not values_a and not values_b:
                continue
            interval_a, interval_b = figure_interval(values_a), figure_interval(values_b)
            if interval_a is None or interval_b is None:
                overlap.unjudged.append(group_a.key)
            elif interval_a.overlaps(interval_b):
                overlap.overlapping.append(group_a.key)
            else:
                overlap.apart.append(group_a.key)
    return found


def wrap(lines: list[str], width: int = TERMINAL_COLUMNS) -> list[str]:
    """Summary lines wrapped to the terminal's width, continuation lines indented."""
    return [part for line in lines for part in
            textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False,
                          break_long_words=True) or [""]]


def cell_text(change: MetricChange) -> str:
    """'12,000 -> 13,000 (1.08x) BETTER'."""
    def value(spread: Spread | None, interval: Interval | None) -> str:
        if not spread:
            return "-"
        width = format_interval(interval)
        return format_value(change.metric, spread.value) + (f" {width}" if width else "")
    ratio = f" ({change.ratio:.2f}x)" if change.ratio is not None else ""
    mark = f" {change.mark}" if change.mark and change.mark != "n/a" else ""
    return (f"{value(change.a, change.interval_a)} -> {value(change.b, change.interval_b)}"
            f"{ratio}{mark}")


def headers() -> list[str]:
    return ["cell"] + [f"{style(m).header} A -> B" for m in COMPARED_METRICS]


def rows(comparison: Comparison) -> list[list[str]]:
    return [[cell.label] + [cell_text(c) for c in cell.changes] for cell in comparison.matched]


def summary_lines(comparison: Comparison, a: Run, b: Run) -> list[str]:
    lines = [f"A = {a.run_id} ({a.directory}), B = {b.run_id} ({b.directory})",
             f"{comparison.changed_count} change(s) beyond {MIN_CHANGE:.0%} with the runs' 95% "
             f"intervals apart; ratios are B/A of figures."]
    if min(a.repetitions, b.repetitions) < 2:
        lines.append("A run has one repetition: no interval, changes cannot be confirmed.")
    lines += [f"warning: {w}; absolute figures are not comparable" for w in comparison.warnings]
    for title, keys in (("only in A", comparison.only_in_a), ("only in B", comparison.only_in_b),
                        ("not compared, failed", comparison.failed)):
        if keys:
            lines.append(f"{title} ({len(keys)}): " + ", ".join(keys))
    return lines


def plot_comparison(comparison: Comparison, a: Run, b: Run, path: Path) -> Path:
    """B/A per cell and metric: the ratio of figures as a dot, the range the two runs'
    95% intervals allow as a bar, 1.0 and the +-5% band marked. PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    cells = comparison.matched
    height = 1.6 + 0.22 * max(1, len(cells))
    # A margin of 0.3 in above and below for the title and the legend.
    fig = Figure(figsize=(12, height), layout=ConstrainedLayoutEngine(
        rect=(0, 0.3 / height, 1, 1 - 0.3 / height)))
    axes = fig.subplots(1, len(COMPARED_METRICS), sharey=True, squeeze=False)[0]
    fig.suptitle(f"iobench compare: B/A per cell (A = {a.run_id}, B = {b.run_id})",
                 fontsize=11)
    from matplotlib.ticker import FuncFormatter

    ys = list(range(len(cells)))[::-1]
    for ax, metric in zip(axes, COMPARED_METRICS, strict=True):
        ax.axvspan(1 - MIN_CHANGE, 1 + MIN_CHANGE, color="#dddddd", zorder=0)
        ax.axvline(1.0, color="#555555", linewidth=1)
        # A linear axis at least +-10% wide: ratios read as "1.08x" without log ticks.
        extent = [1 - 2 * MIN_CHANGE, 1 + 2 * MIN_CHANGE]
        for y, cell in zip(ys, cells, strict=True):
            change = next(c for c in cell.changes if c.metric == metric)
            if change.ratio is None:
                continue
            bounds = change.ratio_range() if change.spread_known else None
            error = [[change.ratio - bounds[0]], [bounds[1] - change.ratio]] if bounds else None
            extent += list(bounds) if bounds else [change.ratio]
            ax.errorbar([change.ratio], [y], xerr=error, marker="o", markersize=5,
                        color=model_colour(cell.model or ""), elinewidth=1, capsize=2,
                        markeredgecolor="black" if change.changed else "white",
                        markeredgewidth=0.8, zorder=3)
        margin = (max(extent) - min(extent)) * 0.04
        ax.set_xlim(min(extent) - margin, max(extent) + margin)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.2f}x"))
        ax.set_title(f"{style(metric).title}"
                     + (" (higher is better)" if metric in HIGHER_IS_BETTER
                        else " (lower is better)"), fontsize=10)
        ax.set_xlabel("B / A")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(ys, [cell.label for cell in cells], fontsize=7)
    axes[0].set_ylim(-1, len(cells))
    fig.text(0.01, 0.05 / height, "dot: ratio of figures; bar: the lowest to highest ratio the two "
             f"runs' 95% intervals allow; grey band: within {MIN_CHANGE:.0%}; outlined: "
             "a change with the intervals apart", fontsize=7, color="#555555")
    save_figure(fig, make_dir(path.parent) / path.name, dpi=110)
    return path

