"""A cell's figure, its 95% interval, and paired ratios between models.

A cell's figure is the **20% trimmed mean** of its rounds (repetitions spread
in time): the rounds sorted, the lowest and highest fifth set aside, the rest
averaged. Rounds on a shared machine are not normal: a slow minute makes
outliers on one side, and a run that drifts spreads its rounds flat across a
range. The mean follows every outlier; the median ignores them but, on a flat
spread, needs about three times the rounds the mean does for the same
precision (its variance is 3x the mean's on a uniform spread). The trimmed
mean is the usual robust choice between the two (Wilcox, *Introduction to
Robust Estimation and Hypothesis Testing*, ch. 3): an outlier in the outer
fifth does not move it, and on a flat spread it needs about 1.8 times the
rounds the mean does, against 3 times for the median.

Its interval is Tukey and McLaughlin's, as Yuen (1974) writes it: ``tm +-
t(0.975, h - 1) * s_w * sqrt((n - 1) / (h (h - 1)))``, with ``g = floor(0.2 n)``
rounds trimmed from each side, ``h = n - 2g`` kept, and ``s_w`` the standard
deviation of the winsorized rounds (each trimmed round replaced by the nearest
kept one). Below 5 rounds nothing is trimmed and this is Student's t interval
of the mean: wide at 3 rounds (t = 4.30), as it should be. Figures that
cannot be negative (all of the headline ones) keep a low end of at least 0.
One round has no interval (None), never a zero-width one.

A comparison of two models is the ratio of their figures in the same round
(:func:`paired_ratio`): the rounds' drift hits both sides alike and cancels.
The ratios are averaged on their logarithms (a trimmed geometric mean, so that
B/A is exactly the inverse of A/B) and get their interval the same way. With the drift
gone, what is left is mostly how one server differs from the next, and the
rounds one server measures in place share that: they are not independent of
each other. So where the rounds come from three servers or more (``clusters``:
round -> the servers that measured it), each server's rounds give one figure
(their trimmed mean), and the comparison is the mean of those with Student's
t interval over the servers, not over rounds that would count each server's
rounds as independent evidence. With fewer servers
(a quick run measures every round of a model on one) the rounds stay the
units, and the interval leaves out how servers differ.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
# The share of rounds set aside on each side before averaging.
TRIM = 0.2
# Student's t at 0.975 for 1..3 degrees of freedom; from 4 on, Hill's expansion
# (``t_975``) is within 0.001 of the table.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182}
# An interval wider than this on either side of its figure is marked imprecise.
IMPRECISE_FRACTION = 0.10
# The figures every cell is judged by: their intervals are stored, shown, and
# what ``iobench run --precision`` narrows.
HEADLINE_METRICS = ("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request",
                    "server_cpu_percent")
# An interval this narrow in the metric's own unit is precise whatever its
# share of the figure: an idle server's 0.2% of a core cannot be pinned to
# +-5% of itself, nor a 20 us latency below the histogram's 1 us steps.
ABSOLUTE_PRECISION = {"server_cpu_percent": 1.0, "p50_us": 2.0, "p99_us": 2.0,
                      "cpu_us_per_request": 0.2}
METHOD = "20% trimmed mean, Tukey-McLaughlin"
# Rounds from at least this many servers are grouped by server (see above).
MIN_CLUSTERS = 3


@dataclass(frozen=True)
class Interval:
    """A figure (the 20% trimmed mean) and the 95% interval around it, from ``n``
    independent samples."""

    value: float
    low: float
    high: float
    n: int
    method: str
    # The servers (clusters of rounds) the interval is over; None: over the rounds.
    servers: int | None = None

    @property
    def half_width(self) -> float | None:
        """The larger side of the interval as a fraction of the figure (0.03 = +-3%)."""
        if self.value == 0:
            return None
        return max(self.high - self.value, self.value - self.low) / abs(self.value)

    @property
    def imprecise(self) -> bool:
        width = self.half_width
        return width is None or width > IMPRECISE_FRACTION

    def within(self, fraction: float, metric: str | None = None) -> bool:
        """No wider than ``fraction`` of the figure on either side (or, for ``metric``,
        than its :data:`ABSOLUTE_PRECISION`)."""
        floor = ABSOLUTE_PRECISION.get(metric or "")
        if floor is not None and max(self.high - self.value, self.value - self.low) <= floor:
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


def t_975(df: int) -> float:
    """Student's t quantile at 0.975 for ``df`` degrees of freedom."""
    if df in T_975:
        return T_975[df]
    z = 1.959964
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z)
            / (92160 * df ** 4))


def _finite(values: Sequence[float | None]) -> list[float]:
    return sorted(float(v) for v in values if v is not None and math.isfinite(v))


def figure(values: Sequence[float | None]) -> float | None:
    """The 20% trimmed mean of ``values`` (None when there are none)."""
    data = _finite(values)
    if not data:
        return None
    g = int(TRIM * len(data))
    return statistics.fmean(data[g:len(data) - g])


def figure_interval(values: Sequence[float | None], trim: float = TRIM, *,
                    floor: bool = True) -> Interval | None:
    """The figure of ``values`` and its 95% interval (see the module's docstring); with
    ``trim`` 0, the mean and Student's t interval. ``floor``: values none of which is
    negative keep a low end of at least 0 (not for logarithms)."""
    data = _finite(values)
    n = len(data)
    if n < 2:
        return None
    g = int(trim * n)
    value = statistics.fmean(data[g:n - g])
    winsorized = [min(max(v, data[g]), data[n - g - 1]) for v in data]
    kept = n - 2 * g
    half = t_975(kept - 1) * statistics.stdev(winsorized) * math.sqrt((n - 1) / (kept * (kept - 1)))
    low = value - half
    if floor and data[0] >= 0:
        low = max(low, 0.0)
    return Interval(value, low, value + half, n, METHOD)


def clustered_interval(values: Mapping[int, float],
                       clusters: Mapping[int, Hashable] | None = None, *,
                       floor: bool = True) -> Interval | None:
    """The figure of ``values`` (round -> value) and its interval; over the clusters'
    figures when the rounds come from at least ``MIN_CLUSTERS`` of them (see the
    module's docstring), else over the rounds. ``n`` counts the rounds either way."""
    rounds = sorted(r for r, v in values.items() if v is not None and math.isfinite(v))
    groups: dict[Hashable, list[float]] = {}
    for r in rounds:
        groups.setdefault(clusters.get(r, ("round", r)) if clusters else ("round", r),
                          []).append(values[r])
    if len(groups) < MIN_CLUSTERS or len(groups) == len(rounds):
        return figure_interval([values[r] for r in rounds], floor=floor)
    # The servers' figures are trimmed means already; trimming them again would
    # leave a handful of servers too few to say how far they spread.
    interval = figure_interval([figure(g) for g in groups.values()], trim=0.0, floor=floor)
    assert interval is not None
    return Interval(interval.value, interval.low, interval.high, len(rounds),
                    "mean over servers of their 20% trimmed means, Student t",
                    servers=len(groups))


def paired_ratio(a: Mapping[int, float], b: Mapping[int, float],
                 clusters: Mapping[int, Hashable] | None = None) -> Interval | None:
    """The ratio ``b / a`` over paired rounds (round -> figure), as a figure with its
    interval; ``clusters`` (round -> the servers that measured it) as for
    :func:`clustered_interval`.

    Ratios are averaged on their logarithms (the figure is a trimmed geometric
    mean), as ratios compose: b/a is then exactly the inverse of a/b, interval
    and all, and 2x in one round and 0.5x in the next average to 1x, not 1.25x.

    With a single paired round the ratio has no interval: ``n`` is 1 and low
    and high are the ratio itself, so a caller can show it but not judge it.
    """
    ratios = {r: b[r] / a[r] for r in sorted(a) if r in b and a[r] and a[r] > 0
              and b[r] is not None and b[r] > 0}
    if not ratios:
        return None
    if len(ratios) == 1:
        (only,) = ratios.values()
        return Interval(only, only, only, 1, "one round")
    logs = clustered_interval({r: math.log(v) for r, v in ratios.items()}, clusters,
                              floor=False)
    assert logs is not None
    return Interval(math.exp(logs.value), math.exp(logs.low), math.exp(logs.high), logs.n,
                    f"{logs.method}, on logarithms", servers=logs.servers)


def format_interval(interval: Interval | None) -> str:
    """'+-3%' (empty when there is no interval)."""
    width = interval.half_width if interval is not None and interval.n > 1 else None
    if width is None:
        return ""
    return f"±{width * 100:.0f}%" if width >= 0.01 else "±<1%"
