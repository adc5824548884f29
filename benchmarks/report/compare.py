"""``iobench compare A B``: what changed between two runs, cell by cell.

For each cell key present in both runs, the ratio B/A of throughput, p99
latency and CPU per request. A change is marked only when it is beyond the
runs' own noise: the min-max ranges over repetitions do not overlap and the
ratio differs from 1 by more than ``MIN_CHANGE``. With a single repetition the
spread is unknown and the table says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iobench.benchmarks.report.presentation import format_value, series_label, style
from iobench.benchmarks.results.loader import CellGroup, Run, Spread

COMPARED_METRICS = ("throughput_rps", "p99_us", "cpu_us_per_request")
# Metrics where a larger value is the better one.
HIGHER_IS_BETTER = frozenset({"throughput_rps"})
# A ratio within 5% of 1 is not called a change, whatever the spread says.
MIN_CHANGE = 0.05
# Environment fields that must agree for absolute figures to be comparable.
COMPARABLE_FIELDS = ("cpu_model", "logical_cpus", "kernel", "hostname", "placement")


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
        result.matched.append(CellComparison(group_a.key, describe(group_a), changes))
    result.only_in_b = [g.key for g in b.groups if g.key not in keys_a]
    return result


def describe(group: CellGroup) -> str:
    parts = [group.scenario, series_label(group), f"c{group.connections}"]
    if group.size_bytes is not None:
        parts.append(f"{group.size_bytes} B")
    if group.rate_rps is not None:
        parts.append(f"{group.rate_rps:,.0f} req/s")
    if group.phase:
        parts.append(group.phase)
    return " ".join(parts)


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
