"""Rounds: each matrix point's models together, in a fresh seeded order every round."""

from __future__ import annotations

from iobench.benchmarks.results.loader import point_key
from iobench.benchmarks.run.matrix import Profile, check_spec, expand
from iobench.benchmarks.run.rounds import interleave, with_rounds

MODELS = ["epoll", "uvloop", "asyncio", "threads", "select"]
PROFILE = """
repeat = 2
rounds = {closed = 4}
[closed]
connections = [1, 16]
[open]
peak_fractions = [0.5]
"""


def profile(text: str = PROFILE) -> Profile:
    import tomllib

    return Profile("t", check_spec(tomllib.loads(text), "t.toml"))


def test_points_keep_their_models_together_in_a_fresh_order_each_round() -> None:
    cells = interleave(with_rounds(profile(), expand(profile(), MODELS)), seed=7)
    closed = [c for c in cells if c.scenario == "closed"]
    assert len(closed) == 4 * 2 * len(MODELS)
    orders = []
    for start in range(0, len(closed), len(MODELS)):
        block = closed[start:start + len(MODELS)]
        assert len({point_key(c.key) for c in block}) == 1
        assert len({c.repetition for c in block}) == 1
        assert sorted(c.model for c in block) == sorted(MODELS)
        orders.append(tuple(c.model for c in block))
    assert len(set(orders)) > 1  # not the same order every round
    # The same seed gives the same order (a resume runs what was planned); another does not.
    again = interleave(with_rounds(profile(), expand(profile(), MODELS)), seed=7)
    assert [c.ident for c in again] == [c.ident for c in cells]
    other = interleave(with_rounds(profile(), expand(profile(), MODELS)), seed=8)
    assert [c.ident for c in other] != [c.ident for c in cells]


def test_a_round_keeps_closed_before_the_open_cells_that_need_its_peak() -> None:
    cells = interleave(with_rounds(profile(), expand(profile(), MODELS)), seed=1)
    for repetition in range(2):
        kinds = [c.scenario for c in cells if c.repetition == repetition]
        assert kinds.index("open") > max(i for i, k in enumerate(kinds) if k == "closed")
    # Rounds come in order: every cell of round r before any of round r+1, also
    # in the scenarios measured in place (their rounds lie a run's length apart).
    assert [c.repetition for c in cells] == sorted(c.repetition for c in cells)


def test_rounds_raise_one_scenario_above_repeat() -> None:
    cells = with_rounds(profile(), expand(profile(), MODELS))
    closed = {c.repetition for c in cells if c.scenario == "closed"}
    opened = {c.repetition for c in cells if c.scenario == "open"}
    assert closed == {0, 1, 2, 3} and opened == {0, 1}


def test_scale_points_keep_small_idle_counts_first() -> None:
    text = """
[scale]
idle_connections = [10000, 0, 1000]
"""
    cells = interleave(expand(profile(text), MODELS), seed=3)
    idle = [c.idle for c in cells]
    assert idle == sorted(idle)
