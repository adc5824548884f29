"""psutil sampling of whole process trees, from a thread of the runner.

CPU comes from cumulative ``cpu_times()`` deltas (README.md, Method: measurement
rules), never from one ``cpu_percent()`` call: the CPU a tree used between two
readings is exact however late the sampling thread wakes up. Trees, because a
model may fork (prefork, fork per connection): every reading walks the root's
descendants. A child's CPU stays counted after it exits through its
parent's ``children_user``/``children_system`` (the times of reaped
children), so a child born and reaped between two readings is not missed;
see :meth:`ProcessTree.read`.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

SAMPLE_INTERVAL_S = 0.1
# A reading by the sampling thread that takes longer than this was preempted
# (it runs under SCHED_IDLE) and is dropped; an unhindered one takes ~1-3 ms.
MAX_READ_S = 0.02


@dataclass(frozen=True)
class TreeReading:
    """Cumulative counters (since each process started) and current sizes of a tree."""

    t_s: float  # time.monotonic()
    user_s: float
    system_s: float
    ctx_voluntary: int
    ctx_involuntary: int
    rss_bytes: int
    threads: int
    fds: int
    processes: int

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


class ProcessTree:
    """A process and its descendants, read as one."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._procs: dict[int, psutil.Process] = {pid: self.root}
        # (pid, create time) -> what it was last seen with
        self._last: dict[tuple[int, float], _Seen] = {}

    def _members(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        members = []
        for proc in [self.root, *children]:
            # Keep the first Process object per pid: psutil checks it against pid reuse.
            known = self._procs.setdefault(proc.pid, proc)
            members.append(known)
        return members

    def read(self) -> TreeReading:
        """Read every live member.

        A live member's CPU includes that of the children it has reaped
        (``children_user``/``children_system``), so a forking model's
        short-lived children count even when they came and went between two
        readings. A member that has exited counts with what it was last seen
        with, unless its parent is alive in the tree: then its time is (or is
        about to be) in the parent's reaped-children total. Context switches
        have no such total: an exited process keeps its last counts.
        """
        rss = threads = fds = 0
        live: set[tuple[int, float]] = set()
        for proc in self._members():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    switches = proc.num_ctx_switches()
                    ident = (proc.pid, proc.create_time())
                    seen = _Seen(proc.ppid(), times.user + times.children_user,
                                 times.system + times.children_system,
                                 switches.voluntary, switches.involuntary)
                    memory = proc.memory_info().rss
                    proc_threads = proc.num_threads()
                    proc_fds = proc.num_fds()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            self._last[ident] = seen
            live.add(ident)
            rss, threads, fds = rss + memory, threads + proc_threads, fds + proc_fds
        live_pids = {pid for pid, _ in live}
        counted = [seen for ident, seen in self._last.items()
                   if ident in live or seen.ppid not in live_pids]
        everyone = self._last.values()
        return TreeReading(
            t_s=time.monotonic(),
            user_s=sum(seen.user_s for seen in counted),
            system_s=sum(seen.system_s for seen in counted),
            ctx_voluntary=sum(seen.ctx_voluntary for seen in everyone),
            ctx_involuntary=sum(seen.ctx_involuntary for seen in everyone),
            rss_bytes=rss, threads=threads, fds=fds, processes=len(live),
        )


@dataclass(frozen=True)
class _Seen:
    """One process as last read: its parent, CPU (reaped children included), switches."""

    ppid: int
    user_s: float
    system_s: float
    ctx_voluntary: int
    ctx_involuntary: int


@dataclass
class Series:
    """The readings of one tree, in time order."""

    readings: list[TreeReading] = field(default_factory=list)

    def window(self, start_s: float | None = None, end_s: float | None = None
               ) -> tuple[TreeReading, TreeReading] | None:
        """The first and last readings inside [start_s, end_s], or None if fewer than two."""
        inside = [r for r in self.readings
                  if (start_s is None or r.t_s >= start_s) and (end_s is None or r.t_s <= end_s)]
        if len(inside) < 2:
            return None
        return inside[0], inside[-1]


@dataclass(frozen=True)
class WindowStats:
    """What a tree did between two readings: CPU as % of one core, and switch counts."""

    elapsed_s: float
    cpu_s: float
    user_percent: float
    system_percent: float
    ctx_voluntary: int
    ctx_involuntary: int

    @property
    def cpu_percent(self) -> float:
        return self.user_percent + self.system_percent


def window_stats(first: TreeReading, last: TreeReading) -> WindowStats:
    elapsed = max(last.t_s - first.t_s, 1e-9)
    return WindowStats(
        elapsed_s=elapsed,
        cpu_s=last.cpu_s - first.cpu_s,
        user_percent=100.0 * (last.user_s - first.user_s) / elapsed,
        system_percent=100.0 * (last.system_s - first.system_s) / elapsed,
        ctx_voluntary=last.ctx_voluntary - first.ctx_voluntary,
        ctx_involuntary=last.ctx_involuntary - first.ctx_involuntary,
    )


class Sampler:
    """Reads the watched trees and the system's per-CPU use every ``interval_s``.

    Trees can be added while it runs (the load generator starts after the
    server). ``stop()`` takes one last reading, so a window can end at stop time.
    """

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.series: dict[str, Series] = {}
        self.system_t_s: list[float] = []
        self.system_cpu_percent: list[list[float]] = []
        self._trees: dict[str, ProcessTree] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str, pid: int) -> None:
        """Start reading the tree rooted at ``pid`` under ``name`` (e.g. "server").

        A process that has already exited leaves nothing to read; its own
        exit is for the caller to notice and report.
        """
        try:
            tree = ProcessTree(pid)
        except psutil.NoSuchProcess:
            return
        with self._lock:
            self._trees[name] = tree
            self.series.setdefault(name, Series())
        self.sample()

    def sample(self, max_read_s: float | None = None) -> None:
        """Take one reading of every tree now (also called from the sampling thread).

        With ``max_read_s``, a reading that took longer is dropped: the
        thread was preempted half-way, so its counters were read at different
        times and its single timestamp would misplace some of them.
        """
        with self._lock:
            for name, tree in self._trees.items():
                began = time.monotonic()
                reading = tree.read()
                if max_read_s is None or reading.t_s - began <= max_read_s:
                    self.series[name].readings.append(reading)

    def start(self) -> Sampler:
        psutil.cpu_percent(percpu=True)  # the first call only sets psutil's baseline
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # A reading walks /proc for a millisecond or more, on the load
        # generator's CPU (the runner is pinned there). At normal priority it
        # delays the load generator's sends and reads by up to a scheduler
        # slice, and open-loop p99 grew from ~0.3 ms to ~1.5 ms: latency the
        # server did not cause. Under SCHED_IDLE this thread runs only when
        # that CPU has nothing else to do. The readings totals depend on
        # (first and last) are taken from the caller's thread, so a starved
        # sampler costs time-series resolution, never a total; the runner
        # also takes one reading mid-window itself, for the peaks.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
        while not self._stop.wait(self.interval_s):
            self.sample(max_read_s=MAX_READ_S)
            self.system_t_s.append(time.monotonic())
            self.system_cpu_percent.append(psutil.cpu_percent(percpu=True))

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def time_series(self, name: str, origin_s: float) -> dict[str, Any]:
        """The tree's readings as lists for results.json; ``t_s`` from ``origin_s``.

        ``cpu_percent`` is the tree's CPU between a reading and the one before
        it (0 for the first); the context switch counts are cumulative from
        the first reading.
        """
        readings = self.series.get(name, Series()).readings
        if not readings:
            return {}
        first = readings[0]
        cpu = [0.0] + [window_stats(a, b).cpu_percent for a, b in itertools.pairwise(readings)]
        return {
            "t_s": [round(r.t_s - origin_s, 3) for r in readings],
            "cpu_percent": [round(c, 2) for c in cpu],
            "rss_bytes": [r.rss_bytes for r in readings],
            "threads": [r.threads for r in readings],
            "fds": [r.fds for r in readings],
            "ctx_voluntary": [r.ctx_voluntary - first.ctx_voluntary for r in readings],
            "ctx_involuntary": [r.ctx_involuntary - first.ctx_involuntary for r in readings],
        }
