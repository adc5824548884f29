"""``iobench run --precision 5% [--budget 20m]``: rounds until the intervals are narrow.

As netperf's confidence loop (``-i max,min -I level,width``) does: after the
planned rounds, a cell whose headline intervals (``HEADLINE_METRICS``, or
the profile's ``precision_metrics``) are wider than the target on either
side of the figure gets another round, and so does every other model of its
matrix point, so that comparisons stay paired round by round. One point's
round at a time, the point with the fewest rounds first (the cheapest among
equals), so a budget too small for every point still narrows the ones it can.
Rounds are added until every interval is narrow enough or no round fits in
what is left of the budget; the run then names the cells that did not get
there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from iobench.benchmarks.results.loader import group_cells, point_key
from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.results.stats import HEADLINE_METRICS, figure_interval
from iobench.benchmarks.run.matrix import Cell
from iobench.benchmarks.run.rounds import interleave
from iobench.common.errors import UsageError

# Fewer rounds than this never count as precise: an interval from two is too
# easily narrow by chance (two equal figures give a zero width).
MIN_ROUNDS = 3
# Nor rounds from fewer servers than this (``CellRecord.server_round``): the
# rounds one server measures in place agree more closely than two servers do,
# so an interval from one or two servers is narrow by chance. At the
# precision-probe point, seven rounds on one server gave threads' throughput
# ratio to epoll as 0.746x [0.734, 0.758], and 88 rounds on 17 servers of the
# run before 0.814x [0.794, 0.834].
MIN_SERVERS = 3
# A target looser than this is not what --precision is for; tighter is not
# reachable on a shared machine in any budget.
TARGET_RANGE = (0.005, 0.5)
DEFAULT_BUDGET_S = 20 * 60.0
# A point's rounds at most, whatever the budget: a bound on the loop.
MAX_ROUNDS = 200
# The rounds it adds are measured in place (Runner.run's extra_rounds), on
# one server and load generator per model for at most this many, then on a
# fresh pair: a model's rounds then sample several of its servers, whose
# figures differ by a few percent from one to the next (threads' throughput
# ratio to epoll read 0.82x [0.81, 0.85] over 42 rounds of one server each
# and 0.80x [0.77, 0.81] over 35 in a second run), at a server start (about
# half a round) every few rounds.
ROUNDS_PER_SERVER = 5
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_precision(text: str) -> float:
    """'5%' or '5' -> 0.05; UsageError otherwise."""
    try:
        value = float(text.strip().rstrip("%")) / 100
    except ValueError:
        raise UsageError(f"bad --precision {text!r}: expected a percentage like 5%") from None
    low, high = TARGET_RANGE
    if not low <= value <= high:
        raise UsageError(f"bad --precision {text!r}: must be {low:.1%}-{high:.0%}")
    return value


def parse_budget(text: str) -> float:
    """'20m', '90s', '1h' or seconds -> seconds; UsageError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise UsageError(f"bad --budget {text!r}: expected a duration like 20m, 90s or 1h")
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not 0 < seconds <= 24 * 3600:
        raise UsageError(f"bad --budget {text!r}: must be more than 0 and at most 24h")
    return seconds


def check_metrics(names: list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in HEADLINE_METRICS]
    if unknown:
        raise UsageError(f"unknown precision_metrics {', '.join(unknown)}; valid: "
                         f"{', '.join(HEADLINE_METRICS)}")
    return tuple(names) or HEADLINE_METRICS


def shortfalls(cells: list[CellRecord], target: float,
               metrics: tuple[str, ...]) -> dict[str, list[str]]:
    """Cell key -> what is not yet within ``target`` ('throughput +-7% (n=4)').

    A key none of whose rounds succeeded is left out: more rounds of a cell
    that fails do not make it precise. So is a metric no round has. A key
    measured on fewer than ``MIN_SERVERS`` servers is not precise yet.
    """
    found: dict[str, list[str]] = {}
    for group in group_cells(cells):
        if group.failed:
            continue
        servers = servers_of(group.ok_cells)
        for metric in metrics:
            values = group.values(metric)
            if not values:
                continue
            interval = figure_interval(values)
            if interval is None or len(values) < MIN_ROUNDS:
                found.setdefault(group.key, []).append(f"{metric} (n={len(values)})")
            elif servers < MIN_SERVERS:
                found.setdefault(group.key, []).append(
                    f"{metric} (n={len(values)}, {servers} of {MIN_SERVERS} servers)")
            elif not interval.within(target, metric):
                width = interval.half_width
                shown = f"±{width:.1%}" if width is not None else "unbounded"
                found.setdefault(group.key, []).append(f"{metric} {shown} (n={interval.n})")
    return found


def servers_of(records: list[CellRecord]) -> int:
    """How many servers measured ``records`` (``CellRecord.on_fresh_server``)."""
    return sum(1 for record in records if record.on_fresh_server)


@dataclass
class PrecisionLoop:
    """Yields the planned cells, then rounds for the points still imprecise.

    ``store_cells`` is read before each added round, so it sees the cells the
    runner has recorded so far. ``estimate`` gives a cell's planned seconds.
    """

    planned: list[Cell]
    store_cells: Callable[[], list[CellRecord]]
    target: float
    budget_s: float
    metrics: tuple[str, ...]
    seed: int
    estimate: Callable[[Cell], float]
    clock: Callable[[], float] = time.monotonic
    # Every cell of the matrix, when ``planned`` is only what a resume has left.
    matrix: list[Cell] | None = None
    # Told the keys of the points that get no more rounds, each time the loop
    # looks (the runner stops what it kept for them: Runner.release).
    settled: Callable[[list[str]], None] | None = None
    started: float | None = None
    rounds_added: int = 0
    unmet: dict[str, list[str]] = field(default_factory=dict)
    stopped_by: str | None = None

    def __iter__(self) -> Iterator[Cell]:
        if self.started is None:
            self.started = self.clock()
        yield from self.planned
        templates: dict[str, list[Cell]] = {}
        for cell in self.matrix if self.matrix is not None else self.planned:
            members = templates.setdefault(point_key(cell.key), [])
            if cell.key not in {c.key for c in members}:
                members.append(cell)
        while True:
            recorded = self.store_cells()
            self.unmet = shortfalls(recorded, self.target, self.metrics)
            if self.settled is not None:
                wanted = {point_key(key) for key in self.unmet}
                self.settled([cell.key for point, members in templates.items()
                              if point not in wanted for cell in members])
            if not self.unmet:
                self.stopped_by = "precise"
                return
            batch = self.next_round(templates, recorded)
            if batch is None:
                return
            self.rounds_added += 1
            yield from batch

    def next_round(self, templates: dict[str, list[Cell]],
                   recorded: list[CellRecord]) -> list[Cell] | None:
        """One more round of one imprecise point, all its models: the point with the
        fewest rounds (the cheapest first among equals) whose round fits the budget.
        None, with ``stopped_by`` set, when no round is to be added."""
        rounds: dict[str, int] = {}
        taken: dict[str, float] = {}
        for record in recorded:
            point = point_key(record.key)
            rounds[point] = max(rounds.get(point, 0), record.repetition + 1)
            if record.duration_s is not None:
                taken[record.key] = max(taken.get(record.key, 0.0), record.duration_s)
        candidates = []
        for point in sorted({point_key(key) for key in self.unmet}):
            members = templates.get(point)
            if not members or rounds.get(point, 0) >= MAX_ROUNDS:
                continue
            # A round is planned at the longest its cells took so far, when that
            # was longer than planned (a busy machine starts processes slowly).
            cost = sum(max(self.estimate(c), taken.get(c.key, 0.0)) for c in members)
            candidates.append((rounds.get(point, 0), cost, point))
        if not candidates:
            self.stopped_by = f"{MAX_ROUNDS} rounds" if self.unmet else "nothing to add"
            return None
        assert self.started is not None
        left = self.budget_s - (self.clock() - self.started)
        for count, cost, point in sorted(candidates):
            if cost <= left:
                batch = [replace(cell, repetition=count) for cell in templates[point]]
                return interleave(batch, self.seed)
        self.stopped_by = "budget"
        return None

    def summary(self) -> dict[str, object]:
        """What the loop did, for results.json (``precision``)."""
        return {"target": self.target, "budget_s": self.budget_s,
                "metrics": list(self.metrics), "rounds_added": self.rounds_added,
                "stopped_by": self.stopped_by,
                "unmet": {key: reasons for key, reasons in sorted(self.unmet.items())}}
