"""Scale: a few active connections beside a crowd of idle ones (the C10K axis).

Its limits (descriptors, tasks, memory for a process per connection) are
checked before the server starts, in ``iobench.benchmarks.run.scale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run import scale
from iobench.benchmarks.run.cells import Cell, CellFailed
from iobench.benchmarks.run.checks import (
    CONNECTIONS,
    COUNT,
    DURATION,
    RATE,
    SIZE,
    WARMUP,
    list_of,
)
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.scenario import RunScenario
from iobench.servers.registry import get_model


class Scale(RunScenario):
    name = "scale"
    rounds_in_place = True
    key_fields = ("idle", "rate_rps", "connections", "size_bytes")
    settles_memory = True
    keys = {
        "idle_connections": (list_of(CONNECTIONS), [0, 10000]),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        # open-loop cells at these rates, for latency; [] for none
        "rates_rps": (list_of(RATE, may_be_empty=True), []),
        "duration_s": (DURATION, 1.0),
        "warmup_s": (WARMUP, 0.5),
    }

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        """Per model, each idle count in increasing order, closed loop then the open rates.

        Increasing, so a model's small counts are measured before its large ones
        can fail or be skipped.
        """
        connections, size = section["connections"], section["size_bytes"]
        common = {"duration_s": section["duration_s"], "warmup_s": section["warmup_s"],
                  "size_bytes": size}
        for model in models:
            p = params.get(model, {})
            for idle in sorted(section["idle_connections"]):
                yield self.cell(model, p, "closed", connections, idle=idle, **common)
                for rate in section["rates_rps"]:
                    yield self.cell(model, p, "open", connections, rate_rps=rate, idle=idle,
                                    **common)

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return len(models) * len(section["idle_connections"]) * (1 + len(section["rates_rps"]))

    def prepare(self, cell: Cell, launcher: Launcher, loadgen_timeout_s: float) -> float | None:
        """Fail the cell before its server starts if a limit rules it out (see run/scale.py).

        A process-per-connection model is probed first; the load generator
        then waits as long as the probe says the forks take.
        """
        assert cell.model is not None
        model = get_model(cell.model)
        problem = scale.limit_problem(cell, model)
        timeout = None
        if problem is None and model.process_per_connection and cell.idle > scale.PROBE_CONNECTIONS:
            found = scale.probe(launcher, cell)
            problem = scale.memory_problem(found, cell)
            timeout = loadgen_timeout_s + found.seconds_to_accept(cell.idle + cell.connections)
        if problem is not None:
            raise CellFailed(problem)
        return timeout


SCENARIO = Scale()
