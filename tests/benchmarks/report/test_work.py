"""The work scenario's report side: its verdicts computed from throughputs, its section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.claims import Verdict
from iobench.benchmarks.report.scenarios.work import section
from iobench.benchmarks.report.work import judge_work, throughput_table
from iobench.benchmarks.results.loader import Run, group_cells
from iobench.benchmarks.results.record import CellRecord, Metrics

# Throughputs in req/s by (model, work, offloaded): a run where every verdict holds.
GOOD: dict[tuple[str, str, bool], float] = {
    ("epoll", "block:1ms", False): 900.0,
    ("epoll", "block:1ms", True): 5000.0,
    ("asyncio", "block:1ms", False): 850.0,
    ("asyncio", "block:1ms", True): 5000.0,
    ("threads", "block:1ms", False): 12000.0,
    ("threads", "cpu:50us", False): 15000.0,
    ("epoll", "cpu:50us", False): 16000.0,
    ("epoll", "cpu:50us", True): 14000.0,
    ("prefork", "cpu:50us", False): 36000.0,
    ("prefork", "block:1ms", False): 1800.0,
}


def make_run(rates: dict[tuple[str, str, bool], float], server_cpus: list[int]) -> Run:
    cells = []
    for (model, work, pool), rate in rates.items():
        params: dict[str, Any] = {"work": work, **({"offload": "pool"} if pool else {})}
        key = f"work/{model}({','.join(f'{k}={v}' for k, v in sorted(params.items()))})/c16/s64"
        server: dict[str, Any] = {"work": {"kind": work.partition(":")[0], "measured_us": 50.0}}
        if model == "prefork":
            server.update(worker_accepts=[16, 0], busiest_worker_share=1.0)
        cells.append(CellRecord(key=key, scenario="work", model=model, params=params,
                                mode="closed", connections=16, size_bytes=64,
                                placement={"server_cpus": server_cpus, "client_cpus": [2]},
                                metrics=Metrics(throughput_rps=rate,
                                                busiest_worker_share=server.get(
                                                    "busiest_worker_share")),
                                server=server))
    return Run(Path("synthetic"), {"finished": True}, group_cells(cells))


def verdicts(run: Run) -> dict[str, Verdict]:
    return {result.key: result.verdict for result in judge_work(run)}


def test_every_verdict_holds_on_a_run_that_shows_it() -> None:
    assert set(verdicts(make_run(GOOD, [0, 1])).values()) == {Verdict.HOLDS}


def test_one_server_cpu_cannot_tell_the_gil_from_the_cpu() -> None:
    found = {r.key: r for r in judge_work(make_run(GOOD, [0]))}
    gil = found["work_gil_serializes_cpu"]
    assert gil.verdict is Verdict.INCONCLUSIVE and "1 CPU" in gil.reason
    assert found["work_offload_restores_loop"].verdict is Verdict.HOLDS


@pytest.mark.parametrize(("change", "key"), [
    ({("epoll", "block:1ms", False): 1200.0}, "work_inline_block_caps_loop"),
    ({("threads", "block:1ms", False): 6000.0}, "work_threads_overlap_waits"),
    ({("asyncio", "block:1ms", True): 3000.0}, "work_offload_restores_loop"),
    ({("epoll", "cpu:50us", True): 30000.0}, "work_gil_serializes_cpu"),
    ({("prefork", "cpu:50us", False): 20000.0}, "work_gil_serializes_cpu"),
])
def test_a_figure_past_its_threshold_breaks_its_verdict(
        change: dict[tuple[str, str, bool], float], key: str) -> None:
    found = verdicts(make_run({**GOOD, **change}, [0, 1]))
    assert found[key] is Verdict.DOES_NOT_HOLD
    assert [k for k, v in found.items() if v is not Verdict.HOLDS] == [key]


def test_a_missing_cell_makes_its_verdict_inconclusive() -> None:
    rates = {k: v for k, v in GOOD.items() if k != ("asyncio", "block:1ms", True)}
    assert verdicts(make_run(rates, [0, 1]))["work_offload_restores_loop"] \
        is Verdict.INCONCLUSIVE


def test_the_section_tables_each_work_inline_and_pooled() -> None:
    run = make_run(GOOD, [0])
    header, rows = throughput_table(run)
    assert header == ["model", "block:1ms (req/s)", "block:1ms, pool (req/s)",
                      "cpu:50us (req/s)", "cpu:50us, pool (req/s)"]
    assert ["asyncio", "850", "5,000", "", ""] in rows
    text = repr(section(run, lambda stem: None))
    assert "accepts per worker [16, 0]" in text and "one worker took every connection" in text


def test_a_cell_only_shown_beside_the_judged_ones_is_left_out_by_name() -> None:
    run = make_run({**GOOD, ("fork", "cpu:50us", False): 9000.0}, [0, 1])
    fork = next(g for g in run.groups if g.model == "fork")
    fork.cells[0].status, fork.cells[0].reason = "failed", "server exited with code 1"
    found = {r.key: r for r in judge_work(run)}
    gil = found["work_gil_serializes_cpu"]
    assert gil.verdict is Verdict.HOLDS
    assert any("fork work=cpu:50us: left out" in line for line in gil.evidence)


def test_a_ratio_below_its_threshold_on_a_contended_cpu_is_inconclusive() -> None:
    run = make_run({**GOOD, ("asyncio", "block:1ms", True): 3000.0}, [0, 1])
    pool = next(g for g in run.groups if g.model == "asyncio" and "offload" in g.params)
    pool.cells[0].flags.append("cpu_contended")
    pool.cells[0].metrics.server_cpus_other_percent = 80.0
    found = {r.key: r for r in judge_work(run)}
    offload = found["work_offload_restores_loop"]
    assert offload.verdict is Verdict.INCONCLUSIVE and "80% of it" in offload.reason
