"""``iobench compare``: ratios per matching cell, changes marked only when significant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.compare import MIN_CHANGE, MetricChange, compare_runs
from iobench.benchmarks.results.loader import Spread, load_run
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


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ((100, 90, 110), (130, 105, 140), True),   # B's low inside A's range
    ((100, 90, 110), (85, 70, 90), True),     # touching ends share a value
    ((100, 90, 110), (100, 95, 105), True),   # one range inside the other
    ((100, 90, 110), (120, 111, 130), False),
    ((100, 90, 110), (80, 70, 89.9), False),
])
def test_spread_overlap(a: tuple[float, float, float], b: tuple[float, float, float],
                        overlap: bool) -> None:
    spread_a, spread_b = Spread(*a, count=3), Spread(*b, count=3)
    assert spread_a.overlaps(spread_b) is overlap
    assert spread_b.overlaps(spread_a) is overlap


@pytest.mark.parametrize(("metric", "a", "b", "mark"), [
    # Medians 20% apart, intervals overlapping: noise, not a change.
    ("throughput_rps", [1000, 1010, 1300], [1180, 1200, 1210], "not significant"),
    ("p99_us", [100, 105, 130], [120, 126, 128], "not significant"),
    # Min-max ranges apart, but three rounds' intervals are wide enough to overlap.
    ("p99_us", [100, 105, 110], [120, 126, 128], "not significant"),
    # The same medians with intervals apart: a change, in the metric's direction.
    ("throughput_rps", [990, 1000, 1010], [1180, 1200, 1210], "BETTER"),
    ("p99_us", [100, 101, 102], [120, 126, 128], "WORSE"),
    ("cpu_us_per_request", [10, 10.1, 10.2], [8, 8.1, 8.2], "BETTER"),
    # Intervals apart but the medians within MIN_CHANGE: not called a change.
    ("throughput_rps", [1000, 1001, 1002], [1040, 1041, 1042], ""),
    # Just past MIN_CHANGE, intervals apart: marked.
    ("throughput_rps", [1000, 1000, 1000], [1060, 1060, 1060], "BETTER"),
    # Six rounds each: order-statistic intervals, apart.
    ("throughput_rps", [1000, 980, 1010, 990, 1020, 1005], [900, 880, 910, 890, 920, 905],
     "WORSE"),
])
def test_change_is_marked_only_beyond_the_intervals_and_threshold(
        metric: str, a: list[float], b: list[float], mark: str) -> None:
    change = MetricChange.of(metric, a, b)
    assert change.mark == mark
    assert change.changed is (mark in ("BETTER", "WORSE"))


def test_min_change_threshold_sits_at_five_percent() -> None:
    """Either side of MIN_CHANGE with disjoint intervals: 4.5% is unmarked, 5.5% is marked."""
    assert MIN_CHANGE == 0.05
    below = MetricChange.of("throughput_rps", [1000] * 3, [1045] * 3)
    above = MetricChange.of("throughput_rps", [1000] * 3, [1055] * 3)
    assert below.mark == "" and above.mark == "BETTER"


def test_overlapping_change_in_a_run_is_not_counted(tmp_path: Path) -> None:
    """compare_runs on files: one repetition of B's select is 25% up, the others 20%
    up as well but A's top repetition reaches them, so the intervals overlap."""
    def lift(cell: dict[str, Any]) -> None:
        if cell["model"] == "select" and cell["key"] == "closed/select/c16/s64":
            cell["metrics"]["throughput_rps"] = 12000.0 * (1.2, 1.2, 1.25)[cell["repetition"]]

    def stretch(cell: dict[str, Any]) -> None:
        if cell["model"] == "select" and cell["key"] == "closed/select/c16/s64":
            cell["metrics"]["throughput_rps"] = 12000.0 * (0.98, 1.0, 1.3)[cell["repetition"]]

    a = write_run(tmp_path / "a", make_results(repetitions=3, scenarios=SCENARIOS, tweak=stretch))
    b = write_run(tmp_path / "b", make_results(repetitions=3, scenarios=SCENARIOS, tweak=lift))
    comparison = compare_runs(load_run(a), load_run(b))
    cell = next(c for c in comparison.matched if c.key == "closed/select/c16/s64")
    throughput = next(c for c in cell.changes if c.metric == "throughput_rps")
    # Three rounds trim nothing: the ratio of the two runs' means.
    assert throughput.ratio == pytest.approx((1.2 + 1.2 + 1.25) / (0.98 + 1.0 + 1.3), rel=1e-9)
    assert throughput.mark == "not significant" and not throughput.changed


def test_worse_latency_is_marked_worse(tmp_path: Path) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("threads", "p99_us", 3.0))
    comparison = compare_runs(load_run(a), load_run(b))
    cell = next(c for c in comparison.matched if c.key == "closed/threads/c1/s64")
    p99 = next(c for c in cell.changes if c.metric == "p99_us")
    assert p99.mark == "WORSE" and p99.ratio == pytest.approx(3.0, rel=1e-9)


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
    data["environment"]["hostname"] = "elsewhere"
    b = write_run(tmp_path / "other", data)
    assert main(["compare", str(a), str(b)]) == 0
    assert "warning: hostname differs" in capsys.readouterr().out


def test_different_placements_are_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs(tmp_path)
    data = make_results(scenarios=SCENARIOS)
    data["environment"]["placement"] = {
        "server_cpus": [0], "client_cpus": [1], "cluster": "tcp://198.18.0.1:8786",
        "server_host": "server", "client_hosts": ["client1", "client2"],
        "addresses": {"server": "198.18.0.1", "client1": "198.18.0.2",
                      "client2": "198.18.0.3"}}
    b = write_run(tmp_path / "across", data)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "different placements" in err and "across hosts: server on server (198.18.0.1)" in err
    assert "Traceback" not in err
    # The one view of both: a figure of one cell, each curve labelled with its placement.
    figure = tmp_path / "placements.png"
    assert main(["compare", str(a), str(b), "--placement-figure", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    assert main(["compare", str(a), str(b), "--placement-figure", str(figure),
                 "--cell", "no/such/cell"]) == 2


def test_missing_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs(tmp_path)
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iobench: error:") and "Traceback" not in err


def test_fail_above_exits_1_on_a_30_percent_change_and_0_against_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("select", "throughput_rps", 1.3))
    assert main(["compare", str(a), str(a), "--fail-above", "10"]) == 0
    assert "ok: no model moved beyond 10%" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-above", "10"]) == 1
    out = capsys.readouterr().out
    failed = " ".join(out.split("FAIL:")[1].split())
    assert "select throughput: 1.30x [1.30, 1.30]" in failed
    assert "threads" not in failed
    # 30% is within a 40% gate; without --fail-above compare never fails.
    assert main(["compare", str(a), str(b), "--fail-above", "40"]) == 0
    assert main(["compare", str(a), str(b)]) == 0


def test_fail_above_ignores_a_move_within_the_runs_spread(tmp_path: Path) -> None:
    def noisy_a(cell: dict[str, Any]) -> None:
        if cell["key"] == "closed/select/c16/s64" and cell["repetition"] == 0:
            cell["metrics"]["throughput_rps"] *= 1.5
    a = write_run(tmp_path / "a", make_results(repetitions=3, scenarios=SCENARIOS,
                                               tweak=noisy_a))
    b = write_run(tmp_path / "b", make_results(
        repetitions=3, scenarios=SCENARIOS,
        tweak=lambda c: scale_metric("select", "throughput_rps", 1.3)(c)
        if c["key"] == "closed/select/c16/s64" else None))
    comparison = compare_runs(load_run(a), load_run(b))
    cell = next(c for c in comparison.matched if c.key == "closed/select/c16/s64")
    throughput = next(c for c in cell.changes if c.metric == "throughput_rps")
    # B's figure is 1.3x A's rounds; A's figure, the mean of three, carries its 1.5x round.
    assert throughput.ratio == pytest.approx(1.3 * 3 / 3.5, rel=0.1)
    assert not throughput.significant
    assert main(["compare", str(a), str(b), "--fail-above", "10"]) == 0


def test_fail_above_judges_a_model_across_its_cells_beside_the_machines_drift(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As two quick runs of one commit did (poll-sleep's CPU per request at one
    connection 86-101 us in every round of one run, 49-52 us in the next): one cell
    of a model moves far, both runs' intervals apart, its other cells do not: the
    gate passes, naming no model. Every figure of every model 12% higher (the
    machine) passes too. The same model 30% slower in every cell fails."""
    def figures(values: list[float]) -> Callable[[dict[str, Any]], None]:
        def tweak(cell: dict[str, Any]) -> None:
            if cell["key"] == "closed/select/c16/s64":
                cell["metrics"]["cpu_us_per_request"] = values[cell["repetition"]]
        return tweak
    a = write_run(tmp_path / "a", make_results(repetitions=3, scenarios=SCENARIOS,
                                               tweak=figures([86.0, 93.0, 101.0])))
    b = write_run(tmp_path / "b", make_results(repetitions=3, scenarios=SCENARIOS,
                                               tweak=figures([49.0, 51.0, 52.0])))
    change = next(c for cell in compare_runs(load_run(a), load_run(b)).matched
                  if cell.key == "closed/select/c16/s64"
                  for c in cell.changes if c.metric == "cpu_us_per_request")
    assert change.significant and change.beyond(0.10)  # the cell alone would fail
    assert main(["compare", str(a), str(b), "--fail-above", "10"]) == 0
    assert "ok: no model moved beyond 10%" in capsys.readouterr().out

    def machine(cell: dict[str, Any]) -> None:
        for metric in ("throughput_rps", "cpu_us_per_request", "p99_us"):
            if cell["metrics"].get(metric) is not None:
                cell["metrics"][metric] *= 1.12
    drifted = write_run(tmp_path / "drifted", make_results(
        repetitions=3, scenarios=SCENARIOS, tweak=machine))
    assert main(["compare", str(a), str(drifted), "--fail-above", "10"]) == 0
    assert "CPU per request 1.12x" in capsys.readouterr().out  # the drift, printed

    def slower(cell: dict[str, Any]) -> None:
        figures([86.0, 93.0, 101.0])(cell)
        scale_metric("select", "cpu_us_per_request", 1.3)(cell)
    slow = write_run(tmp_path / "slower", make_results(repetitions=3, scenarios=SCENARIOS,
                                                       tweak=slower))
    assert main(["compare", str(a), str(slow), "--fail-above", "10"]) == 1
    assert "select CPU per request: 1.30x" in " ".join(capsys.readouterr().out.split())


QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run" / "results.json"


def test_output_of_two_quick_runs_fits_100_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    a = tmp_path / "a"
    a.mkdir()
    (a / "results.json").write_bytes(QUICK_RUN.read_bytes())
    data = json.loads(QUICK_RUN.read_text())
    data["environment"]["hostname"] = "another-host-with-a-rather-long-name.example"
    for cell in data["cells"]:
        if (cell.get("metrics") or {}).get("throughput_rps"):
            cell["metrics"]["throughput_rps"] *= 1.3
    b = write_run(tmp_path / ("b-with-a-long-folder-name-to-wrap" * 3), data)
    # One repetition: no interval, so a 30% move is named but cannot fail the gate.
    assert main(["compare", str(a), str(b), "--fail-above", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) > 20 and "closed select c16 64B" in out
    too_long = [line for line in lines if len(line) > 100]
    assert not too_long, too_long[0]
    assert "1.30x ?" in out and "? beyond 5%, spread unknown" in out
    assert "not judged, one repetition:" in out


def test_plot_draws_the_ratio_per_cell(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs(tmp_path, b_tweak=scale_metric("select", "throughput_rps", 2.0))
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "out" / "ratio.svg")]) == 0
    svg = (tmp_path / "out" / "ratio.svg").read_text(encoding="utf-8")
    assert "closed select c16 64B" in svg and "2.00x" in svg and "B / A" in svg
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "ratio.png")]) == 0
    assert (tmp_path / "ratio.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "ratio.txt")]) == 2
    err = capsys.readouterr().err
    assert "must end in .png or .svg" in err and "Traceback" not in err


def test_fail_above_exits_1_when_one_model_is_made_30_percent_slower(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """B: every threads cell serves 30% fewer requests at 1/0.7 the CPU each; the rest is
    the same commit measured again (the same numbers, each repetition's own jitter)."""
    def slower(cell: dict[str, Any]) -> None:
        scale_metric("threads", "throughput_rps", 0.7)(cell)
        scale_metric("threads", "cpu_us_per_request", 1 / 0.7)(cell)

    a, b = runs(tmp_path, b_tweak=slower)
    assert main(["compare", str(a), str(b), "--fail-above", "10"]) == 1
    failed = " ".join(capsys.readouterr().out.split("FAIL:")[1].split())
    assert "threads throughput: 0.70x" in failed
    assert "threads CPU per request: 1.43x" in failed
    assert "select" not in failed and "epoll" not in failed


def test_overlap_counts_the_cells_whose_intervals_two_runs_share(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from iobench.benchmarks.report.compare import overlaps

    a, b = runs(tmp_path, b_tweak=scale_metric("select", "throughput_rps", 1.3))
    found = {o.metric: o for o in overlaps(load_run(a), load_run(a))}
    assert found["throughput_rps"].share == 1.0 and found["throughput_rps"].overlapping
    found = {o.metric: o for o in overlaps(load_run(a), load_run(b))}
    throughput = found["throughput_rps"]
    assert throughput.apart and all("/select/" in key for key in throughput.apart)
    assert throughput.share is not None and throughput.share < 1.0
    assert found["cpu_us_per_request"].share == 1.0
    assert main(["compare", str(a), str(b), "--overlap"]) == 0
    out = capsys.readouterr().out
    assert f"throughput: {len(throughput.overlapping)} of " in out and "apart: " in out
    one, _ = runs(tmp_path / "one", repetitions=1)
    single = {o.metric: o for o in overlaps(load_run(one), load_run(one))}
    assert single["throughput_rps"].share is None and single["throughput_rps"].unjudged


def test_every_matched_cell_has_a_label_of_its_own(tmp_path: Path) -> None:
    """The scale cells at 0 and 10,000 idle connections once printed the same label."""
    data = make_results(scenarios=("idle", "closed", "open", "neighbour", "scale"))
    a = write_run(tmp_path / "a", data)
    b = write_run(tmp_path / "b", data)
    comparison = compare_runs(load_run(a), load_run(b))
    labels = [cell.label for cell in comparison.matched]
    assert any("+10,000idle" in label for label in labels)
    assert len(labels) == len(set(labels)) == len(comparison.matched)
