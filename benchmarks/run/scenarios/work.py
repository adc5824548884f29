"""Work: every model with work in its handler per request, inline or offloaded to a pool.

Closed loop at one connection count and size: each model with each of
``works`` (``block:1ms``, a wait that releases the GIL; ``cpu:50us``, Python
computation that holds it), and the models of ``offload_models`` also with
``offload=pool``. The server counts requests by the cell's size (the runner
gives it as ``request_bytes``), and reports its CPU work's calibration, which
the cell stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import (
    COUNT,
    DURATION,
    SIZE,
    WARMUP,
    ProfileError,
    list_of,
    names,
    text,
)
from iobench.benchmarks.run.scenario import RunScenario
from iobench.servers.base import parse_work

# The single-threaded loops whose experts hand blocking calls to a pool.
EVENT_LOOPS = ["select", "poll", "epoll", "asyncio", "uvloop", "io-uring", "sigio"]


def work_value(where: str, value: Any) -> str:
    """A ``work=`` value other than none, in its canonical form."""
    try:
        work = parse_work(text(where, value))
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    if work == "none":
        raise ProfileError(f"{where}: the work scenario needs work (cpu:50us, block:1ms)")
    return work


class Work(RunScenario):
    name = "work"
    rounds_in_place = True
    key_fields = ("connections", "size_bytes")
    keys = {
        "works": (list_of(work_value), ["block:1ms", "cpu:50us"]),
        # Models measured also with offload=pool (each must be able to offload),
        # with the works of offload_works (empty: every one of works).
        "offload_models": (names, EVENT_LOOPS),
        "offload_works": (list_of(work_value, may_be_empty=True), []),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    }

    def check(self, spec: dict[str, Any], where: str) -> None:
        section = spec[self.name]
        stray = [w for w in section["offload_works"] if w not in section["works"]]
        if stray:
            raise ProfileError(f"{where}: 'work.offload_works' has {stray[0]!r}, which is not "
                               f"in 'work.works' ({', '.join(section['works'])})")

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"work.offload_models": list(section["offload_models"])}

    def model_params(self, section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        # Checked by each model: one that cannot offload refuses offload=pool.
        return [(model, {"work": section["works"][0], "offload": "pool"},
                 "work.offload_models") for model in section["offload_models"]]

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        common = {"size_bytes": section["size_bytes"], "duration_s": section["duration_s"],
                  "warmup_s": section["warmup_s"]}
        offloaded = section["offload_works"] or section["works"]
        for model in models:
            own = params.get(model, {})
            for work in section["works"]:
                yield self.cell(model, {**own, "work": work}, "closed",
                                section["connections"], **common)
                if model in section["offload_models"] and work in offloaded:
                    yield self.cell(model, {**own, "work": work, "offload": "pool"}, "closed",
                                    section["connections"], **common)

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        offloaded = section["offload_works"] or section["works"]
        pooled = sum(1 for model in models if model in section["offload_models"])
        return (len(models) * len(section["works"])
                + pooled * sum(1 for work in section["works"] if work in offloaded))


SCENARIO = Work()
