"""The scale scenario's report side: its verdicts, and memory per idle connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iobench.benchmarks.report.claims import Verdict
from iobench.benchmarks.report.scale import judge_scale, memory_per_connection, models_that
from iobench.benchmarks.results.loader import load_run
from iobench.servers.base import Watching
from tests.benchmarks.results_factory import make_results, write_run


def scale_run(tmp_path: Path, tweak: object = None) -> object:
    data = make_results(repetitions=2, scenarios=("scale",), tweak=tweak)  # type: ignore[arg-type]
    return load_run(write_run(tmp_path / "run", data))


def test_scanning_and_waiting_verdicts_hold_on_the_expected_shape(tmp_path: Path) -> None:
    run = scale_run(tmp_path)
    scanning, waiting = judge_scale(run)  # type: ignore[arg-type]
    assert scanning.verdict == Verdict.HOLDS, scanning.reason
    ratios = {m: float(x) for m, x in re.findall(r"([a-z-]+) ([\d.]+)x", scanning.reason)}
    assert ratios["busy-poll"] == pytest.approx(41, rel=0.1)  # 1 + 10000/250
    assert any("select beside 10000 idle connections: failed" in line and "FD_SETSIZE" in line
               for line in scanning.evidence)
    # select's growth is judged at its most idle successful count, 1000.
    assert ratios["select"] == pytest.approx(5, rel=0.1)
    assert waiting.verdict == Verdict.HOLDS, waiting.reason
    assert "no result for uvloop, io-uring" in waiting.reason


def test_a_waiting_model_whose_cost_doubles_does_not_hold(tmp_path: Path) -> None:
    def epoll_doubles(cell: dict) -> None:
        if cell["key"] == "scale/epoll/i10000/c16/s64":
            cell["metrics"]["cpu_us_per_request"] *= 2
    _, waiting = judge_scale(scale_run(tmp_path, epoll_doubles))  # type: ignore[arg-type]
    assert waiting.verdict == Verdict.DOES_NOT_HOLD
    assert "epoll past 1.5x" in waiting.reason


def test_a_scanning_model_that_stays_flat_does_not_hold(tmp_path: Path) -> None:
    def poll_sleep_flat(cell: dict) -> None:
        if cell["model"] == "poll-sleep" and cell["scenario"] == "scale":
            cell["metrics"]["cpu_us_per_request"] = 8.0
    scanning, _ = judge_scale(scale_run(tmp_path, poll_sleep_flat))  # type: ignore[arg-type]
    assert scanning.verdict == Verdict.DOES_NOT_HOLD
    assert "poll-sleep stayed within 1.5x" in scanning.reason


def test_growth_between_the_thresholds_is_inconclusive(tmp_path: Path) -> None:
    def busy_poll_doubles(cell: dict) -> None:
        if cell["model"] == "busy-poll" and cell["scenario"] == "scale" \
                and cell["idle_connections"]:
            cell["metrics"]["cpu_us_per_request"] = 16.0
    scanning, _ = judge_scale(scale_run(tmp_path, busy_poll_doubles))  # type: ignore[arg-type]
    assert scanning.verdict == Verdict.INCONCLUSIVE


def test_no_scale_scenario_no_section(tmp_path: Path) -> None:
    data = make_results(repetitions=1, scenarios=("idle",))
    assert judge_scale(load_run(write_run(tmp_path / "run", data))) == []


def test_memory_per_idle_connection_is_the_difference_over_the_count(tmp_path: Path) -> None:
    found = {m.model: m for m in memory_per_connection(scale_run(tmp_path))}  # type: ignore[arg-type]
    assert found["threads"].metric == "pss_bytes"
    assert found["threads"].bytes_per_connection == pytest.approx(24 * 1024, rel=0.01)
    assert found["epoll"].bytes_per_connection == pytest.approx(1024, rel=0.01)
    assert found["select"].idle == 1000  # its 10,000 cell failed
    # The kernel's side from the same two cells, and the two together.
    assert found["threads"].kernel_bytes_per_connection == pytest.approx(31 * 1024, rel=0.01)
    assert found["epoll"].kernel_bytes_per_connection == pytest.approx(3800, rel=0.01)
    assert found["epoll"].total_bytes_per_connection == pytest.approx(1024 + 3800, rel=0.01)


def test_without_the_kernels_count_the_user_side_stands_alone(tmp_path: Path) -> None:
    def uncounted(cell: dict) -> None:
        if cell["scenario"] == "scale":
            cell["metrics"]["kernel_bytes"] = None
    run = scale_run(tmp_path, uncounted)
    found = {m.model: m for m in memory_per_connection(run)}  # type: ignore[arg-type]
    assert found["epoll"].kernel_bytes_per_connection is None
    assert found["epoll"].total_bytes_per_connection is None
    assert found["epoll"].bytes_per_connection == pytest.approx(1024, rel=0.01)


def test_which_models_scan_and_which_are_told_is_their_own_metadata() -> None:
    assert models_that(Watching.SCANS) == ("busy-poll", "poll-sleep", "select", "poll", "sigio")
    assert models_that(Watching.IS_TOLD) == ("epoll", "uvloop", "io-uring")
