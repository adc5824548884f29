"""Helpers for tests: the models to run against, and a server's process tree."""

from __future__ import annotations

import psutil
import pytest

from servers.registry import all_models


def model_params() -> list:
    """Every registered model; one that cannot run here is skipped with its reason."""
    params = []
    for name, cls in all_models().items():
        reason = cls.unavailable_reason()
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant still alive."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss(pid: int) -> int:
    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


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
