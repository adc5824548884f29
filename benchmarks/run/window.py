"""The window a cell's server is measured over, and how often the runner reads it.

While the load generator runs, the runner reads the server (its CPU, now and
then everything, its memory) at a cadence that costs the loaded machine
little (:func:`watch_load`); once the load generator reports its measured
window, the first and last readings inside it are the edges the server's CPU
is measured between (:meth:`Watched.pick`). A scale cell's window starts a
warm-up after the server holds its whole crowd (:class:`Crowd`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.launcher import RunningLoad
from iobench.benchmarks.run.sampler import Edge, Memory, Sampler, TreeReading
from iobench.loadgen.report import LoadReport
from iobench.servers.registry import get_model

# The edges of the window the server's CPU is measured over are read by the
# runner itself, at normal priority, while the load generator measures: its
# CPU between two readings inside the window is exact, and the edges need not
# match the load generator's to the millisecond, only lie inside its steady
# load. Outside the neighbour's phase the runner reads the server's CPU this
# often (from its cgroup, ~0.1 ms; without one, a full reading of the tree,
# less often if that is costly) and picks the first and last readings inside
# the window the load generator reports. Full readings, for the peaks and to
# see a scale cell's crowd arrive, come at most every FULL_READING_INTERVAL_S
# (the sampling thread gets next to no CPU while the load generator saturates
# it). The server's PSS is read every MEMORY_INTERVAL_S (it costs ~170 us a
# process) and once it holds every connection; the highest reading is kept.
EDGE_INTERVAL_S = 0.1
MAX_EDGE_INTERVAL_S = 0.5
FULL_READING_INTERVAL_S = 0.15
# A full reading that took at most this long (a small tree: one process and a
# few dozen descriptors) is taken at every edge, for the context switches.
CHEAP_READING_S = 0.003
MEMORY_INTERVAL_S = 1.0
# How often the runner looks for the window a load generator on this host tells
# (a small file) until it has: the marks inside a 0.3 s window are 30 ms in.
SCHEDULE_POLL_S = 0.005
# Where the load generator tells its window, the server is also read this far
# inside its start, halfway, and this far before its end: the CPU edges then
# span all but about 12 ms of it. The runner shares the load generator's CPU,
# which it often saturates, so a reading is due well before the end: with 2 ms,
# 6 of 339 rounds of a quick run took their last reading past it.
EXACT_EDGE_MARGIN_S = 0.002
EXACT_END_MARGIN_S = 0.01

# Idle connections the load generator opens (and a server accepts) per second:
# 10,000 took 1.3-2.0 s against epoll, poll and threads on a busy 2-CPU machine.
# For the time estimate, and (at a tenth) the load generator's time-out.
IDLE_CONNECTS_PER_S = 5000


@dataclass(frozen=True)
class Picked:
    """The edges chosen inside the window (or why there are none), and the highest memory."""

    edges: tuple[Edge, Edge] | None = None
    memory: Memory | None = None
    note: str | None = None
    # Every reading inside the window, for the steady-state check (run/steady.py).
    inside: list[Edge] = field(default_factory=list)
    # The window itself on the runner's clock (:func:`measured_window`), if known.
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Crowd:
    """All of a cell's connections, as a full reading of the server's tree shows them.

    The load generator connects every connection (idle ones first) before
    its warm-up begins, so the moment the server holds them places the
    window, and the server's memory is read then. A connection is a
    descriptor more than the server had before its first (``base``); for a
    process-per-connection model, a process more, since each child also
    inherits descriptors of its own.
    """

    connections: int
    base: int
    per_process: bool

    @classmethod
    def of(cls, cell: Cell, sampler: Sampler | None) -> Crowd:
        series = sampler.series.get("server") if sampler is not None else None
        first = series.readings[0] if series is not None and series.readings else None
        per_process = cell.model is not None and get_model(cell.model).process_per_connection
        base = (first.processes if per_process else first.fds) if first is not None else 0
        return cls(cell.held_connections, base, per_process)

    def held_by(self, reading: TreeReading) -> bool:
        if not reading.full:
            return False
        count = reading.processes if self.per_process else reading.fds
        return count >= self.base + self.connections


@dataclass
class Watched:
    """What the runner read of the server while the load generator ran."""

    edges: list[Edge] = field(default_factory=list)
    memories: list[tuple[float, Memory | None]] = field(default_factory=list)
    exited_s: float | None = None  # when the runner saw the load generator exit

    def pick(self, report: LoadReport, local: bool) -> Picked:
        """The first and last readings inside the load generator's measured window, and the
        highest memory reading.

        The memory is the most the server's tree took while the load ran: a
        forking server may still be starting children for connections that
        wait in its backlog after the window (fork with 1000 connections had
        about 80 children inside a 1.5 s window, and 965 before the load
        generator was done), and a server shrinks as its connections close.
        """
        window = measured_window(report, self.exited_s, local)
        if window is None:
            return Picked(note="the load generator reported no measured window")
        start, end = window
        inside = [edge for edge in self.edges if start <= edge.t_s <= end]
        memory = highest_memory([memory for _, memory in self.memories if memory is not None])
        if len(inside) < 2:
            return Picked(memory=memory, window=window, note=(
                f"{len(inside)} of the runner's {len(self.edges)} readings of the server "
                f"fell inside the load generator's {end - start:.2f} s window"))
        return Picked((inside[0], inside[-1]), memory=memory, inside=inside, window=window)


def highest_memory(read: list[Memory]) -> Memory | None:
    """The reading with the highest PSS, with the highest kernel memory of them all.

    The kernel's highest need not be the same reading's: once the load
    generator closes its connections the kernel frees their sockets at once,
    while the heap keeps its pages (prefork's highest PSS came with 1.2 MB of
    kernel memory, for 39 MB while it held its connections).
    """
    if not read:
        return None
    memory = max(read, key=lambda memory: memory.pss_bytes)
    kernel = [memory.kernel_bytes for memory in read if memory.kernel_bytes is not None]
    if kernel:
        memory = dataclasses.replace(memory, kernel_bytes=max(kernel), kernel_note=None)
    return memory


def measured_window(report: LoadReport, exited_s: float | None,
                    local: bool) -> tuple[float, float] | None:
    """The load generator's measured window on the runner's clock.

    On this host it says so itself (CLOCK_MONOTONIC is the same for every
    process). Elsewhere it is placed back from the moment the runner saw it
    exit by the time it took from the window's end to its report (closing
    idle connections, say): a little late, by the exit and the round trip.
    """
    window = report.client.window_monotonic_s
    if local and window:
        return float(window[0]), float(window[1])
    measured = report.measured_s
    if not measured or exited_s is None:
        return None
    end = exited_s - (report.client.teardown_s or 0.0)
    return end - measured, end


def watch_load(cell: Cell, sampler: Sampler, load: RunningLoad, started: float,
               marks: list[tuple[float, Callable[[], None]]]) -> Watched:
    """Read the server until the load generator exits; each mark's action at its offset
    from the start of the measured window.

    A load generator on this host tells its window before it opens (it waits
    for every connection to be up and served once, so it opens 0.0-0.16 s
    later than a fixed estimate, with 16 connections, and seconds either way
    behind thousands of idle ones): the marks are placed by it, and until
    then it is looked for every SCHEDULE_POLL_S. Elsewhere they are placed by
    an estimate, moved once the server holds its crowd (:class:`Crowd`).
    The edges are chosen afterwards among these readings, inside the window
    the load generator reports (:meth:`Watched.pick`). Most read the
    server's CPU alone, from its cgroup, every EDGE_INTERVAL_S: a full
    reading of a tree that holds 10,000 descriptors or threads takes 10-25
    ms, on the load generator's CPU. Full readings (at every edge if they are
    cheap, else every FULL_READING_INTERVAL_S or more, more often until the
    crowd is there) count the context switches, show when the server holds
    all the cell's connections, idle ones included, and give the peaks; the
    server's memory is read once it does, and every MEMORY_INTERVAL_S.
    """
    crowd = Crowd.of(cell, sampler) if cell.held_connections else None
    measure_at = started + cell.idle / IDLE_CONNECTS_PER_S + cell.warmup_s
    memory_due, full_due = measure_at, started
    pending = sorted(marks, key=lambda mark: mark[0])
    watched = Watched()
    interval = EDGE_INTERVAL_S
    full_cost = float("inf")
    edge_due = time.monotonic() + interval
    awaiting = load.tells_window  # the marks wait for the window the load generator tells
    exact: list[float] = []  # readings due just inside the told window's ends
    # The sampling thread, parked meanwhile, would hold up these readings
    # (see Sampler.paused); the full ones below feed its time series. The
    # marks' actions run in a thread of their own, in order: perf answered an
    # enable or a disable of its counters on a saturated machine only after
    # up to 0.3 s, and a 0.3 s window waiting on it got one reading.
    done: list[Future[None]] = []
    with sampler.paused(), ThreadPoolExecutor(1, thread_name_prefix="iobench-mark") as marking:
        while True:
            due = edge_due
            if awaiting:
                due = min(due, time.monotonic() + SCHEDULE_POLL_S)
            elif pending:
                due = min(due, measure_at + pending[0][0])
            if load.wait(max(0.0, due - time.monotonic())) is not None:
                break
            now = time.monotonic()
            if awaiting and (told := load.window()) is not None:
                measure_at, awaiting = told[0], False
                # A reading just inside each end, so the server's CPU is measured
                # over nearly the whole window, however short, and one halfway,
                # should the last come late.
                exact = [told[0] + EXACT_EDGE_MARGIN_S, (told[0] + told[1]) / 2,
                         told[1] - EXACT_END_MARGIN_S]
                # It is told once every connection is up and served once: the
                # server holds them all, so its memory is read now, in the warm-up
                # (a round measured in place holds them from its first reading on,
                # and no crowd is seen to arrive).
                memory_due = edge_due = now
            while pending and not awaiting and now >= measure_at + pending[0][0]:
                done.append(marking.submit(pending.pop(0)[1]))
            if now < edge_due:
                continue
            # A reading due at one of the window's ends reads the CPU alone if it can
            # (from a cgroup, ~0.1 ms): a full one of a big tree would end past it.
            at_end = bool(exact) and now >= exact[0]
            full = not at_end and (now >= full_due or full_cost <= CHEAP_READING_S)
            edge = sampler.edge(cpu_only=not full)
            read = time.monotonic()
            watched.edges.append(edge)
            server = edge.trees.get("server")
            if full:
                full_cost = read - now
                # Until the crowd is held the window has not begun: look often.
                full_due = read + (max(EDGE_INTERVAL_S, 3 * full_cost) if crowd
                                   else max(FULL_READING_INTERVAL_S, 10 * full_cost))
            else:
                # Without a cgroup every reading is full: read a big tree less
                # often, but at least twice a second.
                interval = min(max(EDGE_INTERVAL_S, 5 * (read - now)), MAX_EDGE_INTERVAL_S)
            if crowd is not None and server is not None and crowd.held_by(server):
                if not load.tells_window:
                    measure_at = server.t_s + cell.warmup_s
                memory_due, crowd = read, None
            if read >= memory_due:
                watched.memories.append((read, sampler.memory("server")))
                memory_due = time.monotonic() + MEMORY_INTERVAL_S
            edge_due = read + interval
            while exact and exact[0] <= read:
                exact.pop(0)
            if exact:
                edge_due = min(edge_due, exact[0])
    watched.exited_s = time.monotonic()
    for future in done:
        future.result()  # an action's error is the caller's
    return watched
