"""The churn scenario's report side: verdicts, the section's figures, prefork's balance."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.churn import balance_lines, churn_rows, judge_churn
from iobench.benchmarks.report.claims import Verdict
from iobench.benchmarks.report.scenarios.churn import section
from iobench.benchmarks.results.loader import load_run
from tests.benchmarks.results_factory import make_cell, make_results, write_run

# Server CPU per connection at K = 1 (us), as this machine shows them in order of size.
CPU_PER_CONNECTION_US = {"epoll": 40.0, "prefork": 50.0, "threads": 160.0, "fork": 3000.0}
# Server CPU per request at K = 10 (us): a connection's cost spread over ten.
CPU_PER_REQUEST_US = {"epoll": 12.0, "prefork": 15.0, "threads": 25.0, "fork": 310.0}


def churn_cell(rng: random.Random, model: str, k: int, repetition: int,
               costs: dict[str, float]) -> dict[str, Any]:
    cell = make_cell(rng, "closed", model, {}, "closed", 16, 64, None, repetition)
    cell.update(scenario="churn", requests_per_connection=k, key=f"churn/{model}/k{k}/c16/s64")
    metrics = cell["metrics"]
    jitter = rng.uniform(0.97, 1.03)
    per_request = (costs[model] if k == 1 else CPU_PER_REQUEST_US[model]) * jitter
    throughput = 0.3e6 / per_request  # 30% of a core
    metrics.update(cpu_us_per_request=per_request, throughput_rps=throughput,
                   cpu_us_per_connection=per_request * k, connections_per_s=throughput / k,
                   server_cpu_percent=30.0, requests=int(throughput),
                   mean_us=16 / throughput * 1e6)
    return cell


def churn_run(tmp_path: Path, costs: dict[str, float] | None = None,
              models: tuple[str, ...] = tuple(CPU_PER_CONNECTION_US)) -> Path:
    rng = random.Random(3)
    data = make_results(scenarios=("closed",), models=("select",))
    data["cells"] += [churn_cell(rng, model, k, repetition, costs or CPU_PER_CONNECTION_US)
                      for repetition in range(2) for model in models for k in (1, 10)]
    return write_run(tmp_path / "run", data)


def test_the_verdicts_hold_on_this_machines_figures(tmp_path: Path) -> None:
    run = load_run(churn_run(tmp_path))
    verdicts = {v.key: v for v in judge_churn(run)}
    process = verdicts["churn_process_per_connection_costs"]
    assert process.verdict is Verdict.HOLDS, process.reason
    assert "fork 7" in process.reason  # 3000 / 40: about 75x
    assert verdicts["churn_prefork_does_not_pay"].verdict is Verdict.HOLDS
    assert verdicts["churn_thread_costs_less_than_process"].verdict is Verdict.HOLDS


@pytest.mark.parametrize(("fork_us", "verdict"), [(60.0, Verdict.DOES_NOT_HOLD),
                                                   (150.0, Verdict.INCONCLUSIVE)])
def test_a_cheap_fork_turns_the_verdict(tmp_path: Path, fork_us: float,
                                        verdict: Verdict) -> None:
    costs = {**CPU_PER_CONNECTION_US, "fork": fork_us}
    run = load_run(churn_run(tmp_path, costs))
    found = {v.key: v for v in judge_churn(run)}["churn_process_per_connection_costs"]
    assert found.verdict is verdict, found.reason


def test_a_prefork_that_pays_like_fork_does_not_hold(tmp_path: Path) -> None:
    costs = {**CPU_PER_CONNECTION_US, "prefork": 2500.0}
    run = load_run(churn_run(tmp_path, costs))
    found = {v.key: v for v in judge_churn(run)}["churn_prefork_does_not_pay"]
    assert found.verdict is Verdict.DOES_NOT_HOLD, found.reason


def test_without_fork_the_verdict_is_inconclusive_and_says_why(tmp_path: Path) -> None:
    run = load_run(churn_run(tmp_path, models=("epoll", "prefork")))
    found = {v.key: v for v in judge_churn(run)}["churn_process_per_connection_costs"]
    assert found.verdict is Verdict.INCONCLUSIVE
    assert any("no churn cell" in line or "fork" in line for line in found.evidence)


def test_the_section_shows_each_models_figures_and_overhead(tmp_path: Path) -> None:
    run = load_run(churn_run(tmp_path))
    header, rows, _ = churn_rows(run)
    assert header[1:3] == ["connections/s, K=1", "server CPU per connection (us), K=1"]
    by_model = {row[0]: row for row in rows}
    assert set(by_model) == set(CPU_PER_CONNECTION_US)
    # fork's overhead: about 3000 us per connection less about 310 per request.
    overhead = float(by_model["fork"][header.index("connection overhead (us)")].replace(",", ""))
    assert 2500 < overhead < 2900
    blocks = section(run, lambda stem: None)
    assert blocks and "what a new connection costs" in blocks[0].text  # type: ignore[attr-defined]
    assert section(load_run(write_run(tmp_path / "none", make_results())),
                   lambda stem: None) == []


def test_with_one_k_the_section_has_no_overhead_column(tmp_path: Path) -> None:
    rng = random.Random(5)
    data = make_results(scenarios=("closed",), models=("select",))
    data["cells"] += [churn_cell(rng, model, 1, 0, CPU_PER_CONNECTION_US)
                      for model in ("epoll", "fork")]
    header, rows, _ = churn_rows(load_run(write_run(tmp_path / "run", data)))
    assert header == ["model", "connections/s, K=1", "server CPU per connection (us), K=1",
                      "connect p99 (us), K=1"]
    assert [row[0] for row in rows] == ["epoll", "fork"]


def test_prefork_balance_is_shown_per_listener_when_the_cells_have_it(tmp_path: Path) -> None:
    rng = random.Random(7)
    data = make_results(scenarios=("closed",), models=("select",))
    for listener, share in (("shared", 0.9), ("reuseport", 0.55)):
        cell = churn_cell(rng, "prefork", 1, 0, CPU_PER_CONNECTION_US)
        cell["params"] = {"listener": listener}
        cell["key"] = f"churn/prefork(listener={listener})/k1/c16/s64"
        cell["metrics"]["busiest_worker_share"] = share
        data["cells"].append(cell)
    run = load_run(write_run(tmp_path / "run", data))
    lines = balance_lines(run)
    header, _, _ = churn_rows(run)
    assert header[-1] == "busiest worker's share of accepts, K=1"
    assert lines == [
        "prefork (listener=reuseport), K = 1: the busiest worker accepted 55% of the connections",
        "prefork (listener=shared), K = 1: the busiest worker accepted 90% of the connections"]


def test_without_prefork_accepts_there_is_no_balance_column(tmp_path: Path) -> None:
    header, _, _ = churn_rows(load_run(churn_run(tmp_path)))
    assert not any("busiest" in name for name in header)
