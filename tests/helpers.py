"""Helpers for tests: the models to run against, and a server's process tree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psutil

from iobench.servers.testing import model_params

__all__ = ["model_params", "process_tree", "tree_cpu_seconds", "tree_total", "tree_uss"]


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant still alive."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_total(pid: int, reading: Callable[[psutil.Process], int]) -> int:
    """``reading`` summed over the tree's processes; one that exits meanwhile counts 0."""
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += reading(proc)
    return total


def tree_uss(pid: int) -> int:
    """Memory private to the tree's processes: pages a forked child shares with its
    parent count once, not once per process as in RSS."""
    return tree_total(pid, lambda proc: proc.memory_full_info().uss)


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in process_tree(pid):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        # children_*: the CPU of descendants already reaped (fork's finished children).
        total += times.user + times.system + times.children_user + times.children_system
    return total
