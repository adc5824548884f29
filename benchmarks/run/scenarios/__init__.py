"""The run side of every scenario, one module each, registered under the names of the list.

``RUN_SCENARIOS`` maps each name of
``iobench.benchmarks.results.scenarios.SCENARIOS`` to the ``SCENARIO`` of the
module of that name here, in the list's order: adding a scenario adds a
module, never an entry here.
"""

from __future__ import annotations

from iobench.benchmarks.results.scenarios import declarations
from iobench.benchmarks.run.scenario import RunScenario

RUN_SCENARIOS: dict[str, RunScenario] = declarations(__name__, RunScenario)
