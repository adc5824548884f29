"""The end-of-run table agrees with REPORT.md: true medians over repetitions of one point."""

from __future__ import annotations

from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run.console import summary_rows


def cell(key: str, scenario: str, throughput: float, p50: float, cpu: float = 10.0,
         connections: int = 16, repetition: int = 0) -> CellRecord:
    return CellRecord(key=key, model="epoll", scenario=scenario, connections=connections,
                      repetition=repetition,
                      metrics=Metrics(throughput_rps=throughput, p50_us=p50, p99_us=2 * p50,
                                      cpu_us_per_request=5.0, server_cpu_percent=cpu))


def test_even_repetitions_take_the_mean_of_the_middle_two() -> None:
    cells = [cell("closed/epoll/c16", "closed", rps, 100.0 + i, repetition=i)
             for i, rps in enumerate((1000.0, 2000.0))]
    cells += [cell("idle/epoll/c0", "idle", 0, 0, cpu=cpu, connections=0, repetition=i)
              for i, cpu in enumerate((1.0, 3.0))]
    (row,) = summary_rows(cells)
    assert row["peak rps"] == "1500"  # the upper median would say 2000
    assert row["p50 us"] == "100"  # median of 100 and 101, rounded
    assert row["idle CPU %"] == "2.0"


def test_peak_is_the_point_with_the_best_median_not_the_luckiest_repetition() -> None:
    steady = [cell("closed/epoll/c16", "closed", 1500.0, 100.0, repetition=i) for i in range(3)]
    lucky = [cell("closed/epoll/c64", "closed", rps, 300.0, repetition=i)
             for i, rps in enumerate((4000.0, 1000.0, 1100.0))]
    (row,) = summary_rows(steady + lucky)
    assert row["peak rps"] == "1500"
    assert row["p50 us"] == "100"
