"""--precision: rounds are added to the imprecise points, all their models, within a budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run import precision
from iobench.benchmarks.run.matrix import Cell
from iobench.common.errors import UsageError

MODELS = ("epoll", "uvloop", "threads")


def planned() -> list[Cell]:
    return [Cell(f"closed/{m}/c16/s64", "closed", m, {}, "closed", 16, size_bytes=64)
            for m in MODELS]


def noisy(model: str, repetition: int) -> float:
    """threads swings +-40% from round to round; the others hold to +-1%."""
    swing = 0.4 if model == "threads" else 0.01
    return 100_000 * (1 + swing * (-1) ** repetition)


def test_parsing_the_options() -> None:
    assert precision.parse_precision("5%") == pytest.approx(0.05)
    assert precision.parse_precision("2.5") == pytest.approx(0.025)
    assert precision.parse_budget("20m") == 1200 and precision.parse_budget("90s") == 90
    assert precision.parse_budget("1h") == 3600 and precision.parse_budget("45") == 45
    for bad in ("five", "0%", "80%"):
        with pytest.raises(UsageError, match="bad --precision"):
            precision.parse_precision(bad)
    for bad in ("soon", "0m", "-3m"):
        with pytest.raises(UsageError, match="bad --budget"):
            precision.parse_budget(bad)
    with pytest.raises(UsageError, match="unknown precision_metrics"):
        precision.check_metrics(["speed"])


def run_loop(budget_s: float, estimate_s: float) -> tuple[precision.PrecisionLoop,
                                                           list[CellRecord]]:
    recorded: list[CellRecord] = []
    # Each recorded cell took estimate_s of the clock.
    loop = precision.PrecisionLoop(planned(), lambda: recorded, 0.05, budget_s,
                                   ("throughput_rps",), seed=1,
                                   estimate=lambda cell: estimate_s,
                                   clock=lambda: estimate_s * len(recorded))
    for cell in loop:
        assert cell.model is not None
        recorded.append(CellRecord(cell.key, cell.scenario, cell.model,
                                   repetition=cell.repetition,
                                   metrics=Metrics(throughput_rps=noisy(cell.model,
                                                                        cell.repetition))))
    return loop, recorded


def test_rounds_are_added_to_every_model_until_the_budget_ends_and_the_rest_are_named() -> None:
    loop, recorded = run_loop(budget_s=3600, estimate_s=1.0)
    # threads never settles: the loop goes on to its bound, every model of the point along.
    assert loop.stopped_by == f"{precision.MAX_ROUNDS} rounds"
    rounds = {m: sorted(c.repetition for c in recorded if c.model == m) for m in MODELS}
    assert rounds["epoll"] == rounds["threads"] == list(range(precision.MAX_ROUNDS))
    assert list(loop.unmet) == ["closed/threads/c16/s64"]
    assert loop.unmet["closed/threads/c16/s64"][0].startswith("throughput_rps ±")
    loop, recorded = run_loop(budget_s=10, estimate_s=1.0)
    assert loop.stopped_by == "budget" and 3 * precision.MIN_ROUNDS <= len(recorded) <= 10


def test_a_precise_point_stops_after_the_minimum_rounds() -> None:
    recorded: list[CellRecord] = []
    cells = [c for c in planned() if c.model != "threads"]
    loop = precision.PrecisionLoop(cells, lambda: recorded, 0.05, 3600, ("throughput_rps",),
                                   seed=1, estimate=lambda cell: 1.0)
    for cell in loop:
        assert cell.model is not None
        recorded.append(CellRecord(cell.key, cell.scenario, cell.model,
                                   repetition=cell.repetition,
                                   metrics=Metrics(throughput_rps=noisy(cell.model,
                                                                        cell.repetition))))
    assert loop.stopped_by == "precise" and not loop.unmet
    assert max(c.repetition for c in recorded) == precision.MIN_ROUNDS - 1


def test_rounds_count_as_precise_only_from_three_servers() -> None:
    """Eight rounds that agree to 0.1%, all measured by one server kept in place, then
    a fresh server's rounds: precise once the third server has measured one."""
    key = "closed/epoll/c16/s64"

    def rounds(first: int, on_server: int) -> list[CellRecord]:
        return [CellRecord(key, "closed", "epoll", repetition=first + i, server_round=i + 1,
                           metrics=Metrics(throughput_rps=100_000 * (1 + 0.001 * (-1) ** i)))
                for i in range(on_server)]

    recorded = rounds(0, 8)
    (reason,) = precision.shortfalls(recorded, 0.05, ("throughput_rps",))[key]
    assert reason == "throughput_rps (n=8, 1 of 3 servers)"
    recorded += rounds(8, 5)
    assert precision.servers_of(recorded) == 2
    assert precision.shortfalls(recorded, 0.05, ("throughput_rps",))
    recorded += rounds(13, 1)
    assert precision.shortfalls(recorded, 0.05, ("throughput_rps",)) == {}


def test_a_budget_too_small_for_every_point_narrows_the_ones_it_can() -> None:
    """Two points, both imprecise after one round: the cheap one fits the budget."""
    cheap = [Cell(f"closed/{m}/c16/s64", "closed", m, {}, "closed", 16, size_bytes=64)
             for m in ("epoll", "uvloop")]
    dear = [Cell(f"scale/{m}/i10000/c16/s64", "scale", m, {}, "closed", 16, size_bytes=64,
                 idle=10000) for m in ("epoll", "uvloop")]
    recorded: list[CellRecord] = []
    cost = {"closed": 1.0, "scale": 30.0}
    loop = precision.PrecisionLoop(cheap + dear, lambda: recorded, 0.05, 70.0,
                                   ("throughput_rps",), seed=1,
                                   estimate=lambda cell: cost[cell.scenario],
                                   clock=lambda: sum(cost[c.scenario] for c in recorded))
    for cell in loop:
        assert cell.model is not None
        recorded.append(CellRecord(cell.key, cell.scenario, cell.model,
                                   repetition=cell.repetition,
                                   metrics=Metrics(throughput_rps=noisy(cell.model,
                                                                        cell.repetition))))
    rounds = {key: sorted(c.repetition for c in recorded if c.key == key)
              for key in {c.key for c in recorded}}
    assert rounds["closed/epoll/c16/s64"] == [0, 1, 2] == rounds["closed/uvloop/c16/s64"]
    assert rounds["scale/epoll/i10000/c16/s64"] == [0]
    assert loop.stopped_by == "budget" and list(loop.unmet) == [
        "scale/epoll/i10000/c16/s64", "scale/uvloop/i10000/c16/s64"]


@pytest.mark.parametrize(("options", "message"), [
    (["--budget", "5m"], "add --precision PCT"),
    (["--precision", "five"], "bad --precision 'five'"),
    (["--precision", "5%", "--budget", "soon"], "bad --budget 'soon'"),
])
def test_bad_precision_options_are_usage_errors_before_any_folder(
        tmp_path: object, capsys: pytest.CaptureFixture[str], options: list[str],
        message: str) -> None:
    from pathlib import Path

    from iobench.cli import main

    out = Path(str(tmp_path)) / "run"
    assert main(["run", "--profile", "precision-probe", "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_the_docs_give_the_rounds_kept_in_place_as_the_code_has_them() -> None:
    from iobench.benchmarks.run.runner import CROWDED_CONNECTIONS

    text = " ".join((Path(__file__).parents[3] / "docs" / "precision.md").read_text().split())
    assert f"for up to {precision.ROUNDS_PER_SERVER} more rounds" in text
    assert f"for the next {precision.ROUNDS_PER_SERVER}," in text
    assert f"more than {CROWDED_CONNECTIONS} connections" in text


def test_the_docs_give_the_full_profile_s_budget_as_the_profile_has_it() -> None:
    from iobench.benchmarks.run.matrix import load_profile

    minutes = load_profile("full").spec["precision_budget_s"] / 60
    docs = Path(__file__).parents[3] / "docs"
    assert f"within {minutes:.0f} minutes" in " ".join(
        (docs / "precision.md").read_text().split())
    assert f"within its {minutes:.0f}-minute budget" in " ".join(
        (docs / "usage.md").read_text().split())
