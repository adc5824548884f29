"""The scale scenario's limits: what a cell needs before it starts, and why a model fails.

A cell of the scale scenario holds thousands of idle connections. Some
models cannot: select() takes no descriptor at or above FD_SETSIZE, a process
per connection (fork) runs out of memory long before 50,000, and the machine
itself may allow fewer open files than the cell needs. Each is checked before
the server starts, and the cell fails with a reason that names the limit and
the number, instead of crashing, swapping or hanging. A model whose workers
the idle connections hold (threadpool) does run: being starved is its result,
and :func:`starvation` words it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.launcher import Launcher
from iobench.benchmarks.run.syscalls import UnavailableCounter
from iobench.common.processes import fd_limit_error
from iobench.servers.base import ServerModel

# Beside more idle connections than this, system calls are not counted: perf's
# counters are inherited by every thread or process a server starts per
# connection, thousands of counter sets that slow the server's start and stop
# by tens of seconds.
SYSCALLS_MAX_IDLE = 1000
# Descriptors a server or a load generator needs beside its connections
# (listener, epoll, pipes, files it reads in /proc).
FD_HEADROOM = 64
# Tasks left for everything else on the machine when a model starts one per connection.
TASK_HEADROOM = 1000
# A process-per-connection model's memory is measured with this many idle
# connections before a cell with thousands is allowed to start.
PROBE_CONNECTIONS = 64
# How long the probe waits for the server to fork a child per connection.
PROBE_SETTLE_S = 3.0
# A cell whose server would take longer than this to fork its processes is
# not started either: the load generator would wait minutes to begin.
MAX_ACCEPT_S = 60.0
# Measured on a 2-CPU machine, fork accepted 2000 connections three times
# slower per connection than its first 64: the projection allows for that.
ACCEPT_SAFETY = 3.0
# A cell projected to need more than this share of the available memory is
# not started: the machine would swap or kill something, the runner included.
MEMORY_SHARE = 0.5
GIB = 1024**3
MIB = 1024**2


def descriptors_needed(cell: Cell) -> int:
    """Open files one process (server or load generator) needs for the cell."""
    return cell.idle + cell.connections + FD_HEADROOM


def limit_problem(cell: Cell, model: type[ServerModel]) -> str | None:
    """Why the cell cannot run here, from limits known before anything starts; or None.

    Raises this process's descriptor limit as far as it may go first: the
    server and load generator it starts inherit it.
    """
    needed = descriptors_needed(cell)
    error = fd_limit_error(needed, f"a server with {cell.idle} idle and {cell.connections} "
                                   "active connections")
    if error is not None:
        return str(error)
    problem = task_problem(cell, model)
    if problem is not None:
        return problem
    max_fd = getattr(model, "max_fd", None)
    if max_fd is not None and needed > max_fd:
        return (f"{model.name} cannot watch {cell.idle + cell.connections} connections: select() "
                f"takes only descriptors below FD_SETSIZE ({max_fd}), and this cell needs "
                f"about {needed}")
    return None


def kernel_task_room() -> tuple[int, str]:
    """How many more threads and processes the kernel allows now, and from what.

    Every thread and process is a task with a pid: at most kernel.pid_max and
    kernel.threads-max of them exist at once; /proc/loadavg counts those that do.
    """
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
    existing = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    return (min(pid_max, threads_max) - existing,
            f"kernel.pid_max {pid_max}, kernel.threads-max {threads_max}, {existing} in use")


def task_problem(cell: Cell, model: type[ServerModel]) -> str | None:
    """Why a thread- or process-per-connection model cannot start one per connection."""
    if not model.task_per_connection:
        return None
    needed = cell.idle + cell.connections
    room, source = kernel_task_room()
    if needed + TASK_HEADROOM <= room:
        return None
    kind = "processes" if model.process_per_connection else "threads"
    return (f"{model.name} would start {needed} {kind}, one per connection, but the kernel has "
            f"room for {room} more tasks ({source})")


@dataclass(frozen=True)
class Probe:
    """A process-per-connection model measured with a few idle connections."""

    base_bytes: int  # PSS with no connection
    per_connection_bytes: float  # PSS each connection adds (its process)
    accepts_per_s: float  # how fast it accepted and forked them

    def projected_bytes(self, connections: int) -> float:
        return self.base_bytes + self.per_connection_bytes * connections

    def seconds_to_accept(self, connections: int) -> float:
        """A generous estimate: forking slows down as the processes add up."""
        return ACCEPT_SAFETY * connections / self.accepts_per_s


def probe(launcher: Launcher, cell: Cell) -> Probe:
    """Start the model and measure its PSS with none and PROBE_CONNECTIONS idle connections.

    Read through the launcher's sampler, where the server runs; PSS, because
    RSS would count the pages a forked child shares with its parent once per
    child and project many times the real need. The probe's server is always
    stopped.
    """
    assert cell.model is not None
    server = launcher.start_server(cell.model, cell.params)
    sampler = launcher.sampler()
    try:
        sampler.watch("server", server.pid)
        before = sampler.memory("server")
        if before is None:
            raise RuntimeError(f"cannot read the memory of {cell.model}'s server")
        started = time.monotonic()
        with launcher.idle_connections(server.host, server.port, PROBE_CONNECTIONS):
            deadline = started + PROBE_SETTLE_S
            while (sampler.edge().trees["server"].processes <= PROBE_CONNECTIONS
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            elapsed = time.monotonic() - started
            time.sleep(0.2)  # the last children finish starting up
            after = sampler.memory("server")
    finally:
        server.stop()
    if after is None:
        raise RuntimeError(f"cannot read the memory of {cell.model}'s server")
    return Probe(before.pss_bytes, max(after.pss_bytes - before.pss_bytes, 0) / PROBE_CONNECTIONS,
                 PROBE_CONNECTIONS / elapsed)


def memory_problem(found: Probe, cell: Cell) -> str | None:
    """Why the probed model must not take the cell's connections, with the figures; or None."""
    connections = cell.idle + cell.connections
    projected = found.projected_bytes(connections)
    available = psutil.virtual_memory().available
    if projected > MEMORY_SHARE * available:
        return (f"skipped: {cell.model} would need about {projected / GIB:.1f} GiB for "
                f"{connections} connections ({found.per_connection_bytes / MIB:.2f} MiB PSS "
                f"each, measured with {PROBE_CONNECTIONS}), past half of the "
                f"{available / GIB:.1f} GiB available")
    seconds = found.seconds_to_accept(connections)
    if seconds > MAX_ACCEPT_S:
        return (f"skipped: {cell.model} would take about {seconds:.0f} s to start a process for "
                f"each of {connections} connections ({found.accepts_per_s:.0f} per second with "
                f"{PROBE_CONNECTIONS}, and slower as they add up), past {MAX_ACCEPT_S:.0f} s")
    return None


def starvation(model: type[ServerModel], cell: Cell, errors: str) -> str | None:
    """The failure reason of a model starved by its idle connections, or None."""
    reason = model.starved_by(cell.params, cell.idle) if cell.idle else None
    return f"starved: {reason}; the load generator reported {errors}" if reason else None



def uncounted(pid: int, cell: Cell) -> UnavailableCounter | None:
    """A counter that counts nothing, with why, for a cell with many idle connections."""
    if cell.idle <= SYSCALLS_MAX_IDLE:
        return None
    return UnavailableCounter(pid, f"not counted beside {cell.idle} idle connections: perf "
                                   "would keep a set of counters for every thread or process "
                                   "the server starts per connection")
