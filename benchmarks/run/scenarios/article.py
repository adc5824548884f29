"""Article: the article's code as printed (the reference model ``article``) beside busy-poll.

Per model, the article's code and busy-poll (the loop done correctly), each
when the run has it, the cells are probes (docs/article.md):

- ``no-client`` and ``idle-client`` (the article's code only; busy-poll's
  is the idle scenario's): the server's CPU with no connection and with one
  idle connection, run as idle cells;
- ``second-client``: a second client's wait while a first one says nothing;
- ``closed-loop``: the load generator's closed loop, the requests still owed
  when its drain ends counted (``starved_requests``), not failed;
- ``non-reader``: the other clients' waits while one sends without reading.

The two waiting probes are the runner's ``probe`` cells: clients of their own
(``iobench.benchmarks.run.article_probes``), bounded in time whatever the
server does, on this host only (their sockets and /proc are the runner's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.results.scenarios import (
    ARTICLE_CLOSED_LOOP,
    ARTICLE_IDLE_CLIENT,
    ARTICLE_NO_CLIENT,
    ARTICLE_NON_READER,
    ARTICLE_SECOND_CLIENT,
    PROBE_NOTE,
)
from iobench.benchmarks.run import article_probes as probes
from iobench.benchmarks.run.cells import Cell, CellFailed
from iobench.benchmarks.run.checks import COUNT, DURATION, SIZE, WARMUP, number, text
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.scenario import RunScenario
from iobench.servers.registry import get_model

MODEL = "article"
PROBE = "probe"  # the runner's mode for a cell the scenario drives itself
# Idle CPU: with nobody connected, and with one client that says nothing.
IDLE_CELLS = ((ARTICLE_NO_CLIENT, 0), (ARTICLE_IDLE_CLIENT, 1))
# Every model's cells beside the idle ones: a second client, a closed loop, a non-reader.
PROBES_PER_MODEL = 3
# The clients beside the one that does not read.
NON_READER_OTHERS = 2
# A verdict needs a second without an answer; a probe's bound is at least that.
MIN_BOUND_S = 1.0
MAX_BOUND_S = 60.0
# What a probe takes beyond its bound, for the time estimate. Against the
# article's code: connects and the first client's turns to speak, or sending
# and reading back the flood (about half a second each here) after the stall.
# Against a correct server the second client is answered at once, and the
# flood neither stalls nor waits long to be read back.
FLOOD_AND_DRAIN_S = 1.0
STALLED_SECONDS = {
    ARTICLE_SECOND_CLIENT: probes.ACCEPT_SETTLE_S + probes.NUDGE_WAIT_S,
    ARTICLE_NON_READER: probes.ACCEPT_SETTLE_S + probes.STALL_S + FLOOD_AND_DRAIN_S,
}
SERVED_SECONDS = {
    ARTICLE_NON_READER: probes.ACCEPT_SETTLE_S + FLOOD_AND_DRAIN_S / 2,
}
# The closed loop's load-generator time-out, so how long its drain waits for the
# last answers: a request unanswered for a second is unanswered, as in the probes.
CLOSED_LOOP_TIMEOUT_S = 1.0
# What goes unanswered in the closed loop is its figure, not its failure.
UNANSWERED = frozenset({"timeout"})


class Article(RunScenario):
    name = "article"
    key_fields = ("phase", "connections", "size_bytes")
    references = True
    # The article's code spins on accept() with nobody connected, as busy-poll
    # does: the kernel's count of the sockets each failed accept() frees settles
    # only with the server stopped, and its probe cells give memory per connection.
    settles_memory = True
    keys = {
        # The loop done correctly, measured beside the article's code when the run has it.
        "reference": (text, "busy-poll"),
        # Each idle CPU window: with no client, with one idle client.
        "idle_duration_s": (DURATION, 1.0),
        # How long a probe's request may wait before it counts as unanswered.
        "wait_bound_s": (number(MIN_BOUND_S, MAX_BOUND_S), 1.0),
        # What the client that does not read sends at most.
        "non_reader_bytes": (SIZE, 8 * 1024 * 1024),
        # The closed-loop cells.
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.0),
        "warmup_s": (WARMUP, 0.2),
    }

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"article.reference": [section["reference"]]}

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        """The article's cells, then its reference's, for those of the two the run has."""
        bound = section["wait_bound_s"]
        for model in dict.fromkeys((MODEL, section["reference"])):
            if model not in models:
                continue
            p = params.get(model, {})
            for phase, count in IDLE_CELLS if model == MODEL else ():
                yield self.cell(model, p, "idle", count, phase=phase,
                                duration_s=section["idle_duration_s"])
            yield self.cell(model, p, PROBE, 2, phase=ARTICLE_SECOND_CLIENT, duration_s=bound)
            yield self.cell(model, p, "closed", section["connections"],
                            size_bytes=section["size_bytes"], phase=ARTICLE_CLOSED_LOOP,
                            duration_s=section["duration_s"], warmup_s=section["warmup_s"])
            yield self.cell(model, p, PROBE, NON_READER_OTHERS + 1,
                            size_bytes=section["non_reader_bytes"], phase=ARTICLE_NON_READER,
                            duration_s=bound)

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        """Three probes per model the run has, and the article's two idle cells."""
        chosen = [m for m in dict.fromkeys((MODEL, section["reference"])) if m in models]
        return sum(PROBES_PER_MODEL + (len(IDLE_CELLS) if m == MODEL else 0) for m in chosen)

    def prepare(self, cell: Cell, launcher: Launcher, loadgen_timeout_s: float) -> float | None:
        return CLOSED_LOOP_TIMEOUT_S if cell.phase == ARTICLE_CLOSED_LOOP else None

    def probe(self, cell: Cell, address: tuple[str, int],
              pid: int | None) -> Callable[[CellRecord], None]:
        if pid is None:
            raise CellFailed("the article's probes run on one host only, not across hosts")
        try:
            if cell.phase == ARTICLE_SECOND_CLIENT:
                found = probes.second_client(address, pid, cell.duration_s)
            else:
                assert cell.size_bytes is not None
                found = probes.non_reading_client(address, pid, cell.size_bytes,
                                                  cell.duration_s, NON_READER_OTHERS)
        except probes.ProbeError as exc:
            raise CellFailed(str(exc)) from None

        def record(into: CellRecord) -> None:
            longest = found.longest_wait_s
            into.metrics.longest_wait_s = round(longest, 4) if longest is not None else None
            into.metrics.starved_requests = found.unanswered
            into.notes[PROBE_NOTE] = found.cause

        return record

    def probe_seconds(self, cell: Cell) -> float:
        phase = cell.phase or ""
        if cell.model is not None and get_model(cell.model).reference:
            return STALLED_SECONDS.get(phase, 0.0)
        if phase == ARTICLE_SECOND_CLIENT:  # answered at once: the bound is not waited
            return probes.ACCEPT_SETTLE_S - cell.duration_s
        return SERVED_SECONDS.get(phase, 0.0)

    def tolerated_errors(self, cell: Cell) -> frozenset[str]:
        return UNANSWERED if cell.phase == ARTICLE_CLOSED_LOOP else frozenset()

    def annotate(self, record: CellRecord) -> None:
        """The closed loop's requests still owed when the drain ended."""
        if record.phase == ARTICLE_CLOSED_LOOP and record.load is not None:
            errors = record.load.get("errors") or {}
            record.metrics.starved_requests = int(errors.get("timeout") or 0)


SCENARIO = Article()
