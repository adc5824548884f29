"""REPORT.md / report.html from synthetic results: files, exact numbers, computed verdicts."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.claims import Verdict, judge_claims
from iobench.benchmarks.report.document import write_all
from iobench.benchmarks.report.figures import FIGURES
from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.stats import figure_interval
from iobench.cli import main
from tests.benchmarks.results_factory import make_results, set_metric, trimmed_mean, write_run


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    run_dir = write_run(tmp_path_factory.mktemp("run"), make_results(repetitions=3))
    started = time.monotonic()
    paths = write_all(run_dir)
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"plots and report took {elapsed:.1f} s"
    return run_dir, paths


def verdicts(data: dict[str, Any], tmp_path: Path) -> dict[str, Verdict]:
    return {c.claim: c.verdict for c in judge_claims(load_run(write_run(tmp_path, data)))}


def test_write_all_returns_every_file_it_wrote(reported: tuple[Path, list[Path]]) -> None:
    _, paths = reported
    names = {p.name for p in paths}
    assert {"REPORT.md", "report.html", "claims.json", "idle_cpu.png",
            "latency_spectrum.svg"} <= names
    assert len(paths) == len(FIGURES) * 2 + 3
    for path in paths:
        assert path.is_file() and path.stat().st_size > 2000, path


def test_report_sections_figures_and_reproduce_line(reported: tuple[Path, list[Path]]) -> None:
    run_dir, _ = reported
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    for heading in ("## Summary: the article's claims", "## Results by scenario",
                    "## Cite these figures", "## Environment", "## Method", "## Reproduce"):
        assert heading in text
    assert "coordinated-omission" in text and "Up to 3 rounds per cell" in text
    assert "server on CPUs [0], load generator on CPUs [1]" in text
    assert ("git checkout 0123456789abcdef0123456789abcdef01234567 && iobench run --profile "
            "synthetic --repeat 3 --server-cpus 0 --client-cpus 1") in text
    for stem in ("throughput_vs_connections", "poll_sleep_tradeoff"):
        assert f"(plots/{stem}.png)" in text


def test_report_numbers_equal_results_json(reported: tuple[Path, list[Path]]) -> None:
    run_dir, _ = reported
    document = json.loads((run_dir / "results.json").read_text())
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    for key, metric, digits in (("closed/select/c16/s64", "throughput_rps", 0),
                                ("closed/poll-sleep/c1/s64", "p99_us", 0),
                                ("idle/busy-poll/c0", "server_cpu_percent", 1)):
        values = [c["metrics"][metric] for c in document["cells"] if c["key"] == key]
        assert len(values) == 3
        # A headline figure: its 20% trimmed mean (three rounds: the mean) with its 95%
        # interval, from the same values.
        interval = figure_interval(values)
        assert interval is not None
        width = max(interval.high - interval.value, interval.value - interval.low)
        expected = f"{trimmed_mean(values):,.{digits}f} ±"
        share = f"{100 * width / interval.value:.0f}%" if width >= interval.value / 100 \
            else "<1%"
        expected += share
        model = key.split("/")[1]
        rows = [line for line in text.splitlines() if line.startswith(f"| {model} |")]
        assert any(expected in row for row in rows), f"{key} {metric}: {expected} not in report"


def test_html_is_self_contained(reported: tuple[Path, list[Path]]) -> None:
    run_dir, _ = reported
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for png in sorted((run_dir / "plots").glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{data}"' in page, f"{png.name} not embedded"
    assert page.count('src="data:image/png;base64,') == len(FIGURES) + 4, \
        "each figure, and one per claim"
    assert 'src="plots/' not in page and "<table>" in page
    assert "<strong>Holds</strong>" in page


def test_all_claims_hold_on_the_articles_story(tmp_path: Path) -> None:
    assert set(verdicts(make_results(), tmp_path).values()) == {Verdict.HOLDS}


@pytest.mark.parametrize(("claim", "tweak"), [
    ("Busy polling drives CPU up", set_metric("busy-poll", "idle", "server_cpu_percent", 3.0)),
    ("Polling with a sleep raises latency",
     set_metric("poll-sleep", "interval", "p50_us", 90.0, interval=0.001)),
    ("Polling with a sleep lowers throughput",
     set_metric("poll-sleep", "closed", "throughput_rps", 12500.0)),
    ("select watches many connections efficiently",
     set_metric("select", "idle", "server_cpu_percent", 8.0)),
    ("select watches many connections efficiently",
     set_metric("select", "closed", "throughput_rps", 2000.0)),
])
def test_a_claim_that_fails_in_the_data_gets_does_not_hold(tmp_path: Path, claim: str,
                                                           tweak: Any) -> None:
    # Six rounds: a paired comparison's interval is then narrow enough to clear a
    # threshold (with two, Student's t at one degree of freedom is 12.7 wide).
    result = verdicts(make_results(tweak=tweak, repetitions=6), tmp_path)
    assert result[claim] == Verdict.DOES_NOT_HOLD
    others = {c: v for c, v in result.items() if c != claim}
    assert set(others.values()) == {Verdict.HOLDS}


def tweaks(*each: Any) -> Any:
    """Several tweaks applied in turn."""
    def apply(cell: dict[str, Any]) -> None:
        for tweak in each:
            tweak(cell)
    return apply


BUSY = "Busy polling drives CPU up"
LATENCY = "Polling with a sleep raises latency"
THROUGHPUT = "Polling with a sleep lowers throughput"
SELECT = "select watches many connections efficiently"
HOLDS, NOT, UNSURE = Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.INCONCLUSIVE


def busy_idle(busy: float, select: float) -> Any:
    return tweaks(set_metric("busy-poll", "idle", "server_cpu_percent", busy),
                  set_metric("select", "idle", "server_cpu_percent", select))


def added_latency(added_us: float) -> Any:
    """poll-sleep at its default 1 ms interval, ``added_us`` above select's 100 us p50."""
    return tweaks(set_metric("select", "interval", "p50_us", 100.0),
                  set_metric("poll-sleep", "interval", "p50_us", 100.0 + added_us,
                             interval=0.001))


def closed_ratio(model: str, versus: str, ratio: float) -> Any:
    """``model``'s closed-loop throughput at ``ratio`` of ``versus``'s 10,000 req/s."""
    return tweaks(set_metric(versus, "closed", "throughput_rps", 10_000.0),
                  set_metric(model, "closed", "throughput_rps", 10_000.0 * ratio))


# Each threshold in claims.py with a value just below it and one just above (4-5%
# away), exact in every repetition: moving a threshold by 20% either way flips one
# of each pair.
@pytest.mark.parametrize(("claim", "tweak", "expected"), [
    # BUSY_POLL_MIN_IDLE_CPU_PERCENT = 50
    pytest.param(BUSY, busy_idle(48.0, 0.05), NOT, id="busy-cpu-48"),
    pytest.param(BUSY, busy_idle(52.0, 0.05), HOLDS, id="busy-cpu-52"),
    # BUSY_POLL_MIN_CPU_RATIO_VS_SELECT = 10 (busy-poll at 60%, select 6.25% or 5.77%)
    pytest.param(BUSY, busy_idle(60.0, 60.0 / 9.6), NOT, id="busy-vs-select-9.6x"),
    pytest.param(BUSY, busy_idle(60.0, 60.0 / 10.4), HOLDS, id="busy-vs-select-10.4x"),
    # MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL = 0.25 of 1 ms = 250 us
    pytest.param(LATENCY, added_latency(240.0), NOT, id="latency-added-240us"),
    pytest.param(LATENCY, added_latency(260.0), HOLDS, id="latency-added-260us"),
    # THROUGHPUT_DROP_HOLDS = 0.20: at most 80% of select's holds
    pytest.param(THROUGHPUT, closed_ratio("poll-sleep", "select", 0.79), HOLDS,
                 id="throughput-drop-21%"),
    pytest.param(THROUGHPUT, closed_ratio("poll-sleep", "select", 0.81), UNSURE,
                 id="throughput-drop-19%"),
    # THROUGHPUT_DROP_NONE = 0.05: 95% or more of select's is no drop
    pytest.param(THROUGHPUT, closed_ratio("poll-sleep", "select", 0.948), UNSURE,
                 id="throughput-drop-5.2%"),
    pytest.param(THROUGHPUT, closed_ratio("poll-sleep", "select", 0.952), NOT,
                 id="throughput-drop-4.8%"),
    # SELECT_MAX_IDLE_CPU_PERCENT = 5
    pytest.param(SELECT, set_metric("select", "idle", "server_cpu_percent", 4.8), HOLDS,
                 id="select-idle-4.8%"),
    pytest.param(SELECT, set_metric("select", "idle", "server_cpu_percent", 5.2), NOT,
                 id="select-idle-5.2%"),
    # SELECT_MIN_THROUGHPUT_VS_THREADS = 0.80
    pytest.param(SELECT, closed_ratio("select", "threads", 0.768), NOT,
                 id="select-vs-threads-0.768"),
    pytest.param(SELECT, closed_ratio("select", "threads", 0.832), HOLDS,
                 id="select-vs-threads-0.832"),
])
def test_each_threshold_from_either_side(tmp_path: Path, claim: str, tweak: Any,
                                         expected: Verdict) -> None:
    result = {c.claim: c for c in judge_claims(load_run(write_run(
        tmp_path, make_results(repetitions=3, tweak=tweak))))}
    assert result[claim].verdict == expected, result[claim].reason


def failed(model: str, scenario: str) -> Any:
    def apply(cell: dict[str, Any]) -> None:
        if cell["model"] == model and cell["scenario"] == scenario:
            cell.update(status="failed", reason="connection refused")
    return apply


def flagged(model: str, scenario: str, flag: str) -> Any:
    def apply(cell: dict[str, Any]) -> None:
        if cell["model"] == model and cell["scenario"] == scenario:
            cell["flags"].append(flag)
    return apply


def saturated_slow_select(cell: dict[str, Any]) -> None:
    """select measured slower than threads, but only because the client ran out of CPU."""
    if cell["model"] == "select" and cell["scenario"] == "closed":
        set_metric("select", "closed", "throughput_rps", 2000.0)(cell)
        cell["flags"].append("client_saturated")


@pytest.mark.parametrize(("claim", "data", "why"), [
    ("Busy polling drives CPU up", make_results(scenarios=("closed", "open")), "no idle"),
    ("Busy polling drives CPU up", make_results(tweak=failed("select", "idle")),
     "connection refused"),
    ("Polling with a sleep raises latency",
     make_results(tweak=flagged("select", "interval", "behind_schedule")), "behind_schedule"),
    ("Polling with a sleep lowers throughput",
     make_results(tweak=flagged("poll-sleep", "closed", "client_saturated"), repetitions=1),
     "saturated"),
    ("select watches many connections efficiently", make_results(scenarios=("idle",)),
     "no closed-loop select"),
    ("select watches many connections efficiently", make_results(tweak=saturated_slow_select),
     "only a lower bound"),
])
def test_missing_failed_or_flagged_cells_make_a_claim_inconclusive(
        tmp_path: Path, claim: str, data: dict[str, Any], why: str) -> None:
    results = {c.claim: c for c in judge_claims(load_run(write_run(tmp_path, data)))}
    assert results[claim].verdict == Verdict.INCONCLUSIVE
    assert why in results[claim].reason


def test_verdict_in_report_follows_the_data(tmp_path: Path) -> None:
    tweak = set_metric("busy-poll", "idle", "server_cpu_percent", 3.0)
    run_dir = write_run(tmp_path, make_results(repetitions=1, tweak=tweak))
    write_all(run_dir)
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    assert "### Busy polling drives CPU up: does not hold" in text
    assert "busy-poll 3.0 % of a core" in text


def test_report_without_open_scenario_notes_the_skipped_figures(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, make_results(repetitions=1,
                                               scenarios=("idle", "closed", "interval")))
    assert main(["report", str(run_dir)]) == 0
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    assert "latency_spectrum: skipped, the run has no 'open' scenario data" in text
    assert "### Open loop" not in text
    assert "so no tables: open, neighbour, scale, churn, work." in text


@pytest.mark.parametrize(("content", "message"), [
    (None, "has no results.json"),
    ("{\"schema_version\": 1, \"cells\": [", "truncated or not JSON"),
    ("{\"schema_version\": 99, \"cells\": []}", "schema_version 99"),
    ("[1, 2]", "not an iobench results file"),
])
@pytest.mark.parametrize("command", ["report", "plot"])
def test_missing_or_corrupt_results_give_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str,
        command: str) -> None:
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iobench: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_histogram_is_a_clear_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = make_results(repetitions=1)
    for cell in data["cells"]:
        if cell["histogram"]:
            cell["histogram"] = "HISTFAAAnot-a-histogram"
    assert main(["plot", str(write_run(tmp_path, data))]) == 2
    err = capsys.readouterr().err
    assert "corrupt latency histogram" in err and "Traceback" not in err


def test_missing_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such results folder" in capsys.readouterr().err


def test_verdicts_at_a_glance_and_large_spread_warning(tmp_path: Path) -> None:
    def noisy(cell: dict[str, Any]) -> None:
        if cell["key"] == "closed/select/c16/s64" and cell["repetition"] == 1:
            set_metric("select", "closed", "throughput_rps",
                       cell["metrics"]["throughput_rps"] * 2)(cell)
    run_dir = write_run(tmp_path, make_results(repetitions=2, tweak=noisy))
    write_all(run_dir)
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    assert "| Busy polling drives CPU up | holds |" in text
    assert "Large spread" in text and "`closed/select/c16/s64` throughput" in text
    assert "`closed/threads/c16/s64`" not in text


def test_throughput_claim_says_when_the_drop_is_only_at_few_connections(tmp_path: Path) -> None:
    def keeps_up(cell: dict[str, Any]) -> None:
        if cell["model"] == "poll-sleep" and cell["scenario"] == "closed" \
                and cell["connections"] == 128:
            set_metric("poll-sleep", "closed", "throughput_rps", 13000.0)(cell)
    data = make_results(tweak=keeps_up)
    results = {c.claim: c for c in judge_claims(load_run(write_run(tmp_path, data)))}
    throughput = results["Polling with a sleep lowers throughput"]
    assert throughput.verdict == Verdict.HOLDS
    assert "only with few connections" in throughput.reason
    assert "128 connections, 64 B (1" in throughput.reason


def test_partly_failed_repetitions_are_noted_in_the_table(tmp_path: Path) -> None:
    def one_fails(cell: dict[str, Any]) -> None:
        if cell["key"] == "closed/threads/c16/s64" and cell["repetition"] == 0:
            cell.update(status="failed", reason="timeout after 30 s")
    run_dir = write_run(tmp_path, make_results(repetitions=3, tweak=one_fails))
    write_all(run_dir)
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines()
               if line.startswith("| threads |") and "1 of 3 repetitions failed" in line)
    assert "timeout after 30 s" in row


# A real `iobench run --profile quick` on five models (time series left out to keep it small).
QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run" / "results.json"


def test_real_quick_run_gives_every_figure_and_its_numbers(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_bytes(QUICK_RUN.read_bytes())
    started = time.monotonic()
    assert main(["report", str(tmp_path)]) == 0
    assert time.monotonic() - started < 30
    for stem in ("throughput_vs_connections", "latency_spectrum", "latency_vs_rate",
                 "cpu_vs_rate", "idle_cpu", "poll_sleep_tradeoff",
                 "memory_threads_vs_connections"):
        for suffix in (".png", ".svg"):
            assert (tmp_path / "plots" / f"{stem}{suffix}").stat().st_size > 15_000
    text = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    document = json.loads(QUICK_RUN.read_text())
    closed = [c for c in document["cells"] if c["scenario"] == "closed"]
    assert closed
    for cell in closed:
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| {cell['model']} |") and "closed" not in line
                   and f"| {cell['metrics']['throughput_rps']:,.0f} |" in line)
        assert f"| {cell['metrics']['p50_us']:,.0f} |" in row
    for claim, verdict in QUICK_RUN_VERDICTS.items():
        assert f"| {claim} | {verdict} |" in text


# The verdicts of the committed quick run, pinned: read from its numbers by hand
# (busy-poll idle at 99.8% of a core against select's 0.0%; poll-sleep's p50 at
# 1 ms 554 us above select's; at 16 connections poll-sleep reaches 100% of
# select's throughput; select idle at 0.0% and at 136% of threads').
QUICK_RUN_VERDICTS = {BUSY: HOLDS, LATENCY: HOLDS, THROUGHPUT: NOT, SELECT: HOLDS}


def test_committed_quick_run_verdicts(tmp_path: Path) -> None:
    results = {c.claim: c for c in judge_claims(load_run(QUICK_RUN.parent))}
    assert {claim: r.verdict for claim, r in results.items()} == QUICK_RUN_VERDICTS
    assert "+554 us" in " ".join(results[LATENCY].evidence)
    assert "reaches 100% of select's throughput" in results[THROUGHPUT].reason


def test_busy_poll_claim_quotes_the_neighbour_and_contention(tmp_path: Path) -> None:
    def contended(cell: dict[str, Any]) -> None:
        if cell["key"] == "idle/busy-poll/c0":
            cell["flags"].append("cpu_contended")
            cell["metrics"]["server_cpu_percent"] = 30.0
    results = {c.claim: c for c in judge_claims(load_run(write_run(
        tmp_path, make_results(repetitions=1, tweak=contended))))}
    busy = results["Busy polling drives CPU up"]
    assert busy.verdict == Verdict.INCONCLUSIVE and "other processes took its CPU" in busy.reason
    assert any(line.startswith("a CPU-bound neighbour beside the idle server") and
               "busy-poll 0.5" in line for line in busy.evidence)


def per_round(model: str, scenario: str, factors: tuple[float, ...]) -> Any:
    """Scale ``model``'s throughput in ``scenario`` by factors[repetition] (Little's law kept)."""
    def apply(cell: dict[str, Any]) -> None:
        if cell["model"] == model and cell["scenario"] == scenario:
            value = cell["metrics"]["throughput_rps"] * factors[cell["repetition"]]
            cell["metrics"]["throughput_rps"] = value
            cell["metrics"]["mean_us"] = cell["connections"] / value * 1e6
    return apply


def test_a_paired_ratio_that_straddles_its_threshold_is_inconclusive(tmp_path: Path) -> None:
    ratios = (0.6, 0.9, 0.65, 0.85, 0.62, 0.88)  # poll-sleep / select, round by round

    def pin(cell: dict[str, Any]) -> None:
        if cell["scenario"] == "closed" and cell["model"] in ("select", "poll-sleep"):
            set_metric(cell["model"], "closed", "throughput_rps", 10_000.0)(cell)
            if cell["model"] == "poll-sleep":
                per_round("poll-sleep", "closed", ratios)(cell)

    result = judge(make_results(repetitions=6, tweak=pin), tmp_path)
    claim = result["Polling with a sleep lowers throughput"]
    assert claim.verdict == Verdict.INCONCLUSIVE
    assert "without clearing either" in claim.reason and "over 6 rounds" in claim.reason


def test_a_drift_shared_by_both_models_leaves_the_paired_verdict_standing(
        tmp_path: Path) -> None:
    """Every model 40% slower in odd rounds: poll-sleep's min-max range overlaps select's,
    but round by round it stays at a fraction of select's, and the claim holds."""
    drift = (1.0, 0.6, 1.0, 0.6, 1.0, 0.6)

    def both(cell: dict[str, Any]) -> None:
        if cell["scenario"] == "closed" and cell["model"] in ("select", "poll-sleep"):
            per_round(cell["model"], "closed", drift)(cell)

    result = judge(make_results(repetitions=6, tweak=both), tmp_path)
    claim = result["Polling with a sleep lowers throughput"]
    assert claim.verdict == Verdict.HOLDS and "paired" in claim.reason


def judge(data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {c.claim: c for c in judge_claims(load_run(write_run(tmp_path / "run", data)))}


def test_report_and_claims_json_carry_the_intervals(reported: tuple[Path, list[Path]]) -> None:
    run_dir, _ = reported
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    assert "Models compared round by round" in text
    assert "throughput / select's" in text and "x [" in text
    claims = json.loads((run_dir / "claims.json").read_text())
    headline = claims["headlines"][0]
    assert headline["ci95"] is not None and headline["ci95"][0] <= headline["value"] \
        <= headline["ci95"][1] and "±" in headline["text"]
    ratio = next(r for r in claims["ratios"] if r["model"] == "threads"
                 and r["point"] == "closed/*/c16/s64" and r["metric"] == "throughput_rps")
    assert ratio["reference"] == "select" and ratio["rounds"] == 3
    assert ratio["ci95"][0] <= ratio["value"] <= ratio["ci95"][1]
    assert claims["estimator"] == "20% trimmed mean, Tukey-McLaughlin"
