"""What a scenario declares on the run side: its profile keys, its cells, how a cell runs.

Each scenario is one module in ``iobench.benchmarks.run.scenarios``, named
after it (a name in ``iobench.benchmarks.results.scenarios.SCENARIOS``), with
a :class:`RunScenario` subclass instance called ``SCENARIO``. The profile
checker, the matrix expansion and the runner read only this interface: the
matrix knows no scenario by name, and the runner asks the cell's scenario
what differs (a check before the server starts, how its system calls are
counted, flags of its own) instead of testing the name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.run.cells import Cell, CellFailed, cell_key
from iobench.benchmarks.run.checks import MAX_CELLS, Keys
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.syscalls import SyscallCounter, UnavailableCounter

# perf counts system calls in the closed-loop cells only, the ones the report
# and docs/models.md show them for.
SYSCALLS_ONLY_CLOSED = "system calls are counted in the closed-loop cells only"


class RunScenario:
    """One scenario's run side; override what differs from the defaults."""

    # The profile section's name and keys: key -> (check, default).
    name: ClassVar[str]
    keys: ClassVar[Keys]
    # The cell fields that tell this scenario's points apart, shown in its
    # keys (see cells.KEY_FIELDS); a field a cell leaves None is left out.
    key_fields: ClassVar[tuple[str, ...]]
    # True for a scenario made for reference models (ServerModel.reference: the
    # article's code as printed): the matrix gives them to no other.
    references: ClassVar[bool] = False
    # True for a scenario whose cells give memory per connection: the server's
    # memory before its first connection is read with it stopped for a moment
    # (runner.settled_memory), so the kernel's count holds no socket it is
    # freeing. Elsewhere it is read as it runs, which costs no pause.
    settles_memory: ClassVar[bool] = False
    # True for a scenario whose loaded cells are measured in place: each model's
    # server and load generator stay up, paused, from its first round to its
    # last, the rounds keeping the run's order (see run/rounds.py, runner.Member).
    rounds_in_place: ClassVar[bool] = False

    def shown(self, cell: Cell) -> tuple[str, ...]:
        """The fields ``cell``'s key shows (by default, every one of :attr:`key_fields`)."""
        return self.key_fields

    def cell(self, model: str | None, params: dict[str, Any], mode: str, connections: int,
             **fields: Any) -> Cell:
        """A cell of this scenario, its key made from its fields."""
        made = Cell("", self.name, model, params, mode, connections, **fields)
        made.key = cell_key(made, self.shown(made))
        return made

    def check(self, spec: dict[str, Any], where: str) -> None:
        """Checks across keys or sections, once each key passed its own (ProfileError)."""

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        """Model names the section holds beside the run's models, by key ('interval.model')."""
        return {}

    def model_params(self, section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """Parameter sets the section gives a model, with where, for the model to check."""
        return []

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        """The section's cells for ``models`` (``params``: the profile's [params])."""
        raise NotImplementedError

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        """How many cells :meth:`expand` yields, for a matrix checked against its limits
        before it is built (``matrix.check_size``).

        A scenario computes it from the lengths of its lists, without building a
        cell. This default builds and drops them one at a time, and stops just past
        :data:`MAX_CELLS`, so it stays bounded in time and memory whatever the lists.
        """
        cells = self.expand(section, models, {})
        return sum(1 for _ in itertools.islice(cells, MAX_CELLS + 1))

    def prepare(self, cell: Cell, launcher: Launcher, loadgen_timeout_s: float) -> float | None:
        """Before the server starts: CellFailed if a limit rules the cell out, or another
        time-out for the load generator than ``loadgen_timeout_s`` if it needs one."""
        return None

    def probe(self, cell: Cell, address: tuple[str, int],
              pid: int | None) -> Callable[[CellRecord], None]:
        """A cell of mode ``"probe"``: drive the started server at ``address`` (``pid``: its
        process here, None on another host) with clients of the scenario's own, bounded in
        time, and return what writes the figures onto the record; CellFailed if it cannot."""
        raise CellFailed(f"the {self.name} scenario has no probe cells")

    def probe_seconds(self, cell: Cell) -> float:
        """What a probe cell takes beyond its ``duration_s``, for the time estimate."""
        return 0.0

    def tolerated_errors(self, cell: Cell) -> frozenset[str]:
        """Kinds of load-generator error that are the cell's figures, not its failure; with
        them the server's exit once the load generator has left is a note, not a failure."""
        return frozenset()

    def syscall_counter(self, launcher: Launcher, pid: int, cell: Cell) -> SyscallCounter:
        """How the server's system calls are counted in a loaded cell (by default, not)."""
        return UnavailableCounter(pid, SYSCALLS_ONLY_CLOSED)

    def annotate(self, record: CellRecord) -> None:
        """Flags of the scenario's own, once the cell is recorded."""
