"""The sampler measures a process tree's CPU within a few points of the truth."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from iobench.benchmarks.run.sampler import ProcessTree, Sampler, window_stats
from iobench.common.lifeline import spawn_command

# Burns `share` of one core for `seconds`: share x 10 ms of CPU in every 10 ms.
BURNER = """
import os, sys, time
share, seconds, forks = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])

def burn():
    # CPU time, not wall time: a burst of other work on the CPU delays the burn
    # but does not shorten it, so the share holds on a shared machine.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        period_end = time.monotonic() + 0.01
        busy_end = time.thread_time() + 0.01 * share
        while time.thread_time() < busy_end:
            pass
        time.sleep(max(0.0, period_end - time.monotonic()))

if forks == 0:
    burn()
pids = []
for _ in range(forks):
    pid = os.fork()
    if pid == 0:
        burn()
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


@contextmanager
def burner(share: float, seconds: float, forks: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    """A process (and ``forks`` children) each burning ``share`` of a core, on one CPU each."""
    cpus = sorted(os.sched_getaffinity(0))

    command = [sys.executable, "-c", BURNER, str(share), str(seconds), str(forks)]
    proc = subprocess.Popen(spawn_command(command, cpus=[cpus[-1]]), start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def measure(proc: subprocess.Popen[bytes], seconds: float) -> float:
    with Sampler(interval_s=0.1) as sampler:
        sampler.watch("burner", proc.pid)
        time.sleep(seconds)
    window = sampler.series["burner"].window()
    assert window is not None
    return window_stats(*window).cpu_percent


def test_half_a_core_is_measured_within_ten_points() -> None:
    with burner(0.5, seconds=3.0) as proc:
        time.sleep(0.2)
        measured = measure(proc, 2.0)
    assert 40.0 <= measured <= 60.0, measured


def test_idle_process_measures_near_zero() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(0.3)
        assert measure(proc, 1.0) < 5.0
    finally:
        proc.kill()
        proc.wait()


def test_children_are_counted_and_keep_their_cpu_after_exit() -> None:
    # Two forked children at 20% each, on the parent's CPU: the tree uses ~40% of a
    # core, and a reading after they have exited still counts what they used.
    with burner(0.2, seconds=1.5, forks=2) as proc:
        tree = ProcessTree(proc.pid)
        time.sleep(0.3)
        first = tree.read()
        time.sleep(1.0)
        middle = tree.read()
        assert middle.processes == 3
        proc.wait(5)
        last = tree.read()
    share = window_stats(first, middle).cpu_percent
    assert 25.0 <= share <= 55.0, share
    assert last.processes == 0
    assert last.cpu_s >= middle.cpu_s > 0.2


def test_a_paused_sampler_leaves_the_readings_to_its_caller() -> None:
    """Parked, the sampling thread cannot hold the GIL from the caller's readings; the
    caller's full readings carry the time series on, the system's included."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        with Sampler(interval_s=0.02) as sampler:
            sampler.watch("sleeper", proc.pid)
            time.sleep(0.2)
            with sampler.paused():
                time.sleep(0.05)  # a reading under way when paused may still land
                before = len(sampler.series["sleeper"].readings), len(sampler.system_t_s)
                time.sleep(0.3)
                assert (len(sampler.series["sleeper"].readings),
                        len(sampler.system_t_s)) == before
                sampler.edge()
                assert (len(sampler.series["sleeper"].readings),
                        len(sampler.system_t_s)) == (before[0] + 1, before[1] + 1)
            time.sleep(0.3)
            assert len(sampler.series["sleeper"].readings) >= before[0] + 5
    finally:
        proc.kill()
        proc.wait()
