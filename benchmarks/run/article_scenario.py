"""The article scenario's run side: the article's code as printed, beside busy-poll.

Per model (the reference model ``article``, and busy-poll as the loop done
correctly, each when the run has it) the scenario's cells are probes:

- ``idle-cpu`` (the article's code only): the server's CPU with 0 and with
  1 idle connection, measured as an idle cell is;
- ``second-client``: a second client's wait while a first one says nothing
  (:func:`~iobench.benchmarks.run.article_probes.second_client`);
- ``closed-loop``: the load generator's closed loop, with the requests still
  unanswered when its drain ends counted, not failed;
- ``non-reader``: every other client's wait while one sends without reading
  (:func:`~iobench.benchmarks.run.article_probes.non_reading_client`).

Every probe runs on a fresh server, and is bounded in time whatever the
server does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run import article_probes as probes
from iobench.benchmarks.run.matrix import Cell, model_label

SCENARIO = "article"
MODEL = "article"
IDLE_CPU = "idle-cpu"
SECOND_CLIENT = "second-client"
CLOSED_LOOP = "closed-loop"
NON_READER = "non-reader"
# The cells that run a probe of their own rather than an idle or load cell.
PROBE_PHASES = (SECOND_CLIENT, NON_READER)
PROBE_MODE = "probe"
# The probes' clients: the non-reading one beside this many others.
NON_READER_OTHERS = 2
# Idle CPU: with nobody connected, and with one client that says nothing.
IDLE_CONNECTIONS = (0, 1)
# The closed loop's time-out, and so how long its drain waits for the last answers:
# a request unanswered for a second is unanswered, as in the probes (wait_bound_s).
CLOSED_LOOP_TIMEOUT_S = 1.0
# The note a probe cell carries: what the probe saw, in one line.
PROBE_NOTE = "probe"
# Beyond its bound, what a probe takes against the article's code (connects, the
# first client's two turns to speak, or sending and reading back the flood,
# about half a second each here): for the time estimate. Against a correct
# server the probes end sooner.
FLOOD_AND_DRAIN_S = 1.0
PROBE_OVERHEAD_S = {
    SECOND_CLIENT: probes.ACCEPT_SETTLE_S + probes.NUDGE_WAIT_S,
    NON_READER: probes.ACCEPT_SETTLE_S + probes.STALL_S + FLOOD_AND_DRAIN_S,
}


def expand(section: dict[str, Any], models: list[str], params: dict[str, Any]) -> Iterable[Cell]:
    """The article's cells, then its reference's, for those of the two the run has."""
    bound = section["wait_bound_s"]
    connections, size = section["connections"], section["size_bytes"]
    for model in (MODEL, section["reference"]):
        if model not in models:
            continue
        p = params.get(model, {})
        name = model_label(model, p)
        # busy-poll's idle CPU is the idle scenario's.
        for count in IDLE_CONNECTIONS if model == MODEL else ():
            yield Cell(f"{SCENARIO}/{name}/{IDLE_CPU}/c{count}", SCENARIO, model, p,
                       "idle", count, phase=IDLE_CPU, duration_s=section["idle_duration_s"])
        yield Cell(f"{SCENARIO}/{name}/{SECOND_CLIENT}/b{bound:g}", SCENARIO, model, p,
                   PROBE_MODE, 2, phase=SECOND_CLIENT, duration_s=bound)
        yield Cell(f"{SCENARIO}/{name}/{CLOSED_LOOP}/c{connections}/s{size}", SCENARIO,
                   model, p, "closed", connections, size_bytes=size, phase=CLOSED_LOOP,
                   duration_s=section["duration_s"], warmup_s=section["warmup_s"])
        flood = section["non_reader_bytes"]
        yield Cell(f"{SCENARIO}/{name}/{NON_READER}/b{bound:g}/s{flood}", SCENARIO, model,
                   p, PROBE_MODE, NON_READER_OTHERS + 1, size_bytes=flood,
                   phase=NON_READER, duration_s=bound)


def run_probe(phase: str, address: tuple[str, int], pid: int | None, bound_s: float,
              flood_bytes: int | None) -> probes.ProbeResult:
    """One probe cell's probe, against the server at ``address``."""
    if phase == SECOND_CLIENT:
        return probes.second_client(address, pid, bound_s)
    assert flood_bytes is not None
    return probes.non_reading_client(address, pid, flood_bytes, bound_s, NON_READER_OTHERS)
