"""The article scenario: its cells, its profile keys, and a run of it end to end.

The run is the section a reader sees: the article's code beside busy-poll,
every cell ok, the probes' figures and causes recorded, and the report's
section with computed verdicts. Verdicts that read CPU are not asserted here
(a shared machine can leave a spinning server a fraction of a core); the
ones that read waits are, since a wait only grows on a busy machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report import article as report
from iobench.benchmarks.report.claims import Verdict
from iobench.benchmarks.results import scenarios as names
from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.store import read_results
from iobench.benchmarks.run.matrix import (
    Profile,
    ProfileError,
    check_spec,
    expand,
    load_profile,
    select_models,
)
from iobench.cli import main
from iobench.servers.registry import all_models, available_models

SECTION = """
[article]
idle_duration_s = 0.4
duration_s = 0.5
warmup_s = 0.2
"""


def profile(text: str) -> Profile:
    import tomllib

    return Profile("t", check_spec(tomllib.loads(text), "t"))


def test_cells_for_the_article_then_busy_poll() -> None:
    cells = expand(profile(SECTION), ["busy-poll", "select", "article"])
    assert [c.key for c in cells] == [
        "article/article/no-client/c0", "article/article/idle-client/c1",
        "article/article/second-client/c2", "article/article/closed-loop/c4/s64",
        "article/article/non-reader/c3/s8388608",
        "article/busy-poll/second-client/c2", "article/busy-poll/closed-loop/c4/s64",
        "article/busy-poll/non-reader/c3/s8388608",
    ]
    assert {c.phase for c in cells} == {
        names.ARTICLE_NO_CLIENT, names.ARTICLE_IDLE_CLIENT, names.ARTICLE_SECOND_CLIENT,
        names.ARTICLE_CLOSED_LOOP, names.ARTICLE_NON_READER}
    assert expand(profile(SECTION), ["select"]) == []


def test_a_reference_model_runs_in_its_own_scenario_only() -> None:
    both = profile(SECTION + "\n[idle]\nconnections = [0]\n[closed]\nconnections = [1]\n")
    cells = expand(both, ["article", "busy-poll"])
    assert {c.model for c in cells if c.scenario != "article"} == {"busy-poll"}
    assert {c.model for c in cells if c.scenario == "article"} == {"article", "busy-poll"}


def test_the_run_selects_a_reference_model_by_name_or_by_default() -> None:
    every = available_models(references=True)
    chosen = select_models(profile(SECTION), ["article", "busy-poll"], all_models(), every)
    assert chosen == ["article", "busy-poll"]
    assert "article" in select_models(profile(SECTION), None, all_models(), every)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("wait_bound_s", 0.5, "'article.wait_bound_s' must be >= 1"),
    ("non_reader_bytes", 0, "'article.non_reader_bytes' must be >= 1"),
    ("nope", 1, "unknown key 'article.nope'"),
])
def test_bad_keys_are_refused_naming_them(key: str, value: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        profile(f"[article]\n{key} = {value}\n")


def test_both_built_in_profiles_have_the_scenario() -> None:
    for name in ("quick", "full"):
        models = list(available_models(references=True))
        assert any(c.scenario == "article" for c in expand(load_profile(name), models))


def test_the_scenario_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(SECTION)
    out = tmp_path / "run"
    assert main(["run", "--profile", str(path), "--models", "article,busy-poll",
                 "--out", str(out)]) == 0
    cells = {cell["key"]: cell for cell in read_results(out)["cells"]}
    assert len(cells) == 8
    # The load generator's first exchange (one request per connection, each then waiting)
    # starves all but the first connection of the article's loop: the closed loop fails
    # with that cause, never hangs.
    failed = [(k, c["reason"]) for k, c in cells.items() if c["status"] != "ok"]
    causes = ("starved: ", "BlockingIOError alone", "the load generator reported")
    assert not [(k, reason) for k, reason in failed
                if "closed-loop" not in k or not any(c in reason for c in causes)], failed
    second = cells["article/article/second-client/c2"]
    assert second["metrics"]["starved_requests"] == 1
    assert "recvfrom" in second["notes"]["probe"]
    stalled = cells["article/article/non-reader/c3/s8388608"]
    assert stalled["metrics"]["starved_requests"] >= 1
    assert "sendto" in stalled["notes"]["probe"]
    assert cells["article/busy-poll/second-client/c2"]["metrics"]["starved_requests"] == 0
    closed = cells["article/article/closed-loop/c4/s64"]
    if closed["status"] == "ok":
        assert closed["metrics"]["throughput_rps"] > 0
        assert closed["metrics"]["starved_requests"] is not None
    verdicts = {r.key: r.verdict for r in report.judge_article(load_run(out))}
    assert verdicts["article_second_client_starved"] is Verdict.HOLDS
    assert verdicts["article_non_reader_stalls_all"] is Verdict.HOLDS
    text = (out / "REPORT.md").read_text()
    assert "## The article's code as printed" in text
    assert "asleep in recvfrom()" in text and "asleep in sendto()" in text


def test_a_starved_closed_loop_fails_with_the_load_generators_cause_first(
        tmp_path: Path) -> None:
    """The load generator's first exchange starves all but the first connection of the
    article's loop; the cell fails saying so, before the server's death of it."""
    import os

    from iobench.benchmarks.results.store import RunStore
    from iobench.benchmarks.run.environment import collect_environment
    from iobench.benchmarks.run.launcher import LocalLauncher, Placement
    from iobench.benchmarks.run.runner import Runner, Settings
    from iobench.benchmarks.run.scenarios import RUN_SCENARIOS

    cpus = sorted(os.sched_getaffinity(0))
    placement = Placement(cpus[:1], cpus[1:] or cpus[:1])
    store = RunStore.create(tmp_path / "run", run_id="t", profile="t",
                            environment=collect_environment(placement.as_dict()), matrix={})
    cell = RUN_SCENARIOS["article"].cell("article", {}, "closed", 4, size_bytes=64,
                                         phase=names.ARTICLE_CLOSED_LOOP, duration_s=0.3,
                                         warmup_s=0.1)
    launcher = LocalLauncher(placement)
    try:
        record = Runner(launcher, store, Settings()).run_cell(cell)
    finally:
        launcher.close()
    assert not record.ok and record.reason is not None
    assert record.reason.startswith("starved: 3 of 4 connections unanswered"), record.reason
    assert record.duration_s is not None and record.duration_s < 15


@pytest.mark.parametrize("models", [["article", "busy-poll"], ["article"], ["busy-poll"],
                                    ["select"]])
def test_the_count_is_what_expand_builds(models: list[str]) -> None:
    from iobench.benchmarks.run.scenarios import RUN_SCENARIOS

    section = profile(SECTION).spec["article"]
    assert RUN_SCENARIOS["article"].count(section, models) == len(expand(profile(SECTION),
                                                                          models))
