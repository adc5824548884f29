"""Neighbour: a CPU-bound process shares the server's CPU, alone, beside it idle, under load.

The runner runs a cell by its phase (``solo``: no server; ``idle``; ``load``),
stopping and resuming the server in slices to measure the neighbour with and
without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import COUNT, DURATION, RATE, SIZE, WARMUP, names, one_of
from iobench.benchmarks.run.scenario import RunScenario

PHASES = ("solo", "idle", "load")


class Neighbour(RunScenario):
    name = "neighbour"
    key_fields = ("phase", "rate_rps", "connections", "size_bytes")
    keys = {
        "phases": (one_of(PHASES, "phase"), list(PHASES)),
        "load_models": (names, []),
        "duration_s": (DURATION, 1.0),
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "warmup_s": (WARMUP, 0.3),
    }

    def shown(self, cell: Cell) -> tuple[str, ...]:
        """Alone or beside an idle server, the phase is the whole point."""
        return self.key_fields if cell.phase == "load" else ("phase",)

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"neighbour.load_models": section["load_models"]}

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        phases, duration = section["phases"], section["duration_s"]
        if "solo" in phases:
            yield self.cell(None, {}, "idle", 0, phase="solo", duration_s=duration)
        load_models = section["load_models"] or models
        rate, connections = section["rate_rps"], section["connections"]
        size = section["size_bytes"]
        for model in models:
            p = params.get(model, {})
            if "idle" in phases:
                yield self.cell(model, p, "idle", 0, phase="idle", duration_s=duration)
            if "load" in phases and model in load_models:
                yield self.cell(model, p, "open", connections, size_bytes=size, rate_rps=rate,
                                phase="load", duration_s=duration, warmup_s=section["warmup_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        phases, load_models = section["phases"], section["load_models"] or models
        return (("solo" in phases) + len(models) * ("idle" in phases)
                + ("load" in phases) * sum(model in load_models for model in models))

    def annotate(self, record: CellRecord) -> None:
        if record.phase == "load" and record.load is not None:
            record.flag("server_paused", "the server was stopped in alternate slices to "
                        "measure the neighbour alone; its latency includes those pauses")


SCENARIO = Neighbour()
