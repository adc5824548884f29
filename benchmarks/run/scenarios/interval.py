"""Interval: one model swept over one parameter (poll-sleep's sleep) beside reference models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import (
    COUNT,
    DURATION,
    RATE,
    SIZE,
    SWEPT_VALUE,
    WARMUP,
    list_of,
    names,
    text,
)
from iobench.benchmarks.run.scenario import RunScenario


class Interval(RunScenario):
    name = "interval"
    rounds_in_place = True
    key_fields = ("rate_rps", "connections", "size_bytes")
    keys = {
        "model": (text, "poll-sleep"),
        "param": (text, "interval"),
        "values": (list_of(SWEPT_VALUE), [0.0001, 0.001, 0.01]),
        "references": (names, []),
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    }

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"interval.references": section["references"],
                "interval.model": [section["model"]]}

    def model_params(self, section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        return [(section["model"], {section["param"]: section["values"][0]}, "interval.param")]

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        swept = section["model"]
        runs: list[tuple[str, dict[str, Any]]] = []
        if swept in models:
            runs += [(swept, {**params.get(swept, {}), section["param"]: value})
                     for value in section["values"]]
        runs += [(ref, params.get(ref, {})) for ref in section["references"] if ref in models]
        rate, connections = section["rate_rps"], section["connections"]
        size = section["size_bytes"]
        for model, p in runs:
            yield self.cell(model, p, "open", connections, size_bytes=size, rate_rps=rate,
                            duration_s=section["duration_s"], warmup_s=section["warmup_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        swept = len(section["values"]) if section["model"] in models else 0
        return swept + sum(ref in models for ref in section["references"])


SCENARIO = Interval()
