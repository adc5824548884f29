"""What ``iobench run`` prints: per-cell lines and the end-of-run table.

The table agrees with REPORT.md: figures (20% trimmed means) over repetitions of
one point. The expected figures are computed here from the raw cell dicts
(trimmed means over repetitions, the peak as the closed-loop point with the
highest figure), not by the console's own helpers or ``stats``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run import console
from iobench.benchmarks.run.console import summary_rows
from tests.benchmarks.results_factory import make_results, trimmed_mean


def cell(key: str, scenario: str, throughput: float, p50: float, cpu: float = 10.0,
         connections: int = 16, repetition: int = 0) -> CellRecord:
    return CellRecord(key=key, model="epoll", scenario=scenario, connections=connections,
                      repetition=repetition,
                      metrics=Metrics(throughput_rps=throughput, p50_us=p50, p99_us=2 * p50,
                                      cpu_us_per_request=5.0, server_cpu_percent=cpu))


def test_two_repetitions_take_their_mean() -> None:
    cells = [cell("closed/epoll/c16", "closed", rps, 100.0 + i, repetition=i)
             for i, rps in enumerate((1000.0, 2000.0))]
    cells += [cell("idle/epoll/c0", "idle", 0, 0, cpu=cpu, connections=0, repetition=i)
              for i, cpu in enumerate((1.0, 3.0))]
    (row,) = summary_rows(cells)
    assert row["peak rps"] == "1500"  # the upper median would say 2000
    assert row["p50 us"] == "100"  # the mean of 100 and 101, rounded half to even
    assert row["idle CPU %"] == "2.0"


def test_peak_is_the_point_with_the_best_figure_not_the_luckiest_repetition() -> None:
    steady = [cell("closed/epoll/c16", "closed", 1500.0, 100.0, repetition=i) for i in range(5)]
    # Five rounds: the lucky 4000 is trimmed, the figure is mean(1020, 1050, 1100).
    lucky = [cell("closed/epoll/c64", "closed", rps, 300.0, repetition=i)
             for i, rps in enumerate((4000.0, 1000.0, 1100.0, 1050.0, 1020.0))]
    (row,) = summary_rows(steady + lucky)
    assert row["peak rps"] == "1500"
    assert row["p50 us"] == "100"


def failing(cell: dict[str, Any]) -> None:
    if cell["key"] == "closed/threads/c16/s64" and cell["repetition"] == 1:
        cell.update(status="failed", reason="timeout after 30 s")


@pytest.fixture(scope="module")
def raw() -> list[dict[str, Any]]:
    return make_results(repetitions=3, tweak=failing)["cells"]


@pytest.fixture(scope="module")
def records(raw: list[dict[str, Any]]) -> list[CellRecord]:
    return [CellRecord.from_json(cell) for cell in raw]


def test_summary_rows_are_the_figures_of_the_cells(raw: list[dict[str, Any]],
                                                   records: list[CellRecord]) -> None:
    rows = {row["model"]: row for row in console.summary_rows(records)}
    assert set(rows) == {c["model"] for c in raw if c["model"] is not None}
    checked = 0
    for model, row in rows.items():
        mine = [c for c in raw if c["model"] == model]
        ok = [c for c in mine if c["status"] == "ok"]
        assert row["failed"] == str(len(mine) - len(ok))
        idle = [c["metrics"]["server_cpu_percent"] for c in ok
                if c["scenario"] == "idle" and c["connections"] == 0]
        closed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for cell in ok:
            if cell["scenario"] == "closed":
                closed[cell["key"]].append(cell["metrics"])
        neighbour = [c["metrics"]["neighbour_ratio"] for c in ok if c["phase"] == "idle"]
        if not (idle and closed and neighbour):
            continue  # a model the synthetic run has in some scenarios only
        checked += 1
        assert row["idle CPU %"] == f"{trimmed_mean(idle):.1f}"
        peak = max(closed.values(),
                   key=lambda reps: trimmed_mean(m["throughput_rps"] for m in reps))
        assert row["peak rps"] == f"{trimmed_mean(m['throughput_rps'] for m in peak):.0f}"
        assert row["p99 us"] == f"{trimmed_mean(m['p99_us'] for m in peak):.0f}"
        assert row["neighbour idle"] == f"{trimmed_mean(neighbour):.0%}"
    assert checked >= 4
    assert int(rows["threads"]["failed"]) >= 1


def test_per_cell_lines_count_and_name_each_cell(records: list[CellRecord],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    chosen = [r for r in records if r.key in ("idle/busy-poll/c0", "closed/threads/c16/s64")
              and r.repetition == 1]
    progress = console.PlainProgress(chosen)  # type: ignore[arg-type]
    for record in chosen:
        progress.cell_finished(record, record)  # type: ignore[arg-type]
    lines = capsys.readouterr().err.splitlines()
    idle = next(r for r in chosen if r.key == "idle/busy-poll/c0")
    assert lines == [
        f"[1/2] ok     idle/busy-poll/c0 r1  server CPU {idle.metrics.server_cpu_percent:.1f}%",
        "[2/2] failed closed/threads/c16/s64 r1  timeout after 30 s",
    ]


def test_summary_lists_failed_cells(records: list[CellRecord],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    console.print_summary("run-1", records)
    out = capsys.readouterr().out
    assert "failed: closed/threads/c16/s64 (repetition 1): timeout after 30 s" in out
    assert out.count("failed: ") == sum(1 for r in records if not r.ok)
    for model in {r.model for r in records if r.model is not None}:
        assert any(line.split()[1:2] == [model] for line in out.splitlines()
                   if line.startswith("│")), model
