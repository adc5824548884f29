"""The churn scenario's run side: cells with K requests per connection, and a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.results.store import read_results
from iobench.benchmarks.run.launcher import LoadSpec
from iobench.benchmarks.run.matrix import Profile, ProfileError, check_spec, expand
from iobench.cli import main


def test_churn_cells_carry_k_in_their_key_and_record() -> None:
    spec = check_spec({"churn": {"requests_per_connection": [10, 1]}}, "t")
    cells = expand(Profile("t", spec), ["epoll", "fork"])
    assert [c.key for c in cells] == ["churn/epoll/k1/c16/s64", "churn/epoll/k10/c16/s64",
                                      "churn/fork/k1/c16/s64", "churn/fork/k10/c16/s64"]
    assert {c.mode for c in cells} == {"closed"}
    assert [c.requests_per_connection for c in cells] == [1, 10, 1, 10]
    spec = LoadSpec("127.0.0.1:1", "closed", 16, 1.0, 0.3, 64, requests_per_connection=1)
    arguments = spec.arguments(None)
    assert arguments[arguments.index("--requests-per-connection") + 1] == "1"


@pytest.mark.parametrize("section", [{"requests_per_connection": [0]},
                                     {"requests_per_connection": 1}])
def test_bad_churn_keys_are_named(section: dict) -> None:
    with pytest.raises(ProfileError, match=r"churn\.requests_per_connection"):
        check_spec({"churn": section}, "t")


def test_a_churn_run_end_to_end(tmp_path: Path) -> None:
    """Two models, K = 1: cells with connections per second and CPU per connection."""
    profile = tmp_path / "churn.toml"
    profile.write_text("[churn]\nrequests_per_connection = [1]\nduration_s = 0.3\n"
                       "warmup_s = 0.1\n")
    out = tmp_path / "out"
    assert main(["run", "--profile", str(profile), "--models", "epoll,threads",
                 "--out", str(out)]) == 0
    cells = {c["key"]: c for c in read_results(out)["cells"]}
    assert set(cells) == {"churn/epoll/k1/c16/s64", "churn/threads/k1/c16/s64"}
    for cell in cells.values():
        assert cell["status"] == "ok", cell["reason"]
        assert cell["requests_per_connection"] == 1
        metrics = cell["metrics"]
        assert metrics["connections_per_s"] > 0
        assert metrics["connections_per_s"] == pytest.approx(metrics["throughput_rps"], rel=0.05)
        if metrics["server_cpu_percent"] is not None:
            assert metrics["cpu_us_per_connection"] > 0
    assert "what a new connection costs" in (out / "REPORT.md").read_text()
