"""The work scenario's run side: its cells, bad values refused, the request size given
to the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.run.matrix import Cell, ProfileError, expand, load_profile, select_models
from iobench.benchmarks.run.runner import server_params
from iobench.servers.registry import all_models, available_models


@pytest.mark.parametrize(("text", "named"), [
    ("[closed]\n[params]\nepoll = {work = 'cpu:-1us'}\n", "params.epoll"),
    ("[closed]\n[params]\nthreads = {offload = 'pool'}\n", "params.threads"),
    ("[closed]\n[params]\nprefork = {listener = 'sometimes'}\n", "params.prefork"),
])
def test_profile_refuses_bad_values(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=named.replace(".", r"\.")):
        select_models(load_profile(str(path)), None, all_models(), all_models())


def test_the_runner_counts_requests_by_the_cells_message_size() -> None:
    def cell(params: dict[str, str]) -> Cell:
        return Cell("k", "work", "epoll", params, "closed", 16, size_bytes=4096)

    assert server_params(cell({"work": "cpu:50us"}))["request_bytes"] == 4096
    assert server_params(cell({"work": "cpu:50us", "request_bytes": "64"}))["request_bytes"] \
        == "64"
    assert "request_bytes" not in server_params(cell({}))


def test_the_scenario_expands_into_inline_and_pooled_cells() -> None:
    cells = [c for c in expand(load_profile("quick"), list(available_models()))
             if c.scenario == "work"]
    keys = {c.key for c in cells}
    assert "work/threads(work=cpu:50us)/c16/s64" in keys
    assert "work/asyncio(offload=pool,work=block:1ms)/c16/s64" in keys
    assert "work/asyncio(offload=pool,work=cpu:50us)/c16/s64" not in keys  # quick: block only
    assert not [c for c in cells if c.model == "threads" and "offload" in c.params]
    assert {c.model for c in cells} == set(available_models())


@pytest.mark.parametrize(("text", "named"), [
    ("[work]\nworks = ['cpu:-1us']\n", "work.works"),
    ("[work]\nworks = ['none']\n", "work.works"),
    ("[work]\noffload_models = ['threads']\n", "work.offload_models"),
    ("[work]\noffload_works = ['cpu:1ms']\n", "offload_works"),
])
def test_a_bad_work_section_is_refused(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=named.replace(".", r"\.")):
        select_models(load_profile(str(path)), None, all_models(), all_models())
