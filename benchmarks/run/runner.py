"""The matrix loop: run each cell through a launcher, record it, go on whatever happens.

A cell that fails (the server does not start or dies, the load generator
reports errors or hangs, idle connections are refused) is recorded with
``status: failed`` and its reason, and the next cell runs. Ctrl-C (or
SIGTERM, or SIGHUP) stops the loop: the cell in progress is abandoned, every process is
stopped, and the finished cells stay on disk for ``--resume``. What differs
between scenarios is asked of the cell's scenario (``run/scenarios/``); how
often the server is read and which readings bound its window is
``run/window.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from iobench.benchmarks.results import plausibility
from iobench.benchmarks.results.loader import point_key
from iobench.benchmarks.results.record import STATUS_FAILED, STATUS_OK, CellRecord
from iobench.benchmarks.results.store import RunStore, utc_now
from iobench.benchmarks.run import metrics as m
from iobench.benchmarks.run import scale, steady, syscalls
from iobench.benchmarks.run.cells import Cell, CellFailed
from iobench.benchmarks.run.launcher import (
    IdleSocket,
    Launcher,
    LoadRounds,
    LoadSpec,
    RunningLoad,
    RunningServer,
    tail,
)
from iobench.benchmarks.run.sampler import Edge, Memory, Sampler
from iobench.benchmarks.run.scenarios import RUN_SCENARIOS
from iobench.benchmarks.run.syscalls import SyscallCounter, SyscallCounts, UnavailableCounter
from iobench.benchmarks.run.window import IDLE_CONNECTS_PER_S, watch_load
from iobench.common.addresses import format_target
from iobench.common.processes import interrupts_raise
from iobench.loadgen.report import LoadReport
from iobench.servers.process import ServerStartError
from iobench.servers.registry import get_model

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Idle connections: let the server accept them (and start threads) before measuring.
IDLE_SETTLE_S = 0.3
# The kernel's count of a server's memory includes what it freed and the
# kernel has not reclaimed yet: a failed accept() allocates a socket, freed a
# grace period later, so a spinning busy-poll read 0.8 to 4.9 MB with no
# connection, and 176 KB once stopped for 20 ms. Memory read outside the
# measured window (before the first connection, after an idle cell's window)
# is read with the server stopped this long.
KERNEL_SETTLE_S = 0.05
# Neighbour under load: the load generator starts (imports, connects) before the
# neighbour's measured work begins, and runs a little longer than it.
NEIGHBOUR_LOAD_LEAD_S = 0.5
# Beside a loaded server the neighbour works at least this long, so that its
# paired slices hold enough whole buckets even where stopping and resuming
# the server takes a round trip (a launcher on other hosts).
NEIGHBOUR_MIN_LOAD_S = 1.0
# Idle phase of the neighbour scenario: the server is stopped and resumed in
# slices this long; buckets of the neighbour's work are compared between them.
NEIGHBOUR_SLICE_S = 0.05
SLICE_MARGIN_S = 0.01
MIN_SLICE_BUCKETS = 10
# Beyond its own duration: how long the neighbour job may take to start and report.
LOAD_GRACE_S = 5.0
# The part of the measured window in which the kernel counts the server's
# system calls: inside it by a margin, so that connection set-up before and
# the closing after it are left out, however late the load generator started.
SYSCALL_WINDOW = (0.1, 0.85)
# The mode of a cell whose scenario drives the server with clients of its own
# (RunScenario.probe) instead of idle connections or the load generator.
PROBE = "probe"
# A round measured in place counts system calls only if its counter was attached
# when the server started (threads and processes started for the connections
# inherit it): the scenario's one counted round per model.
SYSCALLS_FROM_START = ("system calls are counted in one round of a model measured in place, "
                       "from its server's start")
# Start and stop overhead per cell, for the time estimate: the quick profile's
# 207 cells took 210 s on a quiet 2-CPU machine, 0.33 s a cell beyond what
# they wait for (server and load generator start, first exchange, stop).
CELL_OVERHEAD_S = 0.35

# The same for a round measured in place (Runner.in_place): in the quick profile
# a round took 0.07 s beyond its warm-up and window, and its model's start and
# stop (about 0.3 s, once for three rounds) 0.1 s a round more.
IN_PLACE_OVERHEAD_S = 0.18


class Progress(Protocol):
    def cell_started(self, cell: Cell) -> None: ...

    def cell_finished(self, cell: Cell, record: CellRecord) -> None: ...


# A point with more connections than this, idle ones included, is crowded: its
# models measured in place connect one after another (Runner._start_point) and
# are not kept for the rounds --precision adds (Runner.extra).
CROWDED_CONNECTIONS = 128


@dataclass
class Settings:
    """Run-wide knobs from the profile."""

    loadgen_workers: int = 1
    loadgen_timeout_s: float = 5.0
    cell_timeout_s: float = 20.0


def estimated_seconds(cell: Cell) -> float:
    """How long the cell should take, for the progress bar's ETA."""
    lead = 2 * NEIGHBOUR_LOAD_LEAD_S if cell.phase == "load" else 0.0
    settle = IDLE_SETTLE_S if cell.mode == "idle" and cell.connections else 0.0
    settle += cell.idle / IDLE_CONNECTS_PER_S
    work = neighbour_load_s(cell) if cell.phase == "load" else cell.duration_s
    if cell.mode == PROBE:
        work += RUN_SCENARIOS[cell.scenario].probe_seconds(cell)
    overhead = CELL_OVERHEAD_S
    if can_measure_in_place(cell):
        # A model's connections are opened once, before its first round.
        overhead, settle = IN_PLACE_OVERHEAD_S, settle if cell.repetition == 0 else 0.0
    return cell.warmup_s + work + lead + settle + overhead


def can_measure_in_place(cell: Cell) -> bool:
    """What of :meth:`Runner.in_place` the cell decides: a loaded cell of a scenario measured
    in place, of a model whose servers all serve their connections alike."""
    return (RUN_SCENARIOS[cell.scenario].rounds_in_place and cell.phase is None
            and cell.mode in ("closed", "open") and cell.model is not None
            and not get_model(cell.model).spreads_over_workers)


def crowded(cell: Cell) -> bool:
    """More than ``CROWDED_CONNECTIONS`` connections at ``cell``'s point, idle ones included."""
    return cell.connections + cell.idle > CROWDED_CONNECTIONS


def server_params(cell: Cell) -> dict[str, Any]:
    """The cell's model parameters, with ``request_bytes`` set to its message size
    where the server does work per request and the profile did not set it: the
    server counts requests by it (see iobench.servers.base.WORK_PARAMS)."""
    if "work" in cell.params and "request_bytes" not in cell.params and cell.size_bytes:
        return {**cell.params, "request_bytes": cell.size_bytes}
    return cell.params


def neighbour_load_s(cell: Cell) -> float:
    """How long the neighbour works beside a loaded server."""
    return max(cell.duration_s, NEIGHBOUR_MIN_LOAD_S)


@dataclass
class CellContext:
    """What one cell's run gathers, turned into the recorded cell at the end."""

    cell: Cell
    origin_s: float
    sampler: Sampler | None = None
    server: RunningServer | None = None
    report: LoadReport | None = None
    # The edge readings the server's CPU is measured between, or why there are none.
    edges: tuple[Edge, Edge] | None = None
    edges_note: str | None = None
    # Every reading inside the window, for the steady-state check (steady.py).
    window_edges: list[Edge] = field(default_factory=list)
    # The server's memory while it held its connections, and before the first.
    memory: Memory | None = None
    baseline_memory: Memory | None = None
    neighbour_ops_per_s: float | None = None
    # The CPU the neighbour's work took, as it reported it.
    neighbour_cpu_s: float | None = None
    syscall_counter: SyscallCounter | None = None
    syscalls: SyscallCounts | None = None
    # Idle phase: the neighbour's rate in the slices when the server was stopped.
    neighbour_paused_ops_per_s: float | None = None
    rate_rps: float | None = None
    # Scale scenario: a longer load-generator time-out for a server that forks slowly.
    loadgen_timeout_s: float | None = None
    # A probe cell: what writes its figures onto the record.
    probed: Callable[[CellRecord], None] | None = None
    # A server that exited once the load generator had left, where that is a finding.
    server_exit: str | None = None


def settled_memory(server: RunningServer, sampler: Sampler) -> Memory | None:
    """The server's memory read while it is stopped for KERNEL_SETTLE_S, so the kernel's
    count holds what the server holds and not what it has just freed.

    Only outside a measured window: the stop would show in its figures.
    """
    server.pause()
    try:
        time.sleep(KERNEL_SETTLE_S)
        return sampler.memory("server")
    finally:
        server.resume()


class Runner:
    """Runs cells through ``launcher`` and adds each to ``store`` as soon as it ends."""

    def __init__(self, launcher: Launcher, store: RunStore, settings: Settings,
                 progress: Progress | None = None) -> None:
        self.launcher = launcher
        self.store = store
        self.settings = settings
        self.progress = progress
        self.members: dict[str, Member] = {}
        self.extra_rounds = 0

    def run(self, cells: Iterable[Cell], plan: list[Cell] | None = None, *,
            extra_rounds: int = 0) -> bool:
        """Run the cells not yet in the store; False if interrupted.

        ``cells`` is read as it runs (``iobench run --precision`` adds rounds
        from what the ones before gave). What is measured in place is known from
        ``plan``, the cells known beforehand (``cells`` itself when it is a list):
        how many rounds each model has left. With ``extra_rounds``, each model
        measured in place is kept after its planned rounds for up to that many
        more (its cells beyond ``plan``), until :meth:`release` or the end of
        the run, and its rounds after those get a fresh server and load
        generator for up to that many again, and so on: the rounds sample
        several servers of each model, not one (a server's figures differ from
        the next one's by a few percent). Other cells beyond the plan run one
        by one, and so do those of points with many connections (:meth:`extra`).
        """
        done = self.store.done()
        interrupted = False
        error: str | None = None
        if plan is None:
            plan = cells if isinstance(cells, list) else []
        plan = [cell for cell in plan if cell.ident not in done]
        # How many rounds each model measured in place has left (Member), and
        # where in the plan the run is (a point's members start together).
        left = Counter(cell.key for cell in plan if self.in_place(cell))
        position = {cell.ident: index for index, cell in enumerate(plan)}
        self.members, self.extra_rounds = {}, extra_rounds
        # SIGHUP is what a run started over SSH gets when the connection drops:
        # it stops the run as Ctrl-C does, keeping the finished cells.
        with interrupts_raise(STOP_SIGNALS):
            try:
                for cell in cells:
                    if cell.ident in done:
                        continue
                    if (cell.key not in self.members and cell.ident in position
                            and self._kept_rounds(cell, left)):
                        self._start_point(cell, plan[position[cell.ident]:], left)
                    member = self.members.get(cell.key)
                    if (member is None and self.extra(cell) and cell.ident not in position
                            and self.in_place(cell)):
                        # A round beyond the plan after the model's member measured all
                        # it may: a fresh server and load generator for the next ones.
                        member = self.members[cell.key] = self._start_member(
                            cell, self.extra(cell))
                        self._member_ready(member)
                    if self.progress:
                        self.progress.cell_started(cell)
                    record = self.run_cell(cell, member)
                    record.server_round = len(member.records) + 1 if member is not None else 1
                    self.store.add(record)
                    done.add(cell.ident)
                    if member is not None:
                        member.records.append(record)
                        if cell.ident in position:
                            left[cell.key] -= 1
                        if len(member.records) >= member.rounds or (
                                not left[cell.key] and not self.extra(cell)):
                            self._stop_members([self.members.pop(cell.key)])
                    if self.progress:
                        self.progress.cell_finished(cell, record)
            except KeyboardInterrupt:
                interrupted = True
            except BaseException as exc:
                # A defect or an OS failure outside any cell (the disk is full,
                # ...): the run is recorded as not finished, with why, and the
                # exception goes on to the caller.
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                members, self.members = list(self.members.values()), {}
                self._stop_members(members)
                self.launcher.stop_all()
                syscalls.wait_released()
                self.store.finish(interrupted=interrupted, error=error)
        return not interrupted

    def in_place(self, cell: Cell) -> bool:
        """Whether ``cell``'s rounds are measured in place: a loaded cell of a scenario
        that has it, one load-generator worker, a launcher that can, and a model whose
        servers all serve their connections alike (not prefork: which worker takes which
        connection differs from one server to the next, and with it p99 by 10x behind
        10,000 idle connections, so each of its rounds gets a server of its own)."""
        return (can_measure_in_place(cell) and self.settings.loadgen_workers == 1
                and self.launcher.rounds_in_place)

    def _start_point(self, cell: Cell, todo: list[Cell], left: Counter[str]) -> None:
        """Start every model of ``cell``'s point that has rounds left to measure in place
        (:class:`Member`), each for as many rounds as it has left. Pipelined: one
        model's load generator connects (on the client's CPUs) while the next model's
        server starts and its load generator connects; except at a crowded point,
        where a model serves its connections once alone on the server's CPU: there
        busy-poll's server, started meanwhile and spinning, took half the CPU fork
        needed to fork for its 1000 connections, and fork starved."""
        point = (cell.scenario, point_key(cell.key))
        starting: Member | None = None
        for other in todo:
            rounds = self._kept_rounds(other, left)
            if (other.scenario, point_key(other.key)) != point or other.key in self.members \
                    or not rounds:
                continue
            if starting is not None and crowded(other):
                self._member_ready(starting)  # alone on the server's CPU until then
                starting = None
            member = self.members[other.key] = self._start_member(other, rounds)
            if starting is not None:
                self._member_ready(starting)
            starting = member
        if starting is not None:
            self._member_ready(starting)

    def _kept_rounds(self, cell: Cell, left: Counter[str]) -> int:
        """The rounds a member started now for ``cell``'s model would measure: its planned
        rounds left (``left`` counts only models measured in place) and its extra ones;
        0 where there are none or one (a server of its own serves one as well)."""
        rounds = left[cell.key] + self.extra(cell) if left[cell.key] else 0
        return rounds if rounds > 1 else 0

    def _stop_members(self, members: list[Member]) -> None:
        """Stop the members (their load generators first, all at once), and write onto
        their rounds what their servers said once stopped (prefork's accepts)."""
        for member in members:
            member.release()
        for member in members:
            member.stop()
            for record in member.records:
                server_report(record, member.server)
            self.store.changed(member.records)
        if any(member.records for member in members):
            self.store.write()

    def extra(self, cell: Cell) -> int:
        """The rounds beyond the plan ``cell``'s model is kept for: none at a crowded
        point (:func:`crowded`). Those points' servers hold a thread or a process per
        connection (threads, fork) or thousands of descriptors, and keeping them for
        the whole run left a full run with 25,000 tasks of the kernel's 32,768 and its
        next 10,000-thread server refused."""
        return 0 if crowded(cell) else self.extra_rounds

    def release(self, keys: Iterable[str]) -> None:
        """Stop the members of ``keys`` kept for extra rounds: none will come."""
        self._stop_members([self.members.pop(key) for key in keys if key in self.members])

    def kept(self) -> set[int]:
        """The processes of the members measured in place, which a cell between their
        rounds must leave running."""
        return {pid for member in self.members.values() for pid in member.pids()}

    def _start_member(self, cell: Cell, rounds: int) -> Member:
        """Start ``cell``'s server for ``rounds`` rounds, then its load generator, which
        connects (:meth:`_member_ready` waits until every connection is served once); a
        failure is kept, for each of the model's rounds to report."""
        member = Member(cell, rounds)
        scenario = RUN_SCENARIOS[cell.scenario]
        sampler = None
        try:
            assert cell.model is not None and cell.size_bytes is not None
            member.rate_rps = cell.rate_rps
            if cell.peak_fraction is not None:
                member.rate_rps = cell.peak_fraction * self._peak(cell)
            member.loadgen_timeout_s = scenario.prepare(
                cell, self.launcher, self.settings.loadgen_timeout_s)
            server = member.server = self.launcher.start_server(cell.model, server_params(cell))
            sampler = self._server_sampler(server)
            member.baseline_memory = (settled_memory(server, sampler)
                                      if scenario.settles_memory else sampler.memory("server"))
            # A round that counts system calls is counted from before the first
            # connection: threads and processes the server starts for them inherit
            # the counters, which stay disabled until that round's marks.
            for repetition in range(cell.repetition, cell.repetition + rounds):
                counter = scenario.syscall_counter(
                    self.launcher, server.pid, dataclasses.replace(cell, repetition=repetition))
                if not isinstance(counter, UnavailableCounter):
                    member.counter, member.counted = counter, repetition
                    counter.start()
                    break
            member.spec = self._spec(cell, server, member.rate_rps, member.loadgen_timeout_s)
        except Exception as exc:
            member.failure = failure_reason(exc)
        finally:
            if sampler is not None:
                sampler.stop()
        self._connect(member)
        return member

    def _connect(self, member: Member) -> None:
        """Start the member's load generator, which connects and serves every connection
        once (:meth:`_member_ready` waits for that)."""
        if member.failure is not None or member.spec is None:
            return
        try:
            member.load = self.launcher.start_load_rounds(member.spec, member.rounds)
            assert member.load is not None  # in_place() asked rounds_in_place
        except Exception as exc:
            member.failure = failure_reason(exc)

    def _server_sampler(self, server: RunningServer) -> Sampler:
        """A started sampler that watches ``server``."""
        sampler = self.launcher.sampler()
        sampler.start()
        sampler.watch("server", server.pid, cgroup=server.cgroup)
        return sampler

    def _member_ready(self, member: Member) -> None:
        """Wait until the member's load generator has its connections up and served once,
        then pause its server until its first round."""
        if member.failure is not None:
            return
        load, server, spec, cell = member.load, member.server, member.spec, member.cell
        assert load is not None and server is not None and spec is not None
        limit = (spec.timeout_s * 2 + self.settings.cell_timeout_s
                 + 10 * cell.idle / IDLE_CONNECTS_PER_S)
        try:
            if load.ready(limit) is None:
                code = load.process.poll()
                raise CellFailed(
                    f"the load generator exited with code {code} before its connections were "
                    f"up: {tail(load.process.stderr_text())}" if code is not None else
                    f"the load generator did not have its connections up within {limit:.0f} s"
                    f"{self._stderr_note(server)}")
            self._check_server(server)
            member.pause()
        except Exception as exc:
            member.failure = failure_reason(exc)

    def run_cell(self, cell: Cell, member: Member | None = None) -> CellRecord:
        context = CellContext(cell, time.monotonic(), rate_rps=cell.rate_rps)
        started = utc_now()
        reason = None
        try:
            if member is None:
                self._run(context)
            else:
                self._round(context, member)
        except Exception as exc:  # a defect or an OS failure: still only this cell fails
            reason = failure_reason(exc)
        finally:
            if context.syscall_counter is not None:
                context.syscalls = context.syscall_counter.stop()
                context.syscall_counter = None
            if context.sampler is not None:
                context.sampler.stop()
            if member is not None:
                member.pause()
            else:
                if context.server is not None:
                    context.server.stop()
                self.launcher.stop_all(keep=self.kept())
        return self._record(context, started, reason)

    def _round(self, context: CellContext, member: Member) -> None:
        """One round of a model measured in place: its server resumed, one window."""
        if member.failure is not None:
            raise CellFailed(member.failure)
        assert member.server is not None
        context.rate_rps = member.rate_rps if member.rate_rps is not None else context.rate_rps
        context.loadgen_timeout_s = member.loadgen_timeout_s
        context.server, context.baseline_memory = member.server, member.baseline_memory
        context.sampler = self._server_sampler(member.server)
        member.resume()
        self._load(context, member)
        self._check_server(member.server)

    def _run(self, context: CellContext) -> None:
        cell = context.cell
        context.sampler = self.launcher.sampler()
        context.sampler.start()
        if cell.phase == "solo":
            first = context.sampler.edge()
            context.neighbour_ops_per_s = self._neighbour(context, cell.duration_s)
            context.edges = (first, context.sampler.edge())
            return
        if cell.peak_fraction is not None:
            context.rate_rps = cell.peak_fraction * self._peak(cell)
        assert cell.model is not None
        context.loadgen_timeout_s = RUN_SCENARIOS[cell.scenario].prepare(
            cell, self.launcher, self.settings.loadgen_timeout_s)
        context.server = self.launcher.start_server(cell.model, server_params(cell))
        context.sampler.watch("server", context.server.pid, cgroup=context.server.cgroup)
        context.baseline_memory = (
            settled_memory(context.server, context.sampler)
            if RUN_SCENARIOS[cell.scenario].settles_memory
            else context.sampler.memory("server"))
        if cell.mode == PROBE:
            self._probe(context)
        elif cell.mode == "idle":
            self._idle(context)
        else:
            self._load(context)
        self._check_server(context.server)

    def _probe(self, context: CellContext) -> None:
        """The scenario's own clients against the server, between two edge readings."""
        cell, server, sampler = context.cell, context.server, context.sampler
        assert server is not None and sampler is not None
        local = self.launcher.placement.server_host is None
        first = sampler.edge()
        context.probed = RUN_SCENARIOS[cell.scenario].probe(
            cell, (server.host, server.port), server.pid if local else None)
        context.edges = (first, sampler.edge())
        context.memory = sampler.memory("server")

    def _idle(self, context: CellContext) -> None:
        cell, server, sampler = context.cell, context.server, context.sampler
        assert server is not None and sampler is not None
        with contextlib.ExitStack() as stack:
            try:
                sockets = stack.enter_context(
                    self.launcher.idle_connections(server.host, server.port, cell.connections))
            except OSError as exc:
                raise CellFailed(f"cannot open {cell.connections} idle connections: "
                                 f"{exc.strerror or exc}{self._stderr_note(server)}") from None
            if cell.connections:
                time.sleep(IDLE_SETTLE_S)
            first = sampler.edge()
            if cell.phase == "idle":
                context.neighbour_ops_per_s, context.neighbour_paused_ops_per_s = \
                    self._neighbour_beside(context, cell.duration_s)
            else:
                time.sleep(cell.duration_s)
            context.edges = (first, sampler.edge())
            context.memory = settled_memory(server, sampler)
            closed = sum(1 for s in sockets if _peer_closed(s))
            if closed:
                raise CellFailed(f"the server closed {closed} of {cell.connections} idle "
                                 f"connections{self._stderr_note(server)}")

    def _spec(self, cell: Cell, server: RunningServer, rate_rps: float | None,
              loadgen_timeout_s: float | None) -> LoadSpec:
        """The load generator's options for ``cell`` against ``server``."""
        assert cell.size_bytes is not None
        duration = (neighbour_load_s(cell) + NEIGHBOUR_LOAD_LEAD_S * 2 if cell.phase == "load"
                    else cell.duration_s)
        return LoadSpec(format_target(server.host, server.port), cell.mode, cell.connections,
                        duration, cell.warmup_s, cell.size_bytes, rate_rps,
                        self.settings.loadgen_workers,
                        loadgen_timeout_s or self.settings.loadgen_timeout_s,
                        idle=cell.idle, requests_per_connection=cell.requests_per_connection)

    def _load(self, context: CellContext, member: Member | None = None) -> None:
        cell, server, sampler = context.cell, context.server, context.sampler
        assert server is not None and sampler is not None and cell.size_bytes is not None
        load: RunningLoad
        if member is None:
            spec = self._spec(cell, server, context.rate_rps, context.loadgen_timeout_s)
            # Attached before the load starts: threads and processes the server
            # starts for its connections inherit the counters.
            counter = context.syscall_counter = RUN_SCENARIOS[cell.scenario].syscall_counter(
                self.launcher, server.pid, cell)
            counter.start()
            load = self.launcher.start_load(spec)
        else:
            assert member.spec is not None and member.load is not None
            spec = member.spec
            counter = context.syscall_counter = member.counter_for(cell, self.launcher)
            load = member.load.go()
        duration = spec.duration_s
        if load.pid is not None:  # None: on other hosts, it reports its own CPU
            sampler.watch("client", load.pid, exact=False)
        # Before it measures, the load generator opens its idle connections.
        idle_connect_s = cell.idle / IDLE_CONNECTS_PER_S
        timeout = (cell.warmup_s + duration + self.settings.cell_timeout_s + spec.timeout_s
                   + 10 * idle_connect_s)
        started = time.monotonic()

        def end_edge(first: Edge) -> None:
            context.edges = (first, sampler.edge())
            # Now, while the load generator still holds every connection (a
            # forking server's children exit with them).
            context.memory = sampler.memory("server")

        if cell.phase == "load":
            # The neighbour works from a lead into the measured window; the
            # edges are its start and end, when the server is under load.
            firsts: list[Edge] = []

            def at_work() -> None:
                firsts.append(sampler.edge())
                counter.enable()

            context.neighbour_ops_per_s, context.neighbour_paused_ops_per_s = \
                self._neighbour_beside(context, neighbour_load_s(cell),
                                       delay_s=(idle_connect_s + cell.warmup_s
                                                + NEIGHBOUR_LOAD_LEAD_S),
                                       at_work=at_work)
            counter.disable()
            if firsts and load.wait(0.0) is None:
                end_edge(firsts[0])
        watched = None
        if cell.phase != "load":
            watched = watch_load(cell, sampler, load, started, [
                (duration * fraction, action)
                for fraction, action in ((SYSCALL_WINDOW[0], counter.enable),
                                         (SYSCALL_WINDOW[1], counter.disable))])
        counter.disable()
        result = load.result(timeout)
        window = None
        if watched is not None and result.report is not None:
            picked = watched.pick(result.report, local=load.pid is not None)
            context.edges, context.edges_note = picked.edges, picked.note
            context.window_edges, window = picked.inside, picked.window
            if picked.memory is not None:
                context.memory = picked.memory
        if context.edges is None and context.edges_note is None:
            context.edges_note = ("the load generator ran too briefly for two readings "
                                  "of the server")
        sampler.edge()
        context.syscalls = counter.stop()
        context.syscall_counter = None
        if window is not None:  # a counter on another host gives no counted_s to judge
            context.syscalls = context.syscalls.inside(window, counter.counted_s)
        if result.returncode is None:
            raise CellFailed(f"the load generator did not finish within {timeout:.0f} s"
                             f"{self._stderr_note(server)}")
        if result.report is None:
            raise CellFailed(f"the load generator exited with code {result.returncode} and "
                             f"wrote no report: {tail(result.stderr)}"
                             f"{self._stderr_note(server)}")
        context.report = result.report
        tolerated = RUN_SCENARIOS[cell.scenario].tolerated_errors(cell)
        errors = {kind for kind, count in result.report.errors.items()
                  if count and kind != "total"}
        if tolerated and errors <= tolerated:
            # What went unanswered is the cell's figure (the scenario's annotate reads
            # it), and a server that died of its clients' leaving, a note; a run the
            # load generator called off ("starved: ...") fails with that first.
            exit_note = None
            if (code := server.poll()) is not None:
                exit_note = (f"the server exited with code {code} once the load generator "
                             f"had left{self._stderr_note(server)}")
            if result.report.failure:
                raise CellFailed(f"{result.report.failure}; the load generator reported "
                                 f"{m.error_summary(result.report)}"
                                 + (f"; {exit_note}" if exit_note else ""))
            context.server_exit = exit_note
            return
        self._check_server(server)
        # "starved: N of M connections unanswered after T s", or a worker's crash.
        failure = result.report.failure
        if failure or not result.report.ok or result.report.error_count:
            assert cell.model is not None
            reported = m.error_summary(result.report)
            raise CellFailed(scale.starvation(get_model(cell.model), cell, reported)
                             or (f"{failure}; " if failure else "")
                             + f"the load generator reported {reported}"
                             f"{self._stderr_note(server)}")
        if result.returncode != 0:
            raise CellFailed(f"the load generator exited with code {result.returncode}: "
                             f"{tail(result.stderr)}")
        connected = result.report.client.connected
        if member is not None and connected < cell.connections:
            raise CellFailed(f"{cell.connections - connected} of {cell.connections} connections "
                             "were lost in an earlier round of this load generator")

    def _neighbour(self, context: CellContext, duration_s: float, delay_s: float = 0.0) -> float:
        job = self.launcher.start_neighbour(duration_s, delay_s)
        assert context.sampler is not None
        context.sampler.watch("neighbour", job.pid, exact=False)
        try:
            report = job.report(delay_s + duration_s + LOAD_GRACE_S)
            context.neighbour_cpu_s = report.get("cpu_s")
            return float(report["ops_per_s"])
        except RuntimeError as exc:
            raise CellFailed(str(exc)) from None
        finally:
            job.stop()

    def _neighbour_beside(self, context: CellContext, duration_s: float, delay_s: float = 0.0,
                          at_work: Callable[[], None] | None = None) -> tuple[float, float]:
        """The neighbour's rate beside the server, and with the server stopped.

        The server is stopped (SIGSTOP) and resumed in alternate slices while
        the neighbour works; its operations in the two kinds of slice give a
        paired comparison, in which the load others put on a shared machine
        cancels out instead of landing on one side. The same beside an idle
        server and one under load: there the load generator keeps sending
        while the server is stopped, so that cell's latency includes the
        pauses (flag ``server_paused``), and its ratio is the figure to cite.
        The neighbour starts working ``delay_s`` after it is started, when
        ``at_work`` is called once.
        """
        server, sampler = context.server, context.sampler
        assert server is not None and sampler is not None
        job = self.launcher.start_neighbour(duration_s, delay_s)
        sampler.watch("neighbour", job.pid, exact=False)
        paused: list[tuple[float, float]] = []
        running: list[tuple[float, float]] = []
        began = time.monotonic()
        deadline = began + delay_s + duration_s + LOAD_GRACE_S
        try:
            while job.running() and time.monotonic() < deadline:
                if at_work is not None and time.monotonic() >= began + delay_s:
                    at_work()
                    at_work = None
                for slices, toggle in ((paused, server.pause), (running, server.resume)):
                    asked = time.monotonic()
                    toggle()
                    start = time.monotonic()
                    # A launcher on other hosts takes a round trip to stop or
                    # resume: slices longer than that keep enough whole buckets.
                    time.sleep(max(NEIGHBOUR_SLICE_S, 2 * (start - asked)))
                    slices.append((start, time.monotonic()))
            server.resume()
            report = job.report(LOAD_GRACE_S)
            context.neighbour_cpu_s = report.get("cpu_s")
        except RuntimeError as exc:
            raise CellFailed(str(exc)) from None
        finally:
            server.resume()
            job.stop()
        return slice_rate(report, running), slice_rate(report, paused)

    def _peak(self, cell: Cell) -> float:
        """The model's highest closed-loop throughput at this payload, in this repetition.

        A round added for precision may have no closed-loop cells of its own:
        there the median of the peaks of the rounds that have them stands in.
        """
        by_round: dict[int, float] = {}
        for c in self.store.cells:
            if (c.scenario == "closed" and c.ok and c.model == cell.model
                    and c.params == cell.params and c.size_bytes == cell.size_bytes
                    and c.metrics.throughput_rps):
                by_round[c.repetition] = max(by_round.get(c.repetition, 0.0),
                                             c.metrics.throughput_rps)
        if cell.repetition in by_round:
            return by_round[cell.repetition]
        peaks = sorted(by_round.values())
        if peaks:
            return float(statistics.median(peaks))
        if not peaks:
            raise CellFailed(f"no successful closed-loop cell of {cell.model} at "
                             f"{cell.size_bytes} B to take {cell.peak_fraction:g} of its peak")
        return max(peaks)

    def _check_server(self, server: RunningServer | None) -> None:
        if server is not None and (code := server.poll()) is not None:
            raise CellFailed(f"the server exited with code {code} during the cell"
                             f"{self._stderr_note(server)}")

    @staticmethod
    def _stderr_note(server: RunningServer | None) -> str:
        text = tail(server.stderr_text()) if server is not None else ""
        return f"; server stderr: {text}" if text else ""

    def _record(self, context: CellContext, started: str, reason: str | None) -> CellRecord:
        cell = context.cell
        report = context.report
        placement = self.launcher.placement
        record = CellRecord(
            key=cell.key, scenario=cell.scenario, model=cell.model,
            params=cell.params, mode=cell.mode, connections=cell.connections,
            size_bytes=cell.size_bytes, rate_rps=context.rate_rps,
            peak_fraction=cell.peak_fraction, phase=cell.phase,
            idle_connections=cell.idle, repetition=cell.repetition,
            requests_per_connection=cell.requests_per_connection,
            status=STATUS_FAILED if reason else STATUS_OK, reason=reason,
            placement=placement.as_dict(),
            started=started, duration_s=round(time.monotonic() - context.origin_s, 3),
            histogram=report.histogram if report is not None else None,
            histogram_uncorrected=report.histogram_uncorrected if report is not None else None,
            load=report.without_histograms() if report is not None else None,
        )
        metrics = record.metrics
        sampler = context.sampler
        if sampler is not None and "server" in sampler.series:
            record.cpu_accounting = sampler.accounting("server")
            server = context.server
            if server is not None and server.cgroup_note:
                record.notes["cpu_accounting"] = server.cgroup_note
            edges = context.edges
            server_stats = m.server_metrics(record, sampler.series["server"], edges)
            if edges is None and context.edges_note:
                record.notes[m.CPU_UNMEASURED] = context.edges_note
            m.memory_metrics(metrics, context.memory, context.baseline_memory,
                             cell.held_connections, record.notes)
            if (metrics.kernel_bytes_per_connection is not None and cell.mode != "idle"
                    and cell.model is not None and get_model(cell.model).spins):
                record.notes[m.KERNEL_MEMORY] = (
                    f"read under load, when {cell.model} could not be stopped to settle it: "
                    f"the sockets its failed accept() calls allocate count until the kernel "
                    f"frees them (megabytes), so it reads high over few connections")
            if report is not None:
                m.load_metrics(metrics, report, server_stats)
                record.flags += [f for f in m.load_flags(report) if f not in record.flags]
            m.client_metric_from_edges(metrics, edges)
            if cell.phase is None:  # the neighbour's cells stop the server on purpose
                check_steady(record, context.window_edges)
            record.samples = self._samples(context)
        if sampler is not None:
            m.machine_metrics(record, context.edges, placement.server_cpus,
                              placement.client_cpus, ["server", "neighbour"],
                              reported_cpu_s={"neighbour": context.neighbour_cpu_s})
            if sampler.thread_cpu_percent is not None:
                metrics.sampler_cpu_percent = round(sampler.thread_cpu_percent, 3)
        if context.neighbour_ops_per_s is not None:
            metrics.neighbour_ops_per_s = round(context.neighbour_ops_per_s, 1)
            paused = context.neighbour_paused_ops_per_s
            if paused:
                metrics.neighbour_paused_ops_per_s = round(paused, 1)
                metrics.neighbour_ratio = round(context.neighbour_ops_per_s / paused, 4)
            elif cell.phase == "solo":
                metrics.neighbour_ratio = 1.0
        server_report(record, context.server)
        if context.syscalls is not None:
            record.syscalls = context.syscalls.per_request(metrics.throughput_rps)
            metrics.syscalls_per_request = record.syscalls["per_request"]
        if context.probed is not None:
            context.probed(record)
        if context.server_exit is not None:
            record.notes["server_exit"] = context.server_exit
        RUN_SCENARIOS[cell.scenario].annotate(record)
        return plausibility.judge(record)

    @staticmethod
    def _samples(context: CellContext) -> dict[str, Any]:
        sampler = context.sampler
        assert sampler is not None
        samples = sampler.time_series("server", context.origin_s)
        samples["system_t_s"] = [round(t - context.origin_s, 3) for t in sampler.system_t_s]
        samples["system_cpu_percent"] = sampler.system_cpu_percent
        client = sampler.time_series("client", context.origin_s)
        if client:
            samples["client_t_s"] = client["t_s"]
            samples["client_cpu_percent"] = client["cpu_percent"]
        return samples


def failure_reason(exc: Exception) -> str:
    """Why a cell (or a model's rounds) failed, from what was raised."""
    if isinstance(exc, CellFailed):
        return str(exc)
    if isinstance(exc, ServerStartError):
        return f"server did not start: {exc}"
    return f"{type(exc).__name__}: {exc}"


def server_report(record: CellRecord, server: RunningServer | None) -> None:
    """What the server said about itself onto ``record``: its work calibration, and once
    it has stopped, its workers' accepts and the busiest one's share."""
    if server is None:
        return
    record.server = server.reported()
    share = (record.server or {}).get("busiest_worker_share")
    if share is not None:
        record.metrics.busiest_worker_share = round(share, 4)


@dataclass
class Member:
    """One model of a point measured in place (Runner.in_place): its server and load
    generator, up from its first round to its last, paused in between."""

    cell: Cell
    # The rounds its load generator measures at most.
    rounds: int
    server: RunningServer | None = None
    load: LoadRounds | None = None
    spec: LoadSpec | None = None
    baseline_memory: Memory | None = None
    rate_rps: float | None = None
    loadgen_timeout_s: float | None = None
    # The counter of the one round that counts system calls, started with the server.
    counter: SyscallCounter | None = None
    counted: int | None = None
    failure: str | None = None
    records: list[CellRecord] = field(default_factory=list)
    paused: bool = False

    def counter_for(self, cell: Cell, launcher: Launcher) -> SyscallCounter:
        """The counter of ``cell``'s round: the member's own in the round it counts, else
        one that says why it does not (the scenario's reason)."""
        assert self.server is not None
        if cell.repetition == self.counted and self.counter is not None:
            counter, self.counter = self.counter, None
            return counter
        counter = RUN_SCENARIOS[cell.scenario].syscall_counter(launcher, self.server.pid, cell)
        if not isinstance(counter, UnavailableCounter):
            counter = UnavailableCounter(self.server.pid, SYSCALLS_FROM_START)
        return counter

    def pids(self) -> list[int]:
        return [process.pid for process in (self.server, self.load) if process is not None]

    def resume(self) -> None:
        if self.server is not None and self.paused:
            self.server.resume()
            self.paused = False

    def pause(self) -> None:
        if self.server is not None and not self.paused and self.server.poll() is None:
            self.server.pause()
            self.paused = True

    def release(self) -> None:
        """Tell the load generator there are no more rounds (it closes and exits);
        :meth:`stop` then waits for it and stops the server. The server stays paused
        until it is stopped: resuming every kept server at once at the end of a run
        (thousands of threads, spinning models) drove the load average to 5,000."""
        if self.load is not None:
            self.load.release()

    def stop(self) -> None:
        if self.counter is not None:
            self.counter.stop()
            self.counter = None
        if self.load is not None:
            self.load.finish()
        if self.server is not None:
            self.server.stop()


def check_steady(record: CellRecord, window: list[Edge]) -> None:
    """Flag the cell ``unsteady`` when its server's CPU stepped or drifted in the window."""
    readings = [r for edge in window if (r := edge.trees.get("server")) is not None]
    if len(readings) < 2:
        return
    start, end = readings[0].t_s, readings[-1].t_s
    step = steady.find_step(steady.cpu_slices(readings, start, end))
    if step is not None:
        record.flag(steady.UNSTEADY, steady.describe(step, end - start))


def slice_rate(report: dict[str, Any], slices: list[tuple[float, float]]) -> float:
    """The neighbour's median rate (operations per second) over ``slices``.

    Each slice's rate comes from the neighbour's buckets that lie wholly
    inside it; a bucket must start a little after its slice does, because the
    signal that stopped or resumed the server takes effect within a scheduler
    tick. The median, not the mean, so a burst of other work on a shared
    machine that hits a few slices does not decide the result.
    """
    start, width = report["start_s"], report["bucket_s"]
    rates, buckets = [], 0
    for a, b in slices:
        inside = [ops for index, ops in enumerate(report["bucket_ops"])
                  if a + SLICE_MARGIN_S <= start + index * width
                  and start + (index + 1) * width <= b]
        if inside:
            rates.append(sum(inside) / (len(inside) * width))
            buckets += len(inside)
    if buckets < MIN_SLICE_BUCKETS:
        raise CellFailed(f"the neighbour job ran in too few whole slices ({buckets} buckets)")
    return statistics.median(rates)


def _peer_closed(sock: IdleSocket) -> bool:
    """True if the server closed (or reset) this idle connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


