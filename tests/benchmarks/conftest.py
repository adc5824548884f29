"""Fixtures shared by the runner's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iobench.benchmarks.run import accounting


@pytest.fixture
def cgroup() -> Iterator[accounting.Cgroup]:
    """A cgroup of this test's own, removed after it (skipped where none can be made)."""
    try:
        made = accounting.create("test")
    except accounting.CgroupUnavailable as exc:
        pytest.skip(f"no cgroup can be created here: {exc}")
    try:
        yield made
    finally:
        assert made.remove(), f"{made.path} could not be removed"
    assert not made.path.exists()
    assert made.kernel is None or not made.kernel.path.exists()
