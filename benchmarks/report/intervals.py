"""Figures with their 95% intervals, and models compared by paired rounds, as text.

Every table cell that shows a headline figure shows its interval too
(``143,200 ±3%``), and one wider than ±10% carries :data:`IMPRECISE_MARK`
with :data:`IMPRECISE_NOTE` under its table. A comparison between two
models of one matrix point is the trimmed geometric mean of their per-round
ratios with its interval (``0.93x [0.90, 0.96]``), never a ratio of two figures measured
minutes apart: see ``iobench.benchmarks.results.stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

from iobench.benchmarks.report.presentation import format_value, style
from iobench.benchmarks.results.loader import CellGroup
from iobench.benchmarks.results.stats import IMPRECISE_FRACTION, Interval, format_interval

IMPRECISE_MARK = "†"
IMPRECISE_NOTE = (f"{IMPRECISE_MARK} imprecise: its 95% interval is wider than "
                  f"±{IMPRECISE_FRACTION:.0%} of the figure; ± is the interval's wider side "
                  "as a share of the figure")
# The model others are compared with where it was measured: the kernel's own
# readiness interface, the fast models' common ground.
REFERENCE_MODELS = ("epoll", "select")
# Metrics a comparison between models quotes, and which way is better.
RATIO_METRICS = ("throughput_rps", "cpu_us_per_request")
HIGHER_IS_BETTER = frozenset({"throughput_rps"})
# A paired ratio whose interval lies wholly beyond 1 +- this is called a difference.
RATIO_THRESHOLD = 0.05


def with_interval(metric: str, value: float, interval: Interval | None) -> str:
    """'143,200 ±3%', '143,200 ±13%†' (imprecise), or the bare value without an interval."""
    text = format_value(metric, value)
    width = format_interval(interval)
    if not width:
        return text
    mark = IMPRECISE_MARK if interval is not None and interval.imprecise_for(metric) else ""
    return f"{text} {width}{mark}"


def group_text(group: CellGroup, metric: str, *, plausible_only: bool = False) -> str | None:
    """The group's figure of ``metric`` with its interval; None when no round has it."""
    spread = group.metric(metric, plausible_only=plausible_only)
    if spread is None:
        return None
    return with_interval(metric, spread.value,
                         group.interval(metric, plausible_only=plausible_only))


def imprecise(group: CellGroup, metric: str) -> bool:
    interval = group.interval(metric)
    return interval is not None and interval.imprecise_for(metric)


def ratio_text(interval: Interval | None) -> str:
    """'0.93x [0.90, 0.96]'; '0.93x (one round)' without an interval; '-' without a ratio."""
    if interval is None:
        return "-"
    if interval.n < 2:
        return f"{interval.value:.2f}x (one round)"
    return f"{interval.value:.2f}x [{interval.low:.2f}, {interval.high:.2f}]"


def ratio_verdict(metric: str, interval: Interval | None,
                  threshold: float = RATIO_THRESHOLD) -> str:
    """'better', 'worse', 'same' (interval within 1 +- threshold) or 'inconclusive'."""
    if interval is None or interval.n < 2:
        return "inconclusive"
    if interval.low > 1 + threshold or interval.high < 1 - threshold:
        higher = interval.low > 1
        return "better" if higher == (metric in HIGHER_IS_BETTER) else "worse"
    if 1 - threshold <= interval.low and interval.high <= 1 + threshold:
        return "same"
    return "inconclusive"


@dataclass(frozen=True)
class ModelRatio:
    """One model against the reference at one matrix point, per metric."""

    model: str
    reference: str
    ratios: dict[str, Interval | None]


def reference_of(groups: list[CellGroup]) -> CellGroup | None:
    """The group models are compared with at this point (epoll, else select)."""
    by_label = {g.model: g for g in groups if not g.failed and not g.params}
    for name in REFERENCE_MODELS:
        if name in by_label:
            return by_label[name]
    return None


def model_ratios(groups: list[CellGroup],
                 metrics: tuple[str, ...] = RATIO_METRICS) -> list[ModelRatio]:
    """Every model of one point against its reference, round by round."""
    reference = reference_of(groups)
    if reference is None:
        return []
    found = []
    for group in groups:
        if group is reference or group.failed or group.model is None:
            continue
        label = group.model + (f" ({', '.join(f'{k}={v}' for k, v in group.params.items())})"
                               if group.params else "")
        found.append(ModelRatio(label, str(reference.model),
                                {m: group.ratio_to(reference, m) for m in metrics}))
    return found


def ratio_rows(groups: list[CellGroup],
               metrics: tuple[str, ...] = RATIO_METRICS) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of a table of paired ratios to the reference model."""
    ratios = model_ratios(groups, metrics)
    if not ratios:
        return [], []
    reference = ratios[0].reference
    headers = (["model"] + [f"{style(m).title} / {reference}'s" for m in metrics]
               + ["rounds", "verdict"])
    rows = []
    for ratio in ratios:
        verdicts = [f"{style(m).title} {ratio_verdict(m, ratio.ratios[m])}" for m in metrics]
        rows.append([ratio.model] + [ratio_text(ratio.ratios[m]) for m in metrics]
                    + [rounds_text(ratio), "; ".join(verdicts)])
    return headers, rows


def rounds_text(ratio: ModelRatio) -> str:
    """'65 on 13 servers' when the intervals are over servers, else the rounds: '3'."""
    interval = next((i for i in ratio.ratios.values() if i is not None), None)
    if interval is None:
        return "-"
    return f"{interval.n} on {interval.servers} servers" if interval.servers else str(interval.n)
