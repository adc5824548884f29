"""Read a run's ``results.json`` for plots, the report and comparisons.

The runner writes the file (``iobench.benchmarks.results.store``); everything here only reads
it, checks that it is a results file this version understands, and groups the
cells of one matrix point across repetitions, so every consumer computes the
median and the spread the same way. A file that is missing, not JSON, or of an
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

from iobench.common.errors import UsageError
from iobench.common.histograms import new_histogram

# Fields a cell must have before anything can be said about it.
REQUIRED_CELL_FIELDS = ("key", "scenario", "model", "status")


@dataclass(frozen=True)
class Spread:
    """The median and the min-max range of one metric over repetitions."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def overlaps(self, other: Spread) -> bool:
        """True when the two min-max ranges share a value."""
        return self.low <= other.high and other.low <= self.high


@dataclass
class CellGroup:
    """Every repetition of one matrix point (one ``key``)."""

    key: str
    cells: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first(self) -> dict[str, Any]:
        return self.cells[0]

    @property
    def scenario(self) -> str:
        return self.first["scenario"]

    @property
    def model(self) -> str | None:
        """None for a cell without a server (the neighbour running alone)."""
        return self.first["model"]

    @property
    def params(self) -> dict[str, Any]:
        return self.first.get("params") or {}

    @property
    def mode(self) -> str | None:
        return self.first.get("mode")

    @property
    def connections(self) -> int | None:
        return self.first.get("connections")

    @property
    def size_bytes(self) -> int | None:
        return self.first.get("size_bytes")

    @property
    def rate_rps(self) -> float | None:
        """The offered rate; the median over successful repetitions when each measured
        its own (a fraction of that repetition's closed-loop peak)."""
        rates = [c["rate_rps"] for c in self.ok_cells if c.get("rate_rps") is not None]
        if rates:
            return float(statistics.median(rates))
        return self.first.get("rate_rps")

    @property
    def peak_fraction(self) -> float | None:
        """Open loop at a fraction of the model's own closed-loop peak, if so."""
        return self.first.get("peak_fraction")

    @property
    def phase(self) -> str | None:
        return self.first.get("phase")

    @property
    def ok_cells(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c.get("status") == "ok"]

    @property
    def failed(self) -> bool:
        """No repetition succeeded: the point has no numbers, only reasons."""
        return not self.ok_cells

    @property
    def failures(self) -> list[str]:
        """Why repetitions failed, one entry per distinct reason."""
        reasons = [c.get("reason") or "no reason recorded" for c in self.cells
                   if c.get("status") != "ok"]
        return list(dict.fromkeys(reasons))

    @property
    def flags(self) -> list[str]:
        """Flags raised by any successful repetition, in first-seen order."""
        seen: dict[str, None] = {}
        for cell in self.ok_cells:
            seen.update(dict.fromkeys(cell.get("flags") or ()))
        return list(seen)

    def values(self, metric: str) -> list[float]:
        """The metric from every successful repetition that has it."""
        found = []
        for cell in self.ok_cells:
            value = (cell.get("metrics") or {}).get(metric)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.append(float(value))
        return found

    def metric(self, metric: str) -> Spread | None:
        """Median and min-max over repetitions, or None when no repetition has it."""
        values = self.values(metric)
        return Spread.of(values) if values else None

    @cached_property
    def merged_histogram(self) -> Any | None:
        """The latency histograms of all successful repetitions, merged (never averaged)."""
        from hdrh.histogram import HdrHistogram

        encoded = [c["histogram"] for c in self.ok_cells if c.get("histogram")]
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
        return [g for g in self.groups if g.scenario == name]

    @property
    def interrupted(self) -> bool:
        return bool(self.data.get("interrupted")) or not self.data.get("finished")


def group_cells(cells: Iterable[dict[str, Any]]) -> list[CellGroup]:
    """Cells grouped by key, in the order keys first appear, repetitions sorted."""
    groups: dict[str, CellGroup] = {}
    for cell in cells:
        groups.setdefault(cell["key"], CellGroup(cell["key"])).cells.append(cell)
    for group in groups.values():
        group.cells.sort(key=lambda c: c.get("repetition") or 0)
    return list(groups.values())


def check_cells(cells: list[Any], source: Path) -> None:
    """Raise UsageError unless every cell has what grouping and labelling need."""
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise UsageError(f"{source}: cell {index} is not an object")
        missing = [f for f in REQUIRED_CELL_FIELDS if f not in cell]
        if missing:
            raise UsageError(f"{source}: cell {index} lacks {', '.join(missing)}")
        if not isinstance(cell.get("metrics") or {}, dict):
            raise UsageError(f"{source}: cell {cell['key']!r}: 'metrics' is not an object")


def load_run(directory: Path | str) -> Run:
    """Read and check a run folder's results.json (or the file); group its cells by key.

    The store's reader checks the file and its schema version; this adds the
    per-cell checks that reading (rather than resuming) needs.
    """
    from iobench.benchmarks.results.store import RESULTS_JSON, read_results

    folder = Path(directory)
    if folder.name == RESULTS_JSON and folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise UsageError(f"{folder}: no such results folder")
    data = read_results(folder)
    check_cells(data["cells"], folder / RESULTS_JSON)
    return Run(folder, data, group_cells(data["cells"]))
