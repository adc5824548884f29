"""Rounds: the models of one matrix point measured side by side, in a fresh order each time.

A shared machine drifts: the same cell measured a minute apart differs by
10-30%. Measured model after model, a slow minute lands on one model and
becomes a difference between models. So the cells of a run are ordered in
rounds (a round is one repetition, ``Cell.repetition``): within a round and
a scenario, the models of one matrix point (``point_key``) run one after
another, in an order shuffled afresh for every point of every round from
the run's seed (recorded in the matrix, so ``--resume`` keeps it). A slow
minute then hits every model of the point alike, and the ratio of two models
in the same round cancels it (``CellGroup.ratio_to``).

Where a scenario is measured in place (``RunScenario.rounds_in_place``) the
order is the same; only what a round costs differs: its point's servers and
load generators are started before its first round and stay up, paused,
until its last (runner.Member), so a round costs its warm-up and window, not
a start, and the rounds still lie a run's length apart.

What depends on an earlier cell keeps its place: scenarios stay in the order
:func:`~iobench.benchmarks.run.matrix.expand` gives (closed before the open
cells that take a fraction of its peak) and points in their first order (a
scale model's small idle counts before its large ones).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from iobench.benchmarks.results.loader import point_key
from iobench.benchmarks.run.matrix import Cell, Profile


def round_order(seed: int, repetition: int, point: str) -> random.Random:
    """The generator that shuffles one point's models in one round: the same for a resume."""
    return random.Random(f"{seed}:{repetition}:{point}")


def interleave(cells: Iterable[Cell], seed: int) -> list[Cell]:
    """``cells`` by round and scenario, each point's models together and shuffled."""
    blocks: dict[tuple[int, str], dict[str, list[Cell]]] = {}
    for cell in cells:
        points = blocks.setdefault((cell.repetition, cell.scenario), {})
        points.setdefault(point_key(cell.key), []).append(cell)
    ordered: list[Cell] = []
    for (repetition, _), points in sorted(blocks.items(), key=lambda item: item[0][0]):
        for point, members in points.items():
            members = list(members)
            round_order(seed, repetition, point).shuffle(members)
            ordered += members
    return ordered


def scenario_rounds(profile: Profile) -> dict[str, int]:
    """How many rounds each scenario gets: the profile's ``rounds``, else ``repeat``."""
    extra = profile.spec.get("rounds") or {}
    return {scenario: max(profile.repeat, int(extra.get(scenario, 0)))
            for scenario in profile.spec if isinstance(profile.spec.get(scenario), dict)}


def with_rounds(profile: Profile, cells: list[Cell]) -> list[Cell]:
    """``cells`` (one set per ``repeat``) plus the extra rounds ``rounds`` asks for."""
    wanted = scenario_rounds(profile)
    first = [c for c in cells if c.repetition == 0]
    extra = []
    for repetition in range(profile.repeat, max(wanted.values(), default=0)):
        for cell in first:
            if wanted.get(cell.scenario, 0) > repetition:
                extra.append(_copy(cell, repetition))
    return cells + extra


def _copy(cell: Cell, repetition: int) -> Cell:
    from dataclasses import replace

    return replace(cell, repetition=repetition)
