"""System calls counted by strace -c -f, for machines without perf.

Open loop at a low rate, in cells of their own: strace stops the server at
every call it sees, so only these cells' counts mean something, not their
time or CPU (flag ``traced``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import COUNT, DURATION, RATE, SIZE, WARMUP
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.scenario import RunScenario
from iobench.benchmarks.run.syscalls import SyscallCounter


class Syscalls(RunScenario):
    name = "syscalls"
    key_fields = ("rate_rps", "connections", "size_bytes")
    keys = {
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    }

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        rate, connections = section["rate_rps"], section["connections"]
        size = section["size_bytes"]
        for model in models:
            p = params.get(model, {})
            yield self.cell(model, p, "open", connections, size_bytes=size, rate_rps=rate,
                            duration_s=section["duration_s"], warmup_s=section["warmup_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return len(models)

    def syscall_counter(self, launcher: Launcher, pid: int, cell: Cell) -> SyscallCounter:
        return launcher.strace_counter(pid)

    def annotate(self, record: CellRecord) -> None:
        record.flag("traced", "strace stopped the server at every system call: only the "
                              "counts of this cell mean something, not its time or CPU")


SCENARIO = Syscalls()
