"""Open loop: requests at a constant offered rate, latency from each intended send time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.checks import (
    COUNT,
    DURATION,
    FRACTION,
    RATE,
    SIZE,
    WARMUP,
    ProfileError,
    list_of,
)
from iobench.benchmarks.run.scenario import RunScenario


class Open(RunScenario):
    name = "open"
    rounds_in_place = True
    key_fields = ("rate_rps", "peak_fraction", "connections", "size_bytes")
    keys = {
        # Exactly one of the two is non-empty; the stored matrix holds both,
        # the other as [], and --resume checks it again.
        "rates_rps": (list_of(RATE, may_be_empty=True), []),
        "peak_fractions": (list_of(FRACTION, may_be_empty=True), []),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    }

    def check(self, spec: dict[str, Any], where: str) -> None:
        section = spec[self.name]
        if bool(section["rates_rps"]) == bool(section["peak_fractions"]):
            raise ProfileError(f"{where}: [open] needs exactly one of 'open.rates_rps' and "
                               "'open.peak_fractions'")
        if section["peak_fractions"] and "closed" not in spec:
            raise ProfileError(f"{where}: 'open.peak_fractions' needs a [closed] section "
                               "to measure the peak")

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        connections, size = section["connections"], section["size_bytes"]
        for model in models:
            p = params.get(model, {})
            common = {"duration_s": section["duration_s"], "warmup_s": section["warmup_s"],
                      "size_bytes": size}
            for rate in section["rates_rps"]:
                yield self.cell(model, p, "open", connections, rate_rps=rate, **common)
            for fraction in section["peak_fractions"]:
                yield self.cell(model, p, "open", connections, peak_fraction=fraction, **common)

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return len(models) * (len(section["rates_rps"]) + len(section["peak_fractions"]))


SCENARIO = Open()
