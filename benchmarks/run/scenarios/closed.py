"""Closed loop: each connection waits for its reply before the next request; peak throughput.

The only cells whose system calls perf counts (see SYSCALLS_ONLY_CLOSED).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run import scale
from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import COUNT, DURATION, SIZE, WARMUP, list_of, variants
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.scenario import RunScenario
from iobench.benchmarks.run.syscalls import SyscallCounter, UnavailableCounter

SYSCALLS_FIRST_ROUND = "system calls are counted in the first round of a point only"
SYSCALLS_NOT_ALONE = "system calls are counted with more than one connection only"


class Closed(RunScenario):
    name = "closed"
    rounds_in_place = True
    key_fields = ("connections", "size_bytes")
    keys = {
        "connections": (list_of(COUNT), [16]),
        "sizes_bytes": (list_of(SIZE), [64]),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
        # More parameter sets of a model, measured beside its own (io-uring's
        # oneshot style beside multishot): model -> list of parameter tables.
        "variants": (variants, {}),
    }

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"closed.variants": list(section["variants"])}

    def model_params(self, section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        return [(model, params, f"closed.variants.{model}[{index}]")
                for model, tables in section["variants"].items()
                for index, params in enumerate(tables)]

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        for model in models:
            own = params.get(model, {})
            extra = [{**own, **variant} for variant in section["variants"].get(model, [])]
            for p in (own, *extra):
                for size in section["sizes_bytes"]:
                    for connections in section["connections"]:
                        yield self.cell(model, p, "closed", connections, size_bytes=size,
                                        duration_s=section["duration_s"],
                                        warmup_s=section["warmup_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return (sum(1 + len(section["variants"].get(model, [])) for model in models)
                * len(section["sizes_bytes"]) * len(section["connections"]))

    def syscall_counter(self, launcher: Launcher, pid: int, cell: Cell) -> SyscallCounter:
        # Counted in the first round only, and not with a lone connection (the
        # same calls, one ready socket a wait): a count per request does not
        # drift as timings do, and perf costs a cell about 0.1 s more (its
        # exit, ~1 s of RCU grace periods, runs on in the background).
        if cell.repetition > 0:
            return UnavailableCounter(pid, SYSCALLS_FIRST_ROUND)
        if cell.connections == 1:
            return UnavailableCounter(pid, SYSCALLS_NOT_ALONE)
        # Attached before the load starts: threads and processes the server
        # starts for its connections inherit the counters.
        return scale.uncounted(pid, cell) or launcher.syscall_counter(pid)


SCENARIO = Closed()
