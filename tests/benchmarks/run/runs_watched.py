"""A matrix run started as a user starts it, and every process it starts, watched.

The cluster tests stop a run (Ctrl-C, SIGKILL) once its cell is under way and
then check that nothing it started is left: here is how they start it, see
its processes come, and tell which are still alive.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest


def start_run(tmp_path: Path, profile: str, *options: str) -> subprocess.Popen[str]:
    """``iobench run`` in a session of its own, with ``profile`` (a TOML text)."""
    path = tmp_path / "profile.toml"
    path.write_text(profile)
    command = [sys.executable, "-m", "iobench", "run", "--profile", str(path), *options,
               "--out", str(tmp_path / "run")]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def command_line(process: psutil.Process) -> list[str]:
    """Its command line; none for one that has exited meanwhile."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def wait_for_processes(runner: subprocess.Popen[str], seen: dict[int, psutil.Process],
                       ready: Callable[[list[str]], bool], budget_s: float = 90.0) -> None:
    """Collect the runner's descendants in ``seen`` until ``ready`` holds for the command
    lines of those alive; fail, with the runner's stderr, if it never does."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and runner.poll() is None:
        for child in psutil.Process(runner.pid).children(recursive=True):
            seen.setdefault(child.pid, child)
        if ready([" ".join(command_line(p)) for p in seen.values() if alive(p)]):
            return
        time.sleep(0.1)
    assert runner.stderr is not None
    pytest.fail(f"the cell never started: {runner.stderr.read()[-2000:]}")
