"""Readings of whole process trees: at the window's edges by the runner, and in a thread.

The server's CPU over a cell is the difference of cumulative counters read
at two edges inside the load generator's window (run/window.py picks them),
never one ``cpu_percent()`` call: what a tree used between two readings is
exact however late a reading comes. Where the server has a cgroup, its CPU
is the cgroup's own counter, read alone and cheaply at every edge
(``Sampler.edge(cpu_only=True)``); without one, ``cpu_times()`` of every process of
the tree, a child's CPU counted after it exits through its parent's
``children_user``/``children_system`` (see :meth:`ProcessTree.read`).
Trees, because a model may fork (prefork, fork per connection): a full
reading walks the root's descendants for threads, descriptors, context
switches and memory. The sampling thread adds full readings every
``interval_s`` for the peaks and the plots; it reads no per-process CPU
beside a cgroup.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

from iobench.benchmarks.run.accounting import PSUTIL, Cgroup

SAMPLE_INTERVAL_S = 0.1
# A psutil reading by the sampling thread that takes longer than this (plus
# PER_PROCESS_READ_S for each process it walks) was preempted (it runs under
# SCHED_IDLE) and is dropped: its counters were read at different moments.
# An unhindered reading of one process takes ~1-3 ms. A cgroup reading is one
# file, timed on its own, and is never dropped.
MAX_READ_S = 0.02
PER_PROCESS_READ_S = 0.0005
# How often the sampling thread looks for new members of a tree without a
# cgroup (an expensive walk of every process on the machine). Edges always do.
MEMBERS_REFRESH_S = 2.0
# Context switches are counted thread by thread (see _switches) up to this many
# threads in one process.
MAX_THREADS_SWITCHES = 2048


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
    exact: bool = False  # CPU from the tree's cgroup (every task, dead ones included)
    # False: CPU only, from the cgroup (:meth:`ProcessTree.read_cpu`); the
    # sizes and switch counts were not read and are 0.
    full: bool = True
    # False: the switch counts are not the tree's (a CPU-only reading, or a
    # process with more threads than MAX_THREADS_SWITCHES).
    switches: bool = True

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


class ProcessTree:
    """A process and its descendants, read as one; CPU from ``cgroup`` when it has one."""

    def __init__(self, pid: int, cgroup: Cgroup | None = None,
                 refresh_s: float = 0.0, max_threads_switches: int = MAX_THREADS_SWITCHES
                 ) -> None:
        self.root = psutil.Process(pid)
        self.cgroup = cgroup
        self.refresh_s = refresh_s
        # Past this many threads in a process its switches are not counted (see _switches).
        self.max_threads_switches = max_threads_switches
        self._procs: dict[int, psutil.Process] = {pid: self.root}
        self._members_cache: list[psutil.Process] = [self.root]
        self._walked_s: float | None = None
        # (pid, create time) -> what it was last seen with
        self._last: dict[tuple[int, float], _Seen] = {}

    def _members(self) -> list[psutil.Process]:
        """The root and its descendants: the cgroup's list, or a walk of /proc.

        psutil finds children by reading the parent of *every* process on the
        machine (~90 ms of wall time with 850 processes), so without a cgroup
        a tree with ``refresh_s`` walks at most that often and reuses its
        members in between; its CPU is unaffected (see :meth:`read`).
        """
        if self.cgroup is not None:
            try:
                found = [self._process(pid) for pid in self.cgroup.pids()]
                return [proc for proc in found if proc is not None] or [self.root]
            except (OSError, ValueError):
                pass
        now = time.monotonic()
        if self._walked_s is not None and now - self._walked_s < self.refresh_s:
            return self._members_cache
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        self._walked_s = now
        # Keep the first Process object per pid: psutil checks it against pid reuse.
        self._members_cache = [self._procs.setdefault(proc.pid, proc)
                               for proc in [self.root, *children]]
        return self._members_cache

    def _process(self, pid: int) -> psutil.Process | None:
        """The Process object for ``pid`` (None if it exited since it was listed)."""
        known = self._procs.get(pid)
        if known is None:
            try:
                known = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return known

    @property
    def accounting(self) -> str:
        return self.cgroup.kind if self.cgroup is not None else PSUTIL

    def read(self) -> TreeReading:
        """Read every live member.

        With a cgroup, CPU is the cgroup's (read first, and stamped then);
        the rest of this applies to the psutil fallback.

        A live member's CPU includes that of the children it has reaped
        (``children_user``/``children_system``), so a forking model's
        short-lived children count even when they came and went between two
        readings. A member that has exited counts with what it was last seen
        with, unless its parent is alive in the tree: then its time is (or is
        about to be) in the parent's reaped-children total. Context switches
        have no such total: an exited process keeps its last counts.
        """
        cgroup_cpu: tuple[float, float] | None = None
        if self.cgroup is not None:
            try:
                cgroup_cpu = self.cgroup.cpu_s()
            except OSError:
                cgroup_cpu = None
            t_s = time.monotonic()
        rss = threads = fds = 0
        counted_switches = True
        live: set[tuple[int, float]] = set()
        for proc in self._members():
            try:
                with proc.oneshot():
                    proc_threads = proc.num_threads()
                    switches = _switches(proc, proc_threads, self.max_threads_switches)
                    ident = (proc.pid, proc.create_time())
                    if cgroup_cpu is None:
                        times = proc.cpu_times()
                        seen = _Seen(proc.ppid(), times.user + times.children_user,
                                     times.system + times.children_system,
                                     *(switches or (0, 0)))
                    else:  # the CPU is the cgroup's: the processes' own is not needed
                        seen = _Seen(0, 0.0, 0.0, *(switches or (0, 0)))
                    memory = proc.memory_info().rss
                    proc_fds = proc.num_fds()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            counted_switches = counted_switches and switches is not None
            self._last[ident] = seen
            live.add(ident)
            rss, threads, fds = rss + memory, threads + proc_threads, fds + proc_fds
        live_pids = {pid for pid, _ in live}
        counted = [seen for ident, seen in self._last.items()
                   if ident in live or seen.ppid not in live_pids]
        everyone = self._last.values()
        if cgroup_cpu is None:
            t_s = time.monotonic()
            cgroup_cpu = (sum(seen.user_s for seen in counted),
                          sum(seen.system_s for seen in counted))
        return TreeReading(
            t_s=t_s,
            user_s=cgroup_cpu[0],
            system_s=cgroup_cpu[1],
            ctx_voluntary=sum(seen.ctx_voluntary for seen in everyone),
            ctx_involuntary=sum(seen.ctx_involuntary for seen in everyone),
            rss_bytes=rss, threads=threads, fds=fds, processes=len(live),
            exact=self.cgroup is not None, switches=counted_switches,
        )

    def read_cpu(self) -> TreeReading:
        """The tree's CPU alone, from its cgroup: one small file, ~0.1 ms however big the tree.

        A tree of 10,000 threads or descriptors takes 10-25 ms to read in
        full, too long to read at the edges of a half-second window without
        taking that time from the load generator. Without a cgroup (or if its
        file cannot be read) this is a full :meth:`read`.
        """
        if self.cgroup is not None:
            try:
                user_s, system_s = self.cgroup.cpu_s()
            except OSError:
                return self.read()
            return TreeReading(t_s=time.monotonic(), user_s=user_s, system_s=system_s,
                               ctx_voluntary=0, ctx_involuntary=0, rss_bytes=0, threads=0,
                               fds=0, processes=0, exact=True, full=False, switches=False)
        return self.read()

    def memory(self) -> Memory | None:
        """PSS, USS, RSS and anonymous PSS of the live members, summed; None if none was read.

        Each comes from /proc/PID/smaps_rollup, ~170 us a process where RSS
        costs a few: read once where it matters, not at 10 Hz. PSS divides
        each shared page among the processes that map it, so a forking
        server's copy-on-write pages count once for the tree, as RSS cannot.
        """
        kernel, kernel_note = self.kernel_memory()
        totals: dict[str, int] = {}
        read = 0
        for proc in self._members():
            values = _smaps_rollup(proc.pid)
            if values is None:
                continue
            read += 1
            for name, value in values.items():
                totals[name] = totals.get(name, 0) + value
        if not read:
            return None
        return Memory(totals.get("Pss", 0),
                      totals.get("Private_Clean", 0) + totals.get("Private_Dirty", 0)
                      + totals.get("Private_Hugetlb", 0),
                      totals.get("Rss", 0), read, pss_anon_bytes=totals.get("Pss_Anon"),
                      kernel_bytes=kernel, kernel_note=kernel_note)

    def kernel_memory(self) -> tuple[int | None, str | None]:
        """What the kernel holds for the tree (its cgroup's count), or None and why.

        Sockets and their buffers, kernel stacks, epoll items, io_uring rings
        and page tables are the kernel's, in no process's PSS; only a cgroup
        the tree was started in can count them (see
        :func:`iobench.benchmarks.run.accounting.kernel_memory`).
        """
        if self.cgroup is None:
            return None, "the server runs in no cgroup of its own (see cpu_accounting)"
        if self.cgroup.kernel is None:
            return None, self.cgroup.kernel_note or "no cgroup counts kernel memory here"
        kernel = self.cgroup.kernel_bytes()
        if kernel is None:
            return None, f"{self.cgroup.kernel.path}'s kernel memory counters could not be read"
        return kernel, None


@dataclass(frozen=True)
class Memory:
    """A tree's memory at one moment, in bytes, and how many processes it summed.

    ``pss_anon_bytes``: the PSS of anonymous pages (heap, stacks, buffers),
    which no process outside the tree shares, unlike the libraries' pages in
    PSS and USS; None where the kernel does not say (before Linux 5.9).
    ``kernel_bytes``: what the kernel holds for the tree outside those pages
    (sockets, kernel stacks...), read from its cgroup just before them; None
    where nothing counts it, and ``kernel_note`` says why.
    """

    pss_bytes: int
    uss_bytes: int
    rss_bytes: int
    processes: int
    pss_anon_bytes: int | None = None
    kernel_bytes: int | None = None
    kernel_note: str | None = None


def _smaps_rollup(pid: int) -> dict[str, int] | None:
    """The byte counts of /proc/PID/smaps_rollup by name; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            text = rollup.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) == 2 and fields[1] == "kB":
            values[name] = int(fields[0]) * 1024
    return values


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

    def window(self, start_s: float | None = None, end_s: float | None = None,
               switches: bool = False) -> tuple[TreeReading, TreeReading] | None:
        """The first and last readings inside [start_s, end_s], or None if fewer than two.

        ``switches``: only readings that counted the context switches.
        """
        inside = [r for r in self.readings
                  if (start_s is None or r.t_s >= start_s) and (end_s is None or r.t_s <= end_s)
                  and (r.switches or not switches)]
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
    ctx_voluntary: int | None  # None: an edge read CPU alone
    ctx_involuntary: int | None
    # The time the switches were counted over, when not the CPU's window.
    switches_elapsed_s: float | None = None

    @property
    def cpu_percent(self) -> float:
        return self.user_percent + self.system_percent

    def switches_per_s(self) -> tuple[float, float] | None:
        """(voluntary, involuntary) context switches per second, if they were counted."""
        if self.ctx_voluntary is None or self.ctx_involuntary is None:
            return None
        elapsed = self.switches_elapsed_s or self.elapsed_s
        return self.ctx_voluntary / elapsed, self.ctx_involuntary / elapsed


def window_stats(first: TreeReading, last: TreeReading) -> WindowStats:
    """CPU between two readings; switch counts too when both counted them."""
    elapsed = max(last.t_s - first.t_s, 1e-9)
    full = first.switches and last.switches
    return WindowStats(
        elapsed_s=elapsed,
        cpu_s=last.cpu_s - first.cpu_s,
        user_percent=100.0 * (last.user_s - first.user_s) / elapsed,
        system_percent=100.0 * (last.system_s - first.system_s) / elapsed,
        ctx_voluntary=last.ctx_voluntary - first.ctx_voluntary if full else None,
        ctx_involuntary=last.ctx_involuntary - first.ctx_involuntary if full else None,
    )


@dataclass(frozen=True)
class Edge:
    """One reading of every watched tree and of the system's per-CPU times, at one moment."""

    t_s: float
    trees: dict[str, TreeReading]
    # psutil.cpu_times(percpu=True) as dicts: cumulative seconds by kind, per CPU.
    cpu_times: list[dict[str, float]]
    # False when read on the server's host with the client elsewhere.
    client_cpus_here: bool = True


class Sampler:
    """Edge readings on demand, and every watched tree every ``interval_s`` in a thread.

    Trees can be added while it runs (the load generator starts after the
    server). The thread and the caller read through separate
    :class:`ProcessTree` objects, so an edge never waits for a reading the
    thread began and was preempted in: the thread holds the lock only to
    append. ``stop()`` takes one last reading, so a series ends at stop time.
    """

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.series: dict[str, Series] = {}
        self.system_t_s: list[float] = []
        self.system_cpu_percent: list[list[float]] = []
        self._trees: dict[str, ProcessTree] = {}  # read by the sampling thread only
        self._edge_trees: dict[str, ProcessTree] = {}  # read by the caller only
        self._exact: set[str] = set()  # trees a figure's CPU rests on
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Cleared while the caller reads the tree itself (:meth:`paused`).
        self._sampling = threading.Event()
        self._sampling.set()
        self._thread: threading.Thread | None = None
        # The sampling thread's own CPU time: what watching costs.
        self.thread_cpu_s = 0.0
        self.thread_elapsed_s = 0.0

    def watch(self, name: str, pid: int, cgroup: Cgroup | None = None,
              exact: bool = True) -> None:
        """Start reading the tree rooted at ``pid`` under ``name`` (e.g. "server").

        ``cgroup``: the cgroup the tree runs in, for exact CPU accounting.
        ``exact``: edges look for new members every time (without a cgroup, a
        walk of every process on the machine, run at normal priority on the
        load generator's CPU); trees whose CPU no figure rests on (the load
        generator reports its own) pass False. A process that has already
        exited leaves nothing to read; its own exit is for the caller to
        notice and report.
        """
        try:
            # The sampling thread reads at 10 Hz: a status file per thread
            # there would cost more than the 1% of a core it may take, and
            # the switches are counted at the edges.
            tree = ProcessTree(pid, cgroup, refresh_s=MEMBERS_REFRESH_S, max_threads_switches=1)
            edge_tree = ProcessTree(pid, cgroup, refresh_s=0.0 if exact else MEMBERS_REFRESH_S)
        except psutil.NoSuchProcess:
            return
        with self._lock:
            self._trees[name] = tree
            self._edge_trees[name] = edge_tree
            if exact:
                self._exact.add(name)
            self.series.setdefault(name, Series())
        self.edge()

    def accounting(self, name: str) -> str | None:
        """How the tree's CPU is counted ("cgroup2", "cgroup1", "psutil"), if watched."""
        tree = self._edge_trees.get(name)
        return tree.accounting if tree is not None else None

    def edge(self, cpu_only: bool = False) -> Edge:
        """Read every tree and the per-CPU times now, in the caller's thread.

        ``cpu_only``: only the trees watched ``exact`` are read, and those
        with a cgroup read their CPU alone (:meth:`ProcessTree.read_cpu`),
        cheap enough to read often. Full readings also join the time series
        (peaks, plots).
        """
        readings = {name: tree.read_cpu() if cpu_only else tree.read()
                    for name, tree in list(self._edge_trees.items())
                    if not cpu_only or name in self._exact}
        edge = Edge(time.monotonic(), readings,
                    [times._asdict() for times in psutil.cpu_times(percpu=True)])
        with self._lock:
            for name, reading in readings.items():
                if reading.full:
                    _insert(self.series[name].readings, reading)
            if not cpu_only and not self._sampling.is_set():
                # The sampling thread is parked: the system's series goes on here.
                self.system_t_s.append(edge.t_s)
                self.system_cpu_percent.append(psutil.cpu_percent(percpu=True))
        return edge

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Park the sampling thread while the caller takes the readings itself.

        The thread runs under SCHED_IDLE and holds the GIL while it walks
        /proc: on a saturated CPU the scheduler may leave it preempted, GIL
        in hand, and the caller's readings would wait for it. Those readings
        place a cell's CPU window, so the thread is parked meanwhile (the
        0.34-0.45 s gaps once seen between readings due every 0.1 s were
        perf's, see window.watch_load; this removes the other way such a gap
        could come). The caller's full readings feed the time series instead.
        """
        self._sampling.clear()
        try:
            yield
        finally:
            self._sampling.set()

    def memory(self, name: str) -> Memory | None:
        """The tree's PSS, USS and RSS now (costly: see :meth:`ProcessTree.memory`)."""
        tree = self._edge_trees.get(name)
        return tree.memory() if tree is not None else None

    def sample(self, max_read_s: float | None = None) -> None:
        """Take one reading of every tree for the time series (the sampling thread's job).

        With ``max_read_s``, a psutil reading that took longer (plus a little
        per process) is dropped: the thread was preempted half-way, so its
        counters were read at different times and its single timestamp would
        misplace some of them. A cgroup reading stamps its CPU when it reads
        it, and is kept.
        """
        for name, tree in list(self._trees.items()):
            began = time.monotonic()
            reading = tree.read()
            allowed = None if max_read_s is None else \
                max_read_s + PER_PROCESS_READ_S * reading.processes
            if reading.exact or allowed is None or reading.t_s - began <= allowed:
                with self._lock:
                    _insert(self.series[name].readings, reading)

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
        # that CPU has nothing else to do. The readings a cell's figures
        # depend on are edges, taken from the caller's thread, so a starved
        # sampler costs time-series resolution, never a figure.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
        began, cpu_began = time.monotonic(), time.thread_time()
        while not self._stop.wait(self.interval_s):
            self._sampling.wait()  # parked, with no time-outs to wake it, while paused
            if self._stop.is_set():
                break
            self.sample(max_read_s=MAX_READ_S)
            self.system_t_s.append(time.monotonic())
            self.system_cpu_percent.append(psutil.cpu_percent(percpu=True))
            self.thread_cpu_s = time.thread_time() - cpu_began
            self.thread_elapsed_s = time.monotonic() - began

    @property
    def thread_cpu_percent(self) -> float | None:
        """The sampling thread's CPU, % of one core, over the time it ran."""
        if self.thread_elapsed_s <= 0:
            return None
        return 100.0 * self.thread_cpu_s / self.thread_elapsed_s

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._sampling.set()
            self._thread.join()
            self._thread = None
            self.edge()

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
            "ctx_voluntary": [r.ctx_voluntary - first.ctx_voluntary
                              if r.switches and first.switches else None for r in readings],
            "ctx_involuntary": [r.ctx_involuntary - first.ctx_involuntary
                                if r.switches and first.switches else None for r in readings],
        }


def _switches(proc: psutil.Process, threads: int, max_threads: int) -> tuple[int, int] | None:
    """(voluntary, involuntary) context switches of every live thread of ``proc``.

    /proc/PID/status (psutil's ``num_ctx_switches``) counts the main thread
    alone, so a thread-per-connection server would read as never switching.
    Each thread's own status file is read instead: ~10 us a thread, so past
    ``max_threads`` threads the count is not taken (None). A thread that
    exits takes its counts with it, so a model whose threads come and go
    under load reads low; the long-lived pools and per-connection threads
    here do not.
    """
    if threads <= 1:
        counts = proc.num_ctx_switches()
        return counts.voluntary, counts.involuntary
    if threads > max_threads:
        return None
    voluntary = involuntary = 0
    try:
        tids = os.listdir(f"/proc/{proc.pid}/task")
    except FileNotFoundError:
        raise psutil.NoSuchProcess(proc.pid) from None
    for tid in tids:
        try:
            with open(f"/proc/{proc.pid}/task/{tid}/status", "rb") as status:
                text = status.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread exited since the folder was listed
        for line in text.splitlines()[-2:]:
            name, _, value = line.partition(b":")
            if name == b"voluntary_ctxt_switches":
                voluntary += int(value)
            elif name == b"nonvoluntary_ctxt_switches":
                involuntary += int(value)
    return voluntary, involuntary


def _insert(readings: list[TreeReading], reading: TreeReading) -> None:
    """Add ``reading`` in time order (the thread's and the caller's readings interleave)."""
    if readings and readings[-1].t_s > reading.t_s:
        readings.append(reading)
        readings.sort(key=lambda r: r.t_s)
    else:
        readings.append(reading)


def cpu_time_shares(first: Edge, last: Edge, cpus: list[int]) -> tuple[float, float] | None:
    """(busy, steal) on ``cpus`` between two edges, % of one CPU's time, summed over them.

    Busy is what any process ran (user, nice, system, interrupts); steal is
    the time the hypervisor ran something else while a CPU wanted to run.
    None when the edges have no per-CPU times for those CPUs.
    """
    busy = steal = 0.0
    elapsed = last.t_s - first.t_s
    if elapsed <= 0:
        return None
    for cpu in cpus:
        if cpu >= len(first.cpu_times) or cpu >= len(last.cpu_times):
            return None
        a, b = first.cpu_times[cpu], last.cpu_times[cpu]
        delta = {name: b[name] - a.get(name, 0.0) for name in b}
        busy += sum(delta.get(name, 0.0) for name in ("user", "nice", "system", "irq",
                                                         "softirq"))
        steal += delta.get("steal", 0.0)
    return 100.0 * busy / elapsed, 100.0 * steal / elapsed
