"""Read a run's ``results.json`` for plots, the report and comparisons.

The runner writes the file (``iobench.benchmarks.results.store``); everything here only reads
it, checks that it is a results file this version understands, and groups the
cells of one matrix point across repetitions, so every consumer computes the
figure (``stats.figure``) and the spread the same way. A file that is missing, not JSON, or of an
unknown schema is a :class:`~iobench.common.errors.UsageError`: one clear line, not a
traceback.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from iobench.benchmarks.results import plausibility, stats
from iobench.benchmarks.results.record import CellRecord, RecordError
from iobench.benchmarks.results.scenarios import check_scenario
from iobench.benchmarks.results.stats import (
    Interval,
    clustered_interval,
    figure_interval,
    paired_ratio,
)
from iobench.common.errors import UsageError
from iobench.common.histograms import new_histogram


@dataclass(frozen=True)
class Spread:
    """The figure (20% trimmed mean, ``stats.figure``) and the min-max range of one
    metric over repetitions."""

    value: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        figure = stats.figure(values)
        assert figure is not None, "a spread of no values"
        return cls(figure, min(values), max(values), len(values))

    def overlaps(self, other: Spread) -> bool:
        """True when the two min-max ranges share a value."""
        return self.low <= other.high and other.low <= self.high


@dataclass
class CellGroup:
    """Every repetition of one matrix point (one ``key``)."""

    key: str
    cells: list[CellRecord] = field(default_factory=list)

    @property
    def first(self) -> CellRecord:
        return self.cells[0]

    @property
    def scenario(self) -> str:
        return self.first.scenario

    @property
    def model(self) -> str | None:
        """None for a cell without a server (the neighbour running alone)."""
        return self.first.model

    @property
    def params(self) -> dict[str, Any]:
        return self.first.params

    @property
    def mode(self) -> str | None:
        return self.first.mode

    @property
    def connections(self) -> int | None:
        return self.first.connections

    @property
    def size_bytes(self) -> int | None:
        return self.first.size_bytes

    @property
    def rate_rps(self) -> float | None:
        """The offered rate; the median over successful repetitions when each measured
        its own (a fraction of that repetition's closed-loop peak)."""
        rates = [c.rate_rps for c in self.ok_cells if c.rate_rps is not None]
        if rates:
            return float(statistics.median(rates))
        return self.first.rate_rps

    @property
    def peak_fraction(self) -> float | None:
        """Open loop at a fraction of the model's own closed-loop peak, if so."""
        return self.first.peak_fraction

    @property
    def phase(self) -> str | None:
        return self.first.phase

    @property
    def idle_connections(self) -> int:
        """Scale scenario: the silent connections held beside the active ones."""
        return self.first.idle_connections

    @property
    def requests_per_connection(self) -> int | None:
        """Churn scenario: requests per connection before the next (None: persistent)."""
        return self.first.requests_per_connection

    @property
    def ok_cells(self) -> list[CellRecord]:
        return [c for c in self.cells if c.ok]

    @property
    def plausible_cells(self) -> list[CellRecord]:
        """The successful repetitions that broke no plausibility rule: what verdicts use."""
        return [c for c in self.ok_cells if not c.implausible]

    @property
    def failed(self) -> bool:
        """No repetition succeeded: the point has no numbers, only reasons."""
        return not self.ok_cells

    @property
    def failures(self) -> list[str]:
        """Why repetitions failed, one entry per distinct reason."""
        reasons = [c.reason or "no reason recorded" for c in self.cells if not c.ok]
        return list(dict.fromkeys(reasons))

    @property
    def flags(self) -> list[str]:
        """Flags raised by any successful repetition, in first-seen order."""
        seen: dict[str, None] = {}
        for cell in self.ok_cells:
            seen.update(dict.fromkeys(cell.flags))
        return list(seen)

    def notes(self, flag: str) -> list[str]:
        """Why ``flag`` was raised (or a figure left null), one entry per distinct reason."""
        found = [c.notes[flag] for c in self.ok_cells if flag in c.notes]
        return list(dict.fromkeys(found))

    def values(self, metric: str, *, plausible_only: bool = False) -> list[float]:
        """The metric from every successful repetition that has it."""
        cells = self.plausible_cells if plausible_only else self.ok_cells
        found = []
        for cell in cells:
            value = cell.metrics.get(metric)
            if value is not None:
                found.append(float(value))
        return found

    def metric(self, metric: str, *, plausible_only: bool = False) -> Spread | None:
        """The figure and min-max over repetitions, or None when no repetition has it."""
        values = self.values(metric, plausible_only=plausible_only)
        return Spread.of(values) if values else None

    def interval(self, metric: str, *, plausible_only: bool = False) -> Interval | None:
        """The figure over repetitions and rounds with its 95% interval (None below two)."""
        return figure_interval(self.values(metric, plausible_only=plausible_only))

    def bars(self, metric: str) -> Spread | None:
        """The figure with its 95% interval as ``low``/``high``, for error bars; a point
        of one round keeps its single value (no bar)."""
        spread = self.metric(metric)
        interval = self.interval(metric)
        if spread is None or interval is None:
            return spread
        return Spread(spread.value, interval.low, interval.high, spread.count)

    def by_round(self, metric: str, *, plausible_only: bool = False) -> dict[int, float]:
        """The metric in each round (repetition) that has it: what paired ratios pair."""
        cells = self.plausible_cells if plausible_only else self.ok_cells
        return {c.repetition: float(v) for c in cells
                if (v := c.metrics.get(metric)) is not None}

    def servers(self) -> dict[int, int]:
        """Round (repetition) -> which of the group's servers measured it, counted in
        the order they started: a round on a fresh server (``CellRecord.on_fresh_server``)
        starts the next one."""
        found: dict[int, int] = {}
        count = 0
        for cell in sorted(self.cells, key=lambda c: c.repetition):
            if cell.on_fresh_server:
                count += 1
            found[cell.repetition] = count
        return found

    def ratio_to(self, other: CellGroup, metric: str, *,
                 plausible_only: bool = False) -> Interval | None:
        """This group's metric over ``other``'s, round by round, with its 95% interval
        (over the servers that measured them, where there are enough: ``stats``).

        Only meaningful between models of one matrix point, which are measured
        in the same rounds (``point_key``).
        """
        return paired_ratio(other.by_round(metric, plausible_only=plausible_only),
                            self.by_round(metric, plausible_only=plausible_only),
                            self.paired_servers(other))

    def difference_to(self, other: CellGroup, metric: str, *,
                      plausible_only: bool = False) -> Interval | None:
        """This group's metric minus ``other``'s, round by round, with its interval (a
        difference may be either sign: its low end is not held at 0)."""
        first, second = (g.by_round(metric, plausible_only=plausible_only)
                         for g in (self, other))
        return clustered_interval({r: first[r] - second[r] for r in first if r in second},
                                  self.paired_servers(other), floor=False)

    def paired_servers(self, other: CellGroup) -> dict[int, tuple[int, int]]:
        """Round -> the pair of servers (this group's, ``other``'s) that measured it."""
        mine, theirs = self.servers(), other.servers()
        return {r: (mine[r], theirs[r]) for r in mine if r in theirs}

    @property
    def point(self) -> str:
        return point_key(self.key)

    @cached_property
    def merged_histogram(self) -> Any | None:
        """The latency histograms of all successful repetitions, merged (never averaged)."""
        from hdrh.histogram import HdrHistogram

        encoded = [c.histogram for c in self.ok_cells if c.histogram]
        if not encoded:
            return None
        merged = new_histogram()
        for text in encoded:
            try:
                merged.add(HdrHistogram.decode(text))
            except Exception as exc:  # the codec raises TypeError, zlib.error, its own
                raise UsageError(f"cell {self.key!r}: corrupt latency histogram ({exc})") from None
        return merged


@dataclass
class Run:
    """One results folder, read and grouped."""

    directory: Path
    data: dict[str, Any]
    groups: list[CellGroup]

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id") or self.directory.name)

    @property
    def profile(self) -> str | None:
        return self.data.get("profile")

    @property
    def environment(self) -> dict[str, Any]:
        return self.data.get("environment") or {}

    @property
    def placement(self) -> dict[str, Any]:
        return self.environment.get("placement") or {}

    @property
    def repetitions(self) -> int:
        """The most repetitions any matrix point has."""
        return max((len(g.cells) for g in self.groups), default=0)

    @property
    def scenarios(self) -> list[str]:
        """Scenario names in the order the run measured them."""
        return list(dict.fromkeys(g.scenario for g in self.groups))

    def scenario(self, name: str) -> list[CellGroup]:
        """The groups of scenario ``name``; UnknownScenario for a name not in the list."""
        check_scenario(name)
        return [g for g in self.groups if g.scenario == name]

    @property
    def implausible(self) -> list[CellRecord]:
        """Successful cells that broke a plausibility rule, in run order."""
        return [c for g in self.groups for c in g.ok_cells if c.implausible]

    @property
    def interrupted(self) -> bool:
        return bool(self.data.get("interrupted")) or not self.data.get("finished")


def point_key(key: str) -> str:
    """The matrix point of a cell key, its model left out: 'closed/*/c16/s64'.

    The models of one point are measured in the same rounds, so their figures
    pair round by round. A key without a model (``neighbour/solo``) is its own point.
    """
    parts = key.split("/")
    if len(parts) < 3:
        return key
    return "/".join([parts[0], "*", *parts[2:]])


def group_cells(cells: Iterable[CellRecord]) -> list[CellGroup]:
    """Cells grouped by key, in the order keys first appear, repetitions sorted."""
    groups: dict[str, CellGroup] = {}
    for cell in cells:
        groups.setdefault(cell.key, CellGroup(cell.key)).cells.append(cell)
    for group in groups.values():
        group.cells.sort(key=lambda c: c.repetition)
    return list(groups.values())


def read_cells(cells: list[Any], source: Path) -> list[CellRecord]:
    """Every cell as a record, judged by the plausibility rules of this version.

    Judging again on reading means a run written before a rule existed (or by
    an older iobench) is held to it too.
    """
    try:
        records = [CellRecord.from_json(cell, f"{source}: cell {index}")
                   for index, cell in enumerate(cells)]
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    return [plausibility.judge(record) for record in records]


def load_run(directory: Path | str) -> Run:
    """Read and check a run folder's results.json (or the file); group its cells by key.

    The store's reader checks the file and its schema version; this turns
    each cell into a record, which checks what reading (rather than resuming) needs.
    """
    from iobench.benchmarks.results.store import RESULTS_JSON, read_results

    folder = Path(directory)
    if folder.name == RESULTS_JSON and folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise UsageError(f"{folder}: no such results folder")
    data = read_results(folder)
    cells = read_cells(data["cells"], folder / RESULTS_JSON)
    return Run(folder, data, group_cells(cells))
