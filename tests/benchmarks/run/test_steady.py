"""A cell whose server's CPU steps or drifts inside its window is flagged unsteady."""

from __future__ import annotations

import random

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.run import steady
from iobench.benchmarks.run.runner import check_steady
from iobench.benchmarks.run.sampler import Edge, TreeReading

INTERVAL_S = 0.1


def readings(levels: list[float], noise: float = 0.0, seed: int = 1) -> list[TreeReading]:
    """Cumulative CPU readings every 0.1 s, the server at ``levels[i]`` % of a core
    between reading i and i+1."""
    rng = random.Random(seed)
    cpu, found = 0.0, []
    for index in range(len(levels) + 1):
        found.append(TreeReading(t_s=100 + index * INTERVAL_S, user_s=cpu, system_s=0.0,
                                 ctx_voluntary=0, ctx_involuntary=0, rss_bytes=0, threads=1,
                                 fds=5, processes=1, exact=True))
        if index < len(levels):
            cpu += INTERVAL_S * (levels[index] + rng.gauss(0, noise)) / 100
    return found


def flagged(series: list[TreeReading]) -> CellRecord:
    record = CellRecord("closed/epoll/c16/s64", "closed", "epoll")
    check_steady(record, [Edge(r.t_s, {"server": r}, []) for r in series])
    return record


def test_a_step_half_way_is_flagged_with_what_was_seen() -> None:
    record = flagged(readings([50.0] * 8 + [80.0] * 8, noise=2.0))
    assert steady.UNSTEADY in record.flags
    note = record.notes[steady.UNSTEADY]
    assert "from 50% to 80% of a core" in note and "0.8 s into its 1.6 s window" in note


def test_a_drift_is_flagged() -> None:
    record = flagged(readings([40.0 + 3.0 * i for i in range(16)], noise=1.0))
    assert steady.UNSTEADY in record.flags


def test_noise_around_a_steady_level_is_not_flagged() -> None:
    for seed in range(20):
        record = flagged(readings([60.0] * 15, noise=6.0, seed=seed))
        assert steady.UNSTEADY not in record.flags, record.notes


def test_a_small_step_or_a_short_window_is_not_flagged() -> None:
    assert steady.UNSTEADY not in flagged(readings([60.0] * 8 + [64.0] * 8)).flags
    assert steady.UNSTEADY not in flagged(readings([1.0] * 8 + [2.5] * 8)).flags
    assert steady.UNSTEADY not in flagged(readings([20.0, 20.0, 90.0])).flags
