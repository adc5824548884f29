"""Idle: the server holds connections that send nothing; what it costs to wait."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import CONNECTIONS, DURATION, list_of
from iobench.benchmarks.run.scenario import RunScenario


class Idle(RunScenario):
    name = "idle"
    key_fields = ("connections",)
    settles_memory = True
    keys = {
        "connections": (list_of(CONNECTIONS), [0, 100]),
        "duration_s": (DURATION, 1.0),
    }

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        for model in models:
            for connections in section["connections"]:
                p = params.get(model, {})
                yield self.cell(model, p, "idle", connections, duration_s=section["duration_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return len(models) * len(section["connections"])


SCENARIO = Idle()
