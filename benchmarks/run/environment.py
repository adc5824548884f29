"""What a run was measured on: small functions that each fill part of a dict.

Figures from different machines or placements are not comparable
(docs/method.md), so every run records the machine, the software and the pinning.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("iobench", "psutil", "hdrhistogram", "rich", "matplotlib", "uvloop",
            "pytest-benchmark", "distributed")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def collect_cpu(env: dict[str, Any]) -> None:
    env["logical_cpus"] = os.cpu_count()
    env["cpu_model"] = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu_model"] = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    env["usable_cpus"] = sorted(os.sched_getaffinity(0))


def collect_system(env: dict[str, Any]) -> None:
    env["kernel"] = platform.release()
    env["os"] = platform.platform()
    env["python"] = platform.python_version()
    env["python_implementation"] = platform.python_implementation()
    env["hostname"] = socket.gethostname()


def collect_packages(env: dict[str, Any]) -> None:
    versions: dict[str, str | None] = {}  # None: not installed here
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env["packages"] = versions


def collect_git(env: dict[str, Any]) -> None:
    env["git_commit"] = env["git_dirty"] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=5, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5,
                                check=True)
    except (OSError, subprocess.SubprocessError):
        return
    env["git_commit"] = commit.stdout.strip() or None
    env["git_dirty"] = bool(status.stdout.strip())


def host_environment() -> dict[str, Any]:
    """What one host of a cluster run is: CPU, kernel, Python, package versions."""
    env: dict[str, Any] = {}
    for collect in (collect_cpu, collect_system, collect_packages):
        collect(env)
    return env


def collect_environment(placement: dict[str, Any],
                        hosts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's environment; ``hosts`` (name -> :func:`host_environment`) on a cluster."""
    env: dict[str, Any] = {}
    for collect in (collect_cpu, collect_system, collect_packages, collect_git):
        collect(env)
    env["placement"] = placement
    if hosts is not None:
        env["hosts"] = hosts
    return env


# What must match for a resumed run's cells to be comparable with the first ones.
MACHINE_KEYS = ("cpu_model", "logical_cpus", "usable_cpus", "kernel")


def machine_differences(recorded: dict[str, Any]) -> list[str]:
    """How this machine differs from the one ``recorded`` (a run's environment) describes.

    Each difference is ``"key: recorded -> now"``; an empty list means the
    same CPU model, CPU count, usable CPUs and kernel.
    """
    now: dict[str, Any] = {}
    collect_cpu(now)
    collect_system(now)
    return [f"{key}: {recorded.get(key)!r} -> {now[key]!r}" for key in MACHINE_KEYS
            if recorded.get(key) != now[key]]
