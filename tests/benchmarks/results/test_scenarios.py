"""One list of scenario names, and both sides of each scenario declared under it.

Adding a scenario means its name in ``results/scenarios.py``, a module of
that name in ``run/scenarios/`` and in ``report/scenarios/``, its profile
entries and its docs: these tests fail when one side is missing, when a
module is declared under no name of the list, or when a declaration names
a metric, a figure or a key that does not exist.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

from iobench.benchmarks.report import scenarios as report_scenarios
from iobench.benchmarks.report.figures import FIGURES
from iobench.benchmarks.report.scenarios import FIGURE_CAPTIONS, REPORT_SCENARIOS
from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.record import METRIC_NAMES, CellRecord, RecordError
from iobench.benchmarks.results.scenarios import SCENARIOS, UnknownScenario
from iobench.benchmarks.run import scenarios as run_scenarios
from iobench.benchmarks.run.matrix import BUILTIN_PROFILES, load_profile
from iobench.benchmarks.run.scenarios import RUN_SCENARIOS
from tests.benchmarks.results_factory import make_results, write_run

DOCS = Path(__file__).resolve().parents[3] / "docs"


def modules_in(package: object) -> set[str]:
    return {info.name for info in pkgutil.iter_modules(package.__path__)}  # type: ignore[attr-defined]


def test_the_list_names_each_scenario_once() -> None:
    assert len(set(SCENARIOS)) == len(SCENARIOS)
    assert {"idle", "closed", "open", "interval", "neighbour", "scale", "syscalls"} <= \
        set(SCENARIOS)


@pytest.mark.parametrize(("side", "registry", "package"), [
    ("run", RUN_SCENARIOS, run_scenarios), ("report", REPORT_SCENARIOS, report_scenarios)])
def test_each_side_declares_every_scenario_and_nothing_else(
        side: str, registry: dict[str, object], package: object) -> None:
    assert list(registry) == list(SCENARIOS), side
    assert modules_in(package) == set(SCENARIOS), \
        f"{side}/scenarios/ holds modules not in the list, or lacks some"
    for name, declared in registry.items():
        assert declared.name == name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_report_declaration_names_real_metrics(name: str) -> None:
    declared = REPORT_SCENARIOS[name]
    assert declared.metrics and set(declared.metrics) <= set(METRIC_NAMES)
    assert declared.key_metric in METRIC_NAMES
    for headline in declared.headlines:
        assert headline.metric in METRIC_NAMES


def test_every_figure_is_drawn_and_shown_once() -> None:
    shown = [figure.stem for declared in REPORT_SCENARIOS.values()
             for figure in declared.figures]
    assert len(shown) == len(set(shown)), "a figure is shown by two scenarios"
    assert shown == [stem for stem, _, _ in FIGURES]
    assert set(shown) == set(FIGURE_CAPTIONS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_and_its_keys_are_documented(name: str) -> None:
    page = (DOCS / "scenarios.md").read_text()
    heading = f"\n## `{name}`\n"
    assert heading in page, f"docs/scenarios.md has no section for {name}"
    section = page.split(heading, 1)[1].split("\n## ", 1)[0]
    missing = [key for key in RUN_SCENARIOS[name].keys if f"`{key}`" not in section]
    assert not missing, f"docs/scenarios.md does not name {name}'s keys {missing}"


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profiles_hold_only_declared_keys(name: str) -> None:
    profile = load_profile(name)
    for scenario, declared in RUN_SCENARIOS.items():
        section = profile.section(scenario)
        if section is not None:
            assert set(section) == set(declared.keys)


def test_a_cell_of_an_unknown_scenario_is_refused_in_one_line() -> None:
    cell = {"key": "warp/select", "scenario": "warp", "model": "select", "status": "ok"}
    with pytest.raises(RecordError, match=r"unknown scenario 'warp'") as caught:
        CellRecord.from_json(cell)
    assert "\n" not in str(caught.value)


def test_asking_a_run_for_an_unknown_scenario_is_an_error(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, make_results(scenarios=("closed",))))
    assert run.scenario("closed")
    assert run.scenario("idle") == []
    with pytest.raises(UnknownScenario, match="warp"):
        run.scenario("warp")
