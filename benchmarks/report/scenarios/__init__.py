"""The report side of every scenario, one module each, registered under the names of the list.

``REPORT_SCENARIOS`` maps each name of
``iobench.benchmarks.results.scenarios.SCENARIOS`` to the ``SCENARIO`` of the
module of that name here, in the list's order: adding a scenario adds a
module, never an entry here.
"""

from __future__ import annotations

from iobench.benchmarks.report.scenario import ReportScenario
from iobench.benchmarks.results.scenarios import declarations

REPORT_SCENARIOS: dict[str, ReportScenario] = declarations(__name__, ReportScenario)
# Every plot's caption and the scenario that shows it, by file stem.
FIGURE_CAPTIONS: dict[str, str] = {figure.stem: figure.caption
                                   for scenario in REPORT_SCENARIOS.values()
                                   for figure in scenario.figures}
FIGURE_SCENARIOS: dict[str, str] = {figure.stem: scenario.name
                                    for scenario in REPORT_SCENARIOS.values()
                                    for figure in scenario.figures}
