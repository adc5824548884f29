"""The run side of every scenario, one module each, registered under the names of the list.

``RUN_SCENARIOS`` maps each name of
``iobench.benchmarks.results.scenarios.SCENARIOS`` to the ``SCENARIO`` of the
module of that name here, in the list's order: adding a scenario adds a
module, never an entry here.
"""

from __future__ import annotations

import importlib

from iobench.benchmarks.results.scenarios import SCENARIOS
from iobench.benchmarks.run.scenario import RunScenario


def _load(name: str) -> RunScenario:
    declared = importlib.import_module(f"{__name__}.{name}").SCENARIO
    if not isinstance(declared, RunScenario) or declared.name != name:
        raise TypeError(f"{__name__}.{name}.SCENARIO must be a RunScenario named {name!r}")
    return declared


RUN_SCENARIOS: dict[str, RunScenario] = {name: _load(name) for name in SCENARIOS}
