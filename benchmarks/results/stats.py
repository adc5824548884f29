"""95% intervals for the median of independent samples, and for paired ratios.

A cell's figure is the median of its rounds (repetitions spread in time);
its interval says where the median of many more rounds would lie. Rounds
on a shared machine are not normal (a slow minute makes outliers on one
side), so the interval is distribution-free where the sample allows it:

- **n >= 6: order statistics.** The number of rounds below the true median
  is Binomial(n, 1/2) whatever the distribution, so ``[x(k), x(n-k+1)]``
  covers the median with probability ``sum_{i=k}^{n-k} C(n, i) / 2^n``; ``k``
  is the largest rank that keeps this at or above 95%. Exact, no resampling,
  the same answer every time, and an outlier moves it by one rank at most.
- **n = 2..5: Student's t on the logarithms.** No pair of order statistics
  covers the median with 95% here (min-max covers 50, 75, 87.5, 93.75%), and
  a bootstrap of so few values collapses onto them. The logarithms of
  throughput, latency and CPU figures are close to symmetric, where the
  median is the geometric mean, so ``exp(mean(log x) +- t(0.975, n-1) s/sqrt(n))``
  is its interval: wide at n = 3 (t = 4.30), as it should be.
- **n = 1**: no interval (None), never a zero-width one.

A comparison of two models is the ratio of their figures in the same round
(:func:`paired_ratio`): the rounds' drift hits both sides alike and cancels,
and the ratios' median gets its interval the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

CONFIDENCE = 0.95
# Below this many samples no pair of order statistics reaches 95% (see above).
MIN_ORDER_STATISTIC_N = 6
# Student's t at 0.975 for 1..4 degrees of freedom: the only ones used.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}
# An interval wider than this on either side of its median is marked imprecise.
IMPRECISE_FRACTION = 0.10
# The figures every cell is judged by: their intervals are stored, shown, and
# what ``iobench run --precision`` narrows.
HEADLINE_METRICS = ("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request",
                    "server_cpu_percent")
# An interval this narrow in the metric's own unit is precise whatever its
# share of the median: an idle server's 0.2% of a core cannot be pinned to
# +-5% of itself, nor a 20 us latency below the histogram's 1 us steps.
ABSOLUTE_PRECISION = {"server_cpu_percent": 1.0, "p50_us": 2.0, "p99_us": 2.0,
                      "cpu_us_per_request": 0.2}
METHOD_ORDER = "order statistics"
METHOD_LOG_T = "Student t on logs"
METHOD_T = "Student t"


@dataclass(frozen=True)
class Interval:
    """A median and the 95% interval around it, from ``n`` independent samples."""

    median: float
    low: float
    high: float
    n: int
    method: str

    @property
    def half_width(self) -> float | None:
        """The larger side of the interval as a fraction of the median (0.03 = +-3%)."""
        if self.median == 0:
            return None
        return max(self.high - self.median, self.median - self.low) / abs(self.median)

    @property
    def imprecise(self) -> bool:
        width = self.half_width
        return width is None or width > IMPRECISE_FRACTION

    def within(self, fraction: float, metric: str | None = None) -> bool:
        """No wider than ``fraction`` of the median on either side (or, for ``metric``,
        than its :data:`ABSOLUTE_PRECISION`)."""
        floor = ABSOLUTE_PRECISION.get(metric or "")
        if floor is not None and max(self.high - self.median, self.median - self.low) <= floor:
            return True
        width = self.half_width
        return width is not None and width <= fraction

    def imprecise_for(self, metric: str) -> bool:
        """Wider than ``IMPRECISE_FRACTION`` (and the metric's absolute precision)."""
        return not self.within(IMPRECISE_FRACTION, metric)

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high

    def above(self, threshold: float) -> bool:
        return self.low > threshold

    def below(self, threshold: float) -> bool:
        return self.high < threshold

    def as_pair(self, digits: int = 6) -> list[float]:
        """``[low, high]`` for JSON, rounded to ``digits`` significant digits."""
        return [significant(self.low, digits), significant(self.high, digits)]


def significant(value: float, digits: int) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@cache
def order_ranks(n: int) -> tuple[int, float]:
    """The lower rank ``k`` (1-based) of the order-statistic interval and its coverage."""
    best = (1, 1.0 - 2.0 * 0.5 ** n)
    for k in range(1, n // 2 + 1):
        coverage = sum(math.comb(n, i) for i in range(k, n - k + 1)) / 2 ** n
        if coverage < CONFIDENCE:
            break
        best = (k, coverage)
    return best


def median_interval(values: Sequence[float]) -> Interval | None:
    """The median of ``values`` and its 95% interval (see the module's docstring)."""
    data = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(data)
    if n < 2:
        return None
    median = statistics.median(data)
    if n >= MIN_ORDER_STATISTIC_N:
        k, _ = order_ranks(n)
        return Interval(median, data[k - 1], data[n - k], n, METHOD_ORDER)
    t = T_975[n - 1]
    if data[0] == data[-1]:
        return Interval(median, median, median, n, METHOD_LOG_T)
    if data[0] > 0:
        logs = [math.log(v) for v in data]
        centre, spread = statistics.fmean(logs), statistics.stdev(logs)
        half = t * spread / math.sqrt(n)
        return Interval(median, min(median, math.exp(centre - half)),
                        max(median, math.exp(centre + half)), n, METHOD_LOG_T)
    centre, spread = statistics.fmean(data), statistics.stdev(data)
    half = t * spread / math.sqrt(n)
    return Interval(median, min(median, centre - half), max(median, centre + half), n, METHOD_T)


def coverage(n: int) -> float | None:
    """The confidence of :func:`median_interval` with ``n`` samples (None below 2)."""
    if n < 2:
        return None
    return order_ranks(n)[1] if n >= MIN_ORDER_STATISTIC_N else CONFIDENCE


def paired_ratios(a: Mapping[int, float], b: Mapping[int, float]) -> list[float]:
    """``b / a`` in every round both have, ``a`` above zero."""
    return [b[r] / a[r] for r in sorted(a) if r in b and a[r] and a[r] > 0
            and b[r] is not None]


def paired_ratio(a: Mapping[int, float], b: Mapping[int, float]) -> Interval | None:
    """The median ratio ``b / a`` over paired rounds (round -> figure), with its interval.

    With a single paired round the ratio has no interval: ``n`` is 1 and low
    and high are the ratio itself, so a caller can show it but not judge it.
    """
    ratios = paired_ratios(a, b)
    if not ratios:
        return None
    if len(ratios) == 1:
        return Interval(ratios[0], ratios[0], ratios[0], 1, "one round")
    return median_interval(ratios)


def format_interval(interval: Interval | None) -> str:
    """'+-3%' (empty when there is no interval)."""
    width = interval.half_width if interval is not None and interval.n > 1 else None
    if width is None:
        return ""
    return f"±{width * 100:.0f}%" if width >= 0.01 else "±<1%"
