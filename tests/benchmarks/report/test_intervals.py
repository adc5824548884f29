"""Figures shown with their interval; models compared by paired rounds, with verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from iobench.benchmarks.report import intervals
from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.stats import METHOD, Interval
from tests.benchmarks.results_factory import make_results, write_run


def drift(cell: dict[str, Any]) -> None:
    """Every round slower than the last by 15%, for every model alike; select's CPU per
    request 10% below threads' in every round."""
    factor = 0.85 ** cell["repetition"]
    metrics = cell["metrics"]
    if metrics.get("throughput_rps"):
        metrics["throughput_rps"] *= factor
    if metrics.get("cpu_us_per_request") and cell["model"] in ("select", "threads"):
        metrics["cpu_us_per_request"] = (9.0 if cell["model"] == "select" else 10.0) / factor


def closed_point(tmp_path: Path, repetitions: int = 4) -> list[Any]:
    run = load_run(write_run(tmp_path / "run", make_results(
        repetitions=repetitions, scenarios=("closed",), tweak=drift)))
    return [g for g in run.groups if g.key.endswith("/c16/s64")]


def test_a_figure_shows_its_interval_and_a_wide_one_is_marked(tmp_path: Path) -> None:
    groups = closed_point(tmp_path)
    select = next(g for g in groups if g.model == "select")
    text = intervals.group_text(select, "throughput_rps")
    # The drift makes throughput wide across rounds: imprecise, and marked so.
    assert text is not None and "±" in text and text.endswith(intervals.IMPRECISE_MARK)
    assert intervals.with_interval("throughput_rps", 143_200, Interval(
        143_200, 139_000, 147_500, 6, METHOD)) == "143,200 ±3%"
    assert intervals.with_interval("throughput_rps", 143_200, None) == "143,200"


def test_paired_ratios_cancel_the_drift_and_give_verdicts(tmp_path: Path) -> None:
    groups = closed_point(tmp_path, repetitions=6)
    ratios = {r.model: r for r in intervals.model_ratios(groups)}
    # No epoll in the factory's models: select is the reference.
    assert "select" not in ratios and ratios["threads"].reference == "select"
    cpu = ratios["threads"].ratios["cpu_us_per_request"]
    assert cpu is not None and cpu.n == 6
    assert abs(cpu.value - 10 / 9) < 1e-6 and cpu.high - cpu.low < 1e-6
    assert intervals.ratio_verdict("cpu_us_per_request", cpu) == "worse"
    assert intervals.ratio_text(cpu) == "1.11x [1.11, 1.11]"
    headers, rows = intervals.ratio_rows(groups)
    assert headers[1] == "throughput / select's" and rows
    # The factory's rounds record no server: each counts as its own, over the rounds.
    assert headers[-2:] == ["rounds", "verdict"] and rows[0][-2] == "6"
    servers = dataclasses.replace(cpu, servers=3)
    assert intervals.rounds_text(intervals.ModelRatio("threads", "select", {
        "throughput_rps": None, "cpu_us_per_request": servers})) == "6 on 3 servers"


def test_a_ratio_straddling_the_threshold_is_inconclusive() -> None:
    straddling = Interval(1.03, 0.97, 1.12, 6, METHOD)
    assert intervals.ratio_verdict("throughput_rps", straddling) == "inconclusive"
    assert intervals.ratio_verdict("throughput_rps",
                                   Interval(1.0, 0.98, 1.02, 6, METHOD)) == "same"
    assert intervals.ratio_verdict("throughput_rps",
                                   Interval(1.2, 1.1, 1.3, 6, METHOD)) == "better"
    assert intervals.ratio_verdict("throughput_rps",
                                   Interval(1.2, 1.2, 1.2, 1, "one round")) == "inconclusive"
    assert intervals.ratio_text(Interval(1.2, 1.2, 1.2, 1, "one round")) == "1.20x (one round)"
