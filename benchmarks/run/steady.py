"""Steady state: did a cell's figures hold still during its measured window?

A window's figure is one number only if the process under it was steady. A
server still forking children, a load generator still connecting, or a
neighbour that woke half-way all show as a step or a trend in the slices of
the window. The runner reads the server's CPU every 0.1 s; here those
readings are cut into equal slices and the slices are searched for the one
split (a change point) that best separates an earlier level from a later one.
A split whose two levels differ by more than ``STEP_FRACTION`` of the
cell's level and by more than ``NOISE_FACTOR`` standard errors of the slices'
own scatter flags the cell ``unsteady``, with what was seen; a steady linear
drift shows the same way, as the two halves' levels differ.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from iobench.benchmarks.run.sampler import TreeReading

UNSTEADY = "unsteady"
# Slices a window is cut into, at most: 0.1 s readings over a 0.5-1.5 s window.
MAX_SLICES = 8
# Fewer slices than this cannot show a change point against its own noise.
MIN_SLICES = 4
# A level change of less than this share of the cell's figure does not matter
# beside the rounds' own spread.
STEP_FRACTION = 0.15
# ... and it must stand out of the slices' scatter by this many standard errors.
NOISE_FACTOR = 3.0
# Below this many % of a core, a change is too small to flag, whatever its share.
MIN_STEP_PERCENT = 3.0


@dataclass(frozen=True)
class Step:
    """The best change point of a series of slices: where, and the levels either side."""

    at_s: float
    before: float
    after: float
    significance: float


def cpu_slices(readings: Sequence[TreeReading], start_s: float,
               end_s: float) -> list[tuple[float, float]]:
    """(middle time from ``start_s``, CPU % of one core) per slice of the window."""
    inside = [r for r in readings if start_s <= r.t_s <= end_s]
    if len(inside) < MIN_SLICES + 1:
        return []
    count = min(MAX_SLICES, len(inside) - 1)
    # Slices between readings, each spanning whole gaps, about equal in time.
    step = (len(inside) - 1) / count
    bounds = sorted({round(i * step) for i in range(count + 1)})
    slices = []
    for a, b in itertools.pairwise(bounds):
        first, last = inside[a], inside[b]
        elapsed = last.t_s - first.t_s
        if elapsed > 0:
            slices.append(((first.t_s + last.t_s) / 2 - start_s,
                           100.0 * (last.cpu_s - first.cpu_s) / elapsed))
    return slices


def change_point(values: Sequence[float]) -> tuple[int, float] | None:
    """The split index (values[:k] vs values[k:], two or more on each side) that best
    separates two levels, and its statistic in standard errors."""
    best: tuple[int, float] | None = None
    for k in range(2, len(values) - 1):
        left, right = values[:k], values[k:]
        residuals = [v - statistics.fmean(left) for v in left] + \
            [v - statistics.fmean(right) for v in right]
        spread = math.sqrt(sum(r * r for r in residuals) / max(1, len(values) - 2))
        error = spread * math.sqrt(1 / len(left) + 1 / len(right))
        difference = abs(statistics.fmean(right) - statistics.fmean(left))
        score = difference / error if error > 0 else (math.inf if difference else 0.0)
        if best is None or score > best[1]:
            best = (k, score)
    return best


def find_step(slices: Sequence[tuple[float, float]]) -> Step | None:
    """The change point of the slices if it is large and clear enough to flag."""
    if len(slices) < MIN_SLICES:
        return None
    values = [v for _, v in slices]
    found = change_point(values)
    if found is None:
        return None
    k, score = found
    before, after = statistics.fmean(values[:k]), statistics.fmean(values[k:])
    level = abs(statistics.median(values))
    change = abs(after - before)
    if change < MIN_STEP_PERCENT or level == 0 or change / level < STEP_FRACTION \
            or score < NOISE_FACTOR:
        return None
    at_s = (slices[k - 1][0] + slices[k][0]) / 2
    return Step(at_s, before, after, score)


def describe(step: Step, window_s: float) -> str:
    """'server CPU went from 48% to 71% of a core 0.6 s into its 1.0 s window'."""
    return (f"server CPU went from {step.before:.0f}% to {step.after:.0f}% of a core "
            f"{step.at_s:.1f} s into its {window_s:.1f} s window "
            f"({step.significance:.0f} standard errors): the cell was not in a steady state")
