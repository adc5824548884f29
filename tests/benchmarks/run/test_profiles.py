"""Profiles: the built-in ones are valid and complete; a bad one names its bad key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from iobench.benchmarks.run.matrix import (
    BUILTIN_PROFILES,
    ProfileError,
    check_spec,
    expand,
    load_profile,
    select_models,
)
from iobench.cli import main
from iobench.servers.registry import all_models, available_models

MODELS = list(available_models())


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_builtin_profile_expands_to_unique_keys(name: str) -> None:
    profile = load_profile(name)
    cells = expand(profile, MODELS)
    idents = Counter(cell.ident for cell in cells)
    assert idents and max(idents.values()) == 1
    assert {cell.repetition for cell in cells} == set(range(profile.repeat))


def test_quick_covers_every_model_in_every_scenario_it_applies_to() -> None:
    profile = load_profile("quick")
    cells = expand(profile, MODELS)
    for scenario in ("idle", "closed", "open"):
        assert {c.model for c in cells if c.scenario == scenario} == set(MODELS), scenario
    # Beside an idle server: the article's models and epoll here, every model in full.
    neighbour_idle = {c.model for c in cells if c.scenario == "neighbour" and c.phase == "idle"}
    assert neighbour_idle == {"busy-poll", "poll-sleep", "select", "epoll", "threads"}
    full = expand(load_profile("full"), MODELS)
    assert {c.model for c in full if c.scenario == "neighbour" and c.phase == "idle"} == set(
        MODELS)
    assert [c.key for c in cells if c.phase == "solo"] == ["neighbour/solo"]
    interval = [c for c in cells if c.scenario == "interval"]
    assert sorted(c.params["interval"] for c in interval if c.model == "poll-sleep") == [
        0.0001, 0.001, 0.01]
    assert {"select", "busy-poll"} <= {c.model for c in interval}


def test_full_has_three_closed_loop_rounds_and_the_connection_grid() -> None:
    from iobench.benchmarks.run.rounds import with_rounds

    profile = load_profile("full")
    rounds = {c.repetition for c in with_rounds(profile, expand(profile, ["select"]))
              if c.scenario == "closed"}
    assert rounds == {0, 1, 2}
    # --precision ends within 28 minutes of rounds, so the run stays under 30.
    assert profile.spec["precision_budget_s"] <= 28 * 60
    closed = [c for c in expand(profile, ["select"]) if c.scenario == "closed"]
    assert {c.connections for c in closed} == {1, 16, 128, 1000}
    assert {c.size_bytes for c in closed} == {64, 4096}
    opened = [c for c in expand(profile, ["select"]) if c.scenario == "open"]
    assert all(c.peak_fraction and c.rate_rps is None for c in opened)


def test_models_limit_every_scenario() -> None:
    cells = expand(load_profile("quick"), ["select"])
    assert {c.model for c in cells} == {"select", None}  # None: the neighbour's solo cell


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "named"), [
    ("repat = 2\n[idle]\n", "'repat'"),
    ("[closed]\nconections = [1]\n", "'closed.conections'"),
    ("[closed]\nconnections = [0]\n", "'closed.connections'"),
    ("[closed]\nsizes_bytes = 64\n", "'closed.sizes_bytes'"),
    ("[idle]\nduration_s = 'long'\n", "'idle.duration_s'"),
    ("[open]\nrates_rps = [100.0]\npeak_fractions = [0.5]\n", "'open.peak_fractions'"),
    ("[open]\npeak_fractions = [0.5]\n", "'open.peak_fractions'"),
    ("[neighbour]\nphases = ['solo', 'busy']\n", "'neighbour.phases'"),
    ("[sleep]\n", "'sleep'"),
    ("repeat = 1\n", "no scenario"),
    ("[idle]\n[params]\nselect = {interval = 1}\n", "params.select"),
    ("[interval]\nreferences = ['selectt']\n", "interval.references"),
    ("[closed.variants]\nio-uring = [{style = 'sometimes'}]\n", "closed.variants.io-uring"),
    ("[closed.variants]\nepol = [{}]\n", "closed.variants"),
    ("[closed]\nvariants = {io-uring = {style = 'oneshot'}}\n", "'closed.variants'.io-uring"),
])
def test_bad_profile_names_the_bad_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ProfileError, match=named.replace(".", r"\.").replace("(", r"\(")):
        profile = load_profile(write(tmp_path, text))
        select_models(profile, None, all_models(), MODELS)


def test_profile_that_is_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(write(tmp_path, "[idle\n"))


def test_unknown_requested_model_is_a_usage_error() -> None:
    with pytest.raises(ProfileError, match="unknown model 'nope'"):
        select_models(load_profile("quick"), ["nope"], all_models(), MODELS)


def test_defaults_are_filled_in() -> None:
    spec = check_spec({"closed": {}}, "test")
    assert spec["closed"]["connections"] == [16]
    assert spec["loadgen"]["workers"] == 1 and spec["repeat"] == 1


def test_cli_reports_a_bad_profile_in_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--profile", write(tmp_path, "[closed]\nconections = [1]\n"),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iobench: error: ") and err.count("\n") == 1
    assert "'closed.conections'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--server-cpus", "x"], ["--client-cpus", "999"],
                                  ["--repeat", "0"], ["--models", "select,nope"],
                                  ["--profile", "nosuchprofile"]])
def test_cli_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 args: list[str]) -> None:
    assert main(["run", *args, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("iobench: error: ")


def test_variants_run_beside_the_model_with_their_parameters(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "[params]\nepoll = {}\n[closed]\n"
                                 "connections = [16]\n[closed.variants]\n"
                                 "io-uring = [{style = 'oneshot'}]\n"))
    cells = expand(profile, ["epoll", "io-uring"])
    assert [(c.key, c.params) for c in cells] == [
        ("closed/epoll/c16/s64", {}),
        ("closed/io-uring/c16/s64", {}),
        ("closed/io-uring(style=oneshot)/c16/s64", {"style": "oneshot"}),
    ]
    # A variant of a model that is not run adds nothing.
    assert [c.model for c in expand(profile, ["epoll"])] == ["epoll"]


def test_syscalls_scenario_is_one_low_rate_open_cell_per_model(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, "[syscalls]\nrate_rps = 100.0\n"))
    cells = expand(profile, ["epoll", "io-uring"])
    assert [(c.key, c.mode, c.rate_rps) for c in cells] == [
        ("syscalls/epoll/r100/c16/s64", "open", 100.0),
        ("syscalls/io-uring/r100/c16/s64", "open", 100.0),
    ]


def test_a_scale_cell_holds_its_idle_connections_beside_the_active_ones() -> None:
    """Memory per connection divides by every connection the server held."""
    cells = [c for c in expand(load_profile("quick"), ["epoll"]) if c.scenario == "scale"]
    assert sorted(c.held_connections for c in cells) == [16, 10_016]
    closed = next(c for c in expand(load_profile("quick"), ["epoll"]) if c.scenario == "closed")
    assert closed.held_connections == closed.connections


@pytest.mark.parametrize("name", ["quick", "full"])
def test_the_count_is_the_number_of_cells_expand_builds(name: str) -> None:
    from iobench.benchmarks.run.matrix import count, expand, load_profile, select_models
    from iobench.servers.registry import all_models

    profile = load_profile(name)
    profile.spec["repeat"] = 2
    closed = profile.spec["closed"]
    closed["variants"] = {**closed["variants"],  # the default is shared: not changed in place
                          "poll-sleep": [{"interval": 0.002}, {"interval": 0.003}]}
    models = select_models(profile, None, all_models(), list(all_models()))
    cells, seconds = count(profile, models)
    built = expand(profile, models)
    assert cells == len(built)
    assert seconds >= sum(cell.duration_s + cell.warmup_s for cell in built)


def test_every_scenario_counts_its_cells_without_building_them() -> None:
    from iobench.benchmarks.run.scenario import RunScenario
    from iobench.benchmarks.run.scenarios import RUN_SCENARIOS

    own = [name for name, scenario in RUN_SCENARIOS.items()
           if type(scenario).count is RunScenario.count]
    assert own == [], f"scenarios that count by building their cells: {own}"


@pytest.mark.parametrize("section", [
    {}, {"offload_works": ["cpu:50us"]}, {"offload_models": []},
    {"works": ["block:1ms"], "offload_models": ["epoll", "asyncio"]}])
def test_the_work_scenario_counts_the_cells_it_builds(section: dict) -> None:
    from iobench.benchmarks.run.matrix import Profile, check_spec, count, expand

    profile = Profile("test", check_spec({"work": section}, "test"))
    models = ["select", "epoll", "threads", "asyncio"]
    assert count(profile, models)[0] == len(expand(profile, models))
