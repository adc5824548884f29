"""Churn: K requests per connection, then a new one (accept, thread start and fork costs).

The load generator closes each connection after its K-th response and opens
another at once (``--requests-per-connection``, docs/loadgen.md); closed loop.
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
    list_of,
    number,
    variants,
)
from iobench.benchmarks.run.scenario import RunScenario

# The load generator's own limit (--requests-per-connection).
REQUESTS_PER_CONNECTION = number(1, 1_000_000, integer=True)


class Churn(RunScenario):
    name = "churn"
    rounds_in_place = True
    key_fields = ("requests_per_connection", "connections", "size_bytes")
    keys = {
        "requests_per_connection": (list_of(REQUESTS_PER_CONNECTION), [1, 10]),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.0),
        "warmup_s": (WARMUP, 0.3),
        # More parameter sets of a model, beside its own (prefork's listener).
        "variants": (variants, {}),
    }

    def named_models(self, section: dict[str, Any]) -> dict[str, list[str]]:
        return {"churn.variants": list(section["variants"])}

    def model_params(self, section: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        return [(model, params, f"churn.variants.{model}[{index}]")
                for model, tables in section["variants"].items()
                for index, params in enumerate(tables)]

    def expand(self, section: dict[str, Any], models: list[str],
               params: dict[str, dict[str, Any]]) -> Iterable[Cell]:
        """Per model (and variant), each K in increasing order."""
        connections, size = section["connections"], section["size_bytes"]
        for model in models:
            own = params.get(model, {})
            extra = [{**own, **variant} for variant in section["variants"].get(model, [])]
            for p in (own, *extra):
                for k in sorted(section["requests_per_connection"]):
                    yield self.cell(model, p, "closed", connections, size_bytes=size,
                                    requests_per_connection=k,
                                    duration_s=section["duration_s"],
                                    warmup_s=section["warmup_s"])

    def count(self, section: dict[str, Any], models: list[str]) -> int:
        return (sum(1 + len(section["variants"].get(model, [])) for model in models)
                * len(section["requests_per_connection"]))


SCENARIO = Churn()
