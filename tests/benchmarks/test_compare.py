"""``iobench compare``: ratios per matching cell, changes marked only beyond the spread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.compare import compare_runs
from iobench.benchmarks.results.loader import load_run
from iobench.cli import main
from tests.benchmarks.results_factory import make_results, write_run

SCENARIOS = ("closed", "open")


def scale_metric(model: str, metric: str, factor: float) -> Any:
    def apply(cell: dict[str, Any]) -> None:
        if cell["model"] == model and cell["metrics"].get(metric) is not None:
            cell["metrics"][metric] *= factor
    return apply


def runs(tmp_path: Path, b_tweak: Any = None, repetitions: int = 3,
         b_scenarios: tuple[str, ...] = SCENARIOS) -> tuple[Path, Path]:
    """Run A, and run B: the same numbers (same seed) with ``b_tweak`` applied."""
    a = write_run(tmp_path / "a", make_results(repetitions=repetitions, scenarios=SCENARIOS))
    b = write_run(tmp_path / "b", make_results(repetitions=repetitions,
                                               scenarios=b_scenarios, tweak=b_tweak))
    return a, b


def test_same_run_twice_marks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs(tmp_path)
    comparison = compare_runs(load_run(a), load_run(a))
    assert comparison.changed_count == 0 and not comparison.only_in_a
    assert all(c.ratio == pytest.approx(1.0) for cell in comparison.matched for c in cell.changes)
    assert main(["compare", str(a), str(a)]) == 0
    out = capsys.readouterr().out
    assert "0 change(s)" in out and "BETTER" not in out and "WORSE" not in out
    assert "closed select" in out


def test_changes_beyond_the_spread_are_marked_with_direction(tmp_path: Path) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("select", "throughput_rps", 2.0))
    comparison = compare_runs(load_run(a), load_run(b))
    marks = {(cell.key, c.metric): c.mark for cell in comparison.matched for c in cell.changes}
    assert marks[("closed/select/c16/s64", "throughput_rps")] == "BETTER"
    assert marks[("closed/threads/c16/s64", "throughput_rps")] == ""
    changed = {key for (key, metric), mark in marks.items() if mark in ("BETTER", "WORSE")}
    assert changed and all("/select/" in key for key in changed)


def test_worse_latency_is_marked_worse(tmp_path: Path) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("threads", "p99_us", 3.0))
    comparison = compare_runs(load_run(a), load_run(b))
    cell = next(c for c in comparison.matched if c.key == "closed/threads/c1/s64")
    p99 = next(c for c in cell.changes if c.metric == "p99_us")
    assert p99.mark == "WORSE" and p99.ratio == pytest.approx(3.0, rel=0.5)


def test_one_repetition_says_spread_unknown(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("select", "throughput_rps", 2.0), repetitions=1)
    assert main(["compare", str(a), str(b), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "spread unknown" in out and "BETTER" not in out
    assert out.startswith("| cell | throughput (req/s) A -> B |")


def test_non_matching_and_failed_cells_are_listed(tmp_path: Path) -> None:
    def fail_select(cell: dict[str, Any]) -> None:
        if cell["model"] == "select" and cell["key"] == "closed/select/c1/s64":
            cell.update(status="failed", reason="timeout")
    a, b = runs(tmp_path, b_tweak=fail_select, b_scenarios=("closed",))
    comparison = compare_runs(load_run(a), load_run(b))
    assert "open/select/r500/c4/s64" in comparison.only_in_a
    assert comparison.failed == ["closed/select/c1/s64 (failed in B)"]
    assert not comparison.only_in_b


def test_different_machines_are_warned_about(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs(tmp_path)
    data = make_results(scenarios=SCENARIOS)
    data["environment"]["placement"] = {"server_cpus": [0], "client_cpus": [0]}
    b = write_run(tmp_path / "other", data)
    assert main(["compare", str(a), str(b)]) == 0
    assert "warning: placement differs" in capsys.readouterr().out


def test_missing_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs(tmp_path)
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iobench: error:") and "Traceback" not in err
