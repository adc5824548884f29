"""The median's interval covers the true median as often as it says, on known distributions."""

from __future__ import annotations

import math
import random

import pytest

from iobench.benchmarks.results import stats

TRIALS = 2000


def coverage_of(draw: object, true_median: float, n: int, seed: int) -> float:
    rng = random.Random(seed)
    hits = 0
    for _ in range(TRIALS):
        interval = stats.median_interval([draw(rng) for _ in range(n)])  # type: ignore[operator]
        assert interval is not None
        hits += interval.low <= true_median <= interval.high
    return hits / TRIALS


@pytest.mark.parametrize("n", [6, 10, 20, 30])
def test_order_statistics_cover_a_skewed_median(n: int) -> None:
    # Exponential(1): skewed, median ln 2; the order-statistic interval is exact whatever
    # the distribution, so its coverage is at least 95% up to sampling error.
    assert coverage_of(lambda rng: rng.expovariate(1.0), math.log(2), n, seed=n) >= 0.93


@pytest.mark.parametrize("n", [3, 4, 5])
def test_small_samples_cover_a_lognormal_median(n: int) -> None:
    # Log-normal around 100k req/s with 10% noise: the t interval on logs covers the median.
    found = coverage_of(lambda rng: 100_000 * math.exp(rng.gauss(0, 0.1)), 100_000, n, seed=n)
    assert 0.92 <= found <= 0.98


def test_order_ranks_match_the_binomial_table() -> None:
    assert stats.order_ranks(6) == (1, pytest.approx(62 / 64))
    k, covered = stats.order_ranks(20)
    assert k == 6 and covered == pytest.approx(0.9586, abs=1e-4)
    assert stats.order_ranks(30)[0] == 10


def test_one_sample_has_no_interval_and_equal_ones_a_zero_width() -> None:
    assert stats.median_interval([5.0]) is None
    interval = stats.median_interval([5.0, 5.0, 5.0])
    assert interval is not None and (interval.low, interval.high) == (5.0, 5.0)
    assert stats.format_interval(interval) == "±<1%"


def test_interval_contains_its_median_and_marks_imprecision() -> None:
    interval = stats.median_interval([100.0, 130.0, 70.0])
    assert interval is not None and interval.low <= 100.0 <= interval.high
    assert interval.imprecise and not interval.within(0.10)
    tight = stats.median_interval([100.0, 101.0, 99.0, 100.5, 99.5, 100.2])
    assert tight is not None and tight.within(0.05) and not tight.imprecise
    assert stats.format_interval(tight) == "±1%"


def test_paired_ratio_cancels_a_drift_both_sides_share() -> None:
    # The machine drifts by +-30% from round to round; B is always 0.9 of A, +-1%.
    rng = random.Random(7)
    drift = [1 + rng.uniform(-0.3, 0.3) for _ in range(12)]
    a = {r: 100_000 * d for r, d in enumerate(drift)}
    b = {r: 90_000 * d * (1 + rng.uniform(-0.01, 0.01)) for r, d in enumerate(drift)}
    ratio = stats.paired_ratio(a, b)
    assert ratio is not None and ratio.n == 12
    assert ratio.low <= 0.9 <= ratio.high and ratio.within(0.02)
    # Unpaired, the same figures' intervals overlap: the difference is lost in the drift.
    interval_a, interval_b = stats.median_interval(list(a.values())), \
        stats.median_interval(list(b.values()))
    assert interval_a is not None and interval_b is not None
    assert interval_a.overlaps(interval_b)


def test_paired_ratio_uses_only_rounds_both_sides_have() -> None:
    ratio = stats.paired_ratio({0: 10.0, 1: 10.0, 2: 0.0}, {1: 12.0, 2: 5.0, 3: 9.0})
    assert ratio is not None and ratio.n == 1 and ratio.median == pytest.approx(1.2)
    assert stats.paired_ratio({0: 1.0}, {1: 1.0}) is None


def test_the_store_keeps_each_key_s_interval_with_every_round(tmp_path: object) -> None:
    from pathlib import Path

    from iobench.benchmarks.results.record import CellRecord, Metrics
    from iobench.benchmarks.results.store import RunStore, read_results

    folder = Path(str(tmp_path)) / "run"
    store = RunStore.create(folder, run_id="r", profile="p", environment={}, matrix={})
    for repetition, value in enumerate((100.0, 110.0, 90.0, 105.0, 95.0, 102.0)):
        store.add(CellRecord("closed/epoll/c16/s64", "closed", "epoll", repetition=repetition,
                             metrics=Metrics(throughput_rps=value)))
        if repetition == 0:
            assert "ci95" not in read_results(folder)["cells"][0]["metrics"]
    cells = read_results(folder)["cells"]
    # Six rounds: order statistics, k = 1, so the interval is min-max, in every round.
    assert all(c["metrics"]["ci95"] == {"throughput_rps": [90.0, 110.0]} for c in cells)
    from iobench.benchmarks.results.loader import read_cells

    again = read_cells(cells, folder / "results.json")
    assert again[3].ci95 == {"throughput_rps": [90.0, 110.0]}
