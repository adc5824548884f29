"""Open-loop schedules: uniform spacing across connections and workers, Poisson rates."""

from __future__ import annotations

import heapq
import itertools
import statistics

from iobench.loadgen import LoadParams
from iobench.loadgen.runner import make_plans
from iobench.loadgen.schedule import open_schedule

START_NS = 1_000_000_000


def send_times(params: LoadParams, count_per_worker: int) -> list[int]:
    """The first intended send times of every worker, merged."""
    times: list[int] = []
    for plan in make_plans(params):
        heap, next_after = open_schedule(plan, START_NS)
        for _ in range(count_per_worker):
            due, slot = heap[0]
            times.append(due)
            heapq.heapreplace(heap, (next_after(due), slot))
    return sorted(times)


def test_uniform_arrivals_are_evenly_spaced_over_all_connections_and_workers() -> None:
    params = LoadParams(target="127.0.0.1:1", mode="open", rate_rps=1000.0, connections=6,
                        workers=2)
    times = send_times(params, 300)
    gaps = {later - earlier for earlier, later in itertools.pairwise(times)}
    assert times[0] == START_NS
    assert gaps == {1_000_000}  # exactly 1 ms apart: 1000 requests/s


def test_poisson_arrivals_keep_the_mean_rate_with_exponential_gaps() -> None:
    params = LoadParams(target="127.0.0.1:1", mode="open", rate_rps=2000.0, connections=4,
                        arrival="poisson", seed=3)
    times = send_times(params, 20_000)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    mean_gap = statistics.fmean(gaps)
    assert 0.95 * 500_000 < mean_gap < 1.05 * 500_000
    # Exponential: the standard deviation equals the mean (uniform would give ~0).
    assert 0.9 < statistics.pstdev(gaps) / mean_gap < 1.1


def test_poisson_schedules_differ_between_seeds() -> None:
    def first_times(seed: int) -> list[int]:
        params = LoadParams(target="127.0.0.1:1", mode="open", rate_rps=100.0, connections=2,
                            arrival="poisson", seed=seed)
        return send_times(params, 5)

    assert first_times(1) != first_times(2)
    assert first_times(1) == first_times(1)
