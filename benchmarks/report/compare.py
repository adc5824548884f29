"""``iobench compare A B``: what changed between two runs, cell by cell.

For each cell key present in both runs, the ratio B/A of throughput, p99
latency and CPU per request. A change is marked only when it is beyond the
runs' own noise: the min-max ranges over repetitions do not overlap and the
ratio differs from 1 by more than ``MIN_CHANGE``. With a single repetition the
spread is unknown and the table says so instead of guessing.

The terminal table fits 100 columns: each metric is B's median, the ratio, and
one symbol (:data:`SYMBOLS`, explained under the table); ``--markdown`` prints
A -> B in full for documents. ``--fail-above PCT`` turns the comparison into a
gate (:func:`gate_failures`), as pytest-benchmark's ``--benchmark-compare-fail``
does, and ``--plot`` draws every ratio with its range (:func:`plot_comparison`).
"""

from __future__ import annotations

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
SYMBOLS = {"BETTER": "+", "WORSE": "-", "within spread": "~", "spread unknown": "?",
           "": "", "n/a": ""}
LEGEND = ("+ better, - worse: beyond 5% and outside both runs' min-max ranges; "
          "~ beyond 5% but within the ranges; ? beyond 5%, spread unknown (one repetition)")


@dataclass
class MetricChange:
    """One metric of one cell in both runs."""

    metric: str
    a: Spread | None
    b: Spread | None

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a.median == 0:
            return None
        return self.b.median / self.a.median

    @property
    def beyond_threshold(self) -> bool:
        return self.ratio is not None and abs(self.ratio - 1) > MIN_CHANGE

    @property
    def spread_known(self) -> bool:
        return self.a is not None and self.b is not None and min(self.a.count, self.b.count) > 1

    def ratio_range(self) -> tuple[float, float] | None:
        """The lowest and highest B/A the two min-max ranges allow."""
        if self.a is None or self.b is None or self.a.low <= 0 or self.a.high <= 0:
            return None
        return self.b.low / self.a.high, self.b.high / self.a.low

    def beyond(self, fraction: float) -> bool:
        """The median moved by more than ``fraction`` and the min-max ranges do not overlap
        (a run of one repetition has its single value as its range)."""
        return (self.ratio is not None and abs(self.ratio - 1) > fraction
                and not self.a.overlaps(self.b))  # type: ignore[union-attr]

    @property
    def changed(self) -> bool:
        """Beyond the threshold and outside both runs' min-max ranges."""
        return (self.beyond_threshold and self.spread_known
                and not self.a.overlaps(self.b))  # type: ignore[union-attr]

    @property
    def mark(self) -> str:
        if self.ratio is None:
            return "n/a"
        if not self.beyond_threshold:
            return ""
        if not self.spread_known:
            return "spread unknown"
        if not self.changed:
            return "within spread"
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
        changes = [MetricChange(m, group_a.metric(m), group_b.metric(m)) for m in COMPARED_METRICS]
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
    """['13,000', '1.08x +']: B's median, then B/A with the mark's symbol."""
    value = format_value(change.metric, change.b.median) if change.b is not None else "-"
    ratio = f"{change.ratio:.2f}x" if change.ratio is not None else "-"
    symbol = SYMBOLS.get(change.mark, "")
    return [value, f"{ratio} {symbol}" if symbol else ratio]


def short_headers() -> list[str]:
    """'cell', then for each metric B's median and B/A (left-aligned, so symbols line up)."""
    names = [f"B {style(m).short or style(m).header}" for m in COMPARED_METRICS]
    return ["cell"] + [h for name in names for h in (name, "B/A")]


def short_rows(comparison: Comparison) -> list[list[str]]:
    return [[cell.label] + [t for c in cell.changes for t in short_texts(c)]
            for cell in comparison.matched]


def gate_failures(comparison: Comparison, percent: float) -> list[str]:
    """Every metric of every cell whose median moved beyond ``percent`` and both spreads."""
    failures = []
    for cell in comparison.matched:
        for change in cell.changes:
            if change.beyond(percent / 100):
                failures.append(f"{cell.key} {style(change.metric).title}: "
                                f"{change.ratio:.2f}x")  # type: ignore[str-format]
    return failures


def wrap(lines: list[str], width: int = TERMINAL_COLUMNS) -> list[str]:
    """Summary lines wrapped to the terminal's width, continuation lines indented."""
    return [part for line in lines for part in
            textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False,
                          break_long_words=True) or [""]]


def cell_text(change: MetricChange) -> str:
    """'12,000 -> 13,000 (1.08x) BETTER'."""
    def value(spread: Spread | None) -> str:
        return format_value(change.metric, spread.median) if spread else "-"
    ratio = f" ({change.ratio:.2f}x)" if change.ratio is not None else ""
    mark = f" {change.mark}" if change.mark and change.mark != "n/a" else ""
    return f"{value(change.a)} -> {value(change.b)}{ratio}{mark}"


def headers() -> list[str]:
    return ["cell"] + [f"{style(m).header} A -> B" for m in COMPARED_METRICS]


def rows(comparison: Comparison) -> list[list[str]]:
    return [[cell.label] + [cell_text(c) for c in cell.changes] for cell in comparison.matched]


def summary_lines(comparison: Comparison, a: Run, b: Run) -> list[str]:
    lines = [f"A = {a.run_id} ({a.directory}), B = {b.run_id} ({b.directory})",
             f"{comparison.changed_count} change(s) beyond both runs' spread and "
             f"{MIN_CHANGE:.0%}; ratios are B/A of medians."]
    if min(a.repetitions, b.repetitions) < 2:
        lines.append("A run has one repetition: spread unknown, changes cannot be confirmed.")
    lines += [f"warning: {w}; absolute figures are not comparable" for w in comparison.warnings]
    for title, keys in (("only in A", comparison.only_in_a), ("only in B", comparison.only_in_b),
                        ("not compared, failed", comparison.failed)):
        if keys:
            lines.append(f"{title} ({len(keys)}): " + ", ".join(keys))
    return lines


def plot_comparison(comparison: Comparison, a: Run, b: Run, path: Path) -> Path:
    """B/A per cell and metric: the ratio of medians as a dot, the range the two runs'
    min-max ranges allow as a bar, 1.0 and the +-5% band marked. PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cells = comparison.matched
    height = 1.6 + 0.22 * max(1, len(cells))
    fig = Figure(figsize=(12, height), layout="constrained")
    axes = fig.subplots(1, len(COMPARED_METRICS), sharey=True, squeeze=False)[0]
    fig.suptitle(f"iobench compare: B/A per cell (A = {a.run_id}, B = {b.run_id})",
                 fontsize=11)
    fig.get_layout_engine().set(rect=(0, 0.3 / height, 1, 1 - 0.3 / height))
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
    fig.text(0.01, 0.05 / height, "dot: ratio of medians; bar: the lowest to highest ratio the two "
             f"runs' min-max ranges allow; grey band: within {MIN_CHANGE:.0%}; outlined: "
             "a change beyond both spreads", fontsize=7, color="#555555")
    save_figure(fig, make_dir(path.parent) / path.name, dpi=110)
    return path

