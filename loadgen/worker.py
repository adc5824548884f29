"""One load worker: a single-threaded epoll loop driving its share of the connections.

The hot loops are written for speed (100,000 requests/s on one core from
Python): the payload and the expected response are built once, a response
that arrives in one piece is checked with a single ``bytes`` comparison,
latencies are counted in a dict (see ``loadgen.histograms``), and attribute
look-ups are hoisted into locals. Only the rare paths (partial sends and
reads, errors, time-outs) leave the loop body.

Per connection at most one request is on the wire. In open loop a request
that falls due while its connection still waits for the previous response
queues on that connection and goes out as soon as the response is complete;
its latency still counts from its intended send time (coordinated omission
corrected, as wrk2 does), and the uncorrected latency from its actual send.
"""

from __future__ import annotations

import dataclasses
import errno
import heapq
import json
import os
import random
import resource
import select
import socket
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from loadgen.histograms import histogram_from_counts

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
# Time-outs are checked this often, not per request; a request times out at most
# this much later than --timeout says.
SWEEP_INTERVAL_NS = 20_000_000
NS_PER_US = 1000
ERROR_KINDS = ("mismatch", "connect", "reset", "timeout", "short")


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's share of a run; picklable, so it can cross to a worker process."""

    worker_index: int
    family: int
    sockaddr: tuple
    target_text: str
    connection_indices: tuple[int, ...]  # global indices, they stagger open-loop schedules
    mode: str
    size_bytes: int
    expect: str
    rate_rps: float | None  # this worker's share of the total rate
    total_rate_rps: float | None
    arrival: str
    timeout_s: float
    warmup_s: float
    duration_s: float
    seed: int


@dataclass
class WorkerResult:
    """What a worker hands back: counters and its latency histograms, encoded."""

    worker_index: int
    connected: int = 0
    requests: int = 0  # completed in the measured window
    unfinished: int = 0  # open loop: meant for the window, still owed when the drain ended
    sent_in_window: int = 0  # requests actually sent during the measured window
    measured_s: float = 0.0
    cpu_s: float = 0.0  # this process's user + system CPU during the measured window
    max_schedule_lag_us: float = 0.0
    histogram: str | None = None
    histogram_uncorrected: str | None = None
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    first_connect_error: str | None = None


def plan_to_json(plan: WorkerPlan) -> str:
    """Plans and results cross to and from worker processes as JSON lines."""
    return json.dumps(dataclasses.asdict(plan))


def plan_from_json(text: str) -> WorkerPlan:
    fields: dict[str, Any] = json.loads(text)
    fields["sockaddr"] = tuple(fields["sockaddr"])
    fields["connection_indices"] = tuple(fields["connection_indices"])
    return WorkerPlan(**fields)


def result_from_json(text: str) -> WorkerResult:
    return WorkerResult(**json.loads(text))


def make_payload(size_bytes: int) -> bytes:
    """Lower-case letters, so an uppercasing server changes every byte it returns."""
    alphabet = string.ascii_lowercase.encode()
    return (alphabet * (size_bytes // len(alphabet) + 1))[:size_bytes]


def raise_fd_limit() -> None:
    """Thousands of connections need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Connection:
    """One client connection and the request it has on the wire."""

    __slots__ = ("busy", "corrupt", "fd", "got", "intended_ns", "out", "queue", "recv", "send",
                 "sent_ns", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.recv = sock.recv
        self.send = sock.send
        self.got = 0  # bytes of the current response received so far
        self.corrupt = False  # a byte of the current response did not match
        self.busy = False  # a request is on the wire
        self.sent_ns = 0  # when the current request was actually sent
        self.intended_ns = 0  # when it was meant to be sent (open loop)
        self.out: memoryview | None = None  # the unsent rest of a partially sent request
        self.queue: deque[int] = deque()  # intended send times waiting for this connection


class Worker:
    """Connects, waits for the common start time, runs the loop, reports."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.payload = make_payload(plan.size_bytes)
        self.expected = self.payload.upper() if plan.expect == "upper" else self.payload
        self.timeout_ns = int(plan.timeout_s * 1e9)
        self.epoll = select.epoll()
        self.by_fd: dict[int, Connection] = {}
        self.connections: list[Connection | None] = []
        self.result = WorkerResult(worker_index=plan.worker_index)
        self.errors = self.result.errors

    # -- connections -------------------------------------------------------

    def connect(self) -> int:
        """Open every connection (non-blocking, all at once); return how many succeeded."""
        raise_fd_limit()
        plan = self.plan
        pending: dict[int, socket.socket] = {}
        for _ in plan.connection_indices:
            sock = socket.socket(plan.family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(plan.sockaddr)
            if code not in (0, errno.EINPROGRESS):
                self._connect_failed(sock, code)
                continue
            pending[sock.fileno()] = sock
            self.epoll.register(sock.fileno(), EPOLLOUT)
        slots: dict[int, int] = {}
        for slot, fd in enumerate(pending):
            slots[fd] = slot
        self.connections = [None] * len(plan.connection_indices)
        deadline = time.monotonic() + plan.timeout_s
        while pending and time.monotonic() < deadline:
            for fd, _ in self.epoll.poll(max(deadline - time.monotonic(), 0.001)):
                sock = pending.pop(fd)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    self.epoll.unregister(fd)
                    self._connect_failed(sock, code)
                    continue
                self.epoll.modify(fd, EPOLLIN)
                connection = Connection(sock)
                self.by_fd[fd] = connection
                self.connections[slots[fd]] = connection
        for fd, sock in pending.items():
            self.epoll.unregister(fd)
            self._connect_failed(sock, errno.ETIMEDOUT)
        self.result.connected = len(self.by_fd)
        return self.result.connected

    def _connect_failed(self, sock: socket.socket, code: int) -> None:
        sock.close()
        self.errors["connect"] += 1
        if self.result.first_connect_error is None:
            self.result.first_connect_error = os.strerror(code)

    def _fail(self, connection: Connection, kind: str) -> None:
        """Count an error and drop the connection: its stream can no longer be trusted."""
        self.errors[kind] += 1
        self._close(connection)

    def _close(self, connection: Connection) -> None:
        if self.by_fd.pop(connection.fd, None) is None:
            return
        self.epoll.unregister(connection.fd)
        connection.sock.close()
        connection.busy = False

    def close(self) -> None:
        for connection in list(self.by_fd.values()):
            self._close(connection)
        self.epoll.close()

    # -- rare paths ------------------------------------------------------------

    def _send_rest(self, connection: Connection, sent: int) -> None:
        """Keep the unsent rest of a request and wait for the socket to take it."""
        connection.out = memoryview(self.payload)[sent:]
        self.epoll.modify(connection.fd, EPOLLIN | EPOLLOUT)

    def _flush(self, connection: Connection) -> None:
        out = connection.out
        if out is None:
            return
        try:
            sent = connection.send(out)
        except BlockingIOError:
            return
        except OSError:
            self._fail(connection, "reset")
            return
        if sent < len(out):
            connection.out = out[sent:]
            return
        connection.out = None
        self.epoll.modify(connection.fd, EPOLLIN)

    def _start_request(self, connection: Connection, now: int) -> None:
        """Send the payload on an idle connection (the loops inline the common case)."""
        connection.busy = True
        connection.sent_ns = now
        try:
            sent = connection.send(self.payload)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._fail(connection, "reset")
            return
        if sent != len(self.payload):
            self._send_rest(connection, sent)

    def _partial(self, connection: Connection, data: bytes) -> bool:
        """Check a piece of a response; True once the response is complete."""
        got = connection.got
        if data != self.expected[got:got + len(data)]:
            connection.corrupt = True
        got += len(data)
        if got < len(self.expected):
            connection.got = got
            return False
        connection.got = 0
        return True

    def _lost(self, connection: Connection, exc: OSError | None) -> None:
        """The peer closed or reset: 'short' if a response was owed, else 'reset'."""
        if exc is None and (connection.busy or connection.got):
            self._fail(connection, "short")
        else:
            self._fail(connection, "reset")

    def _unexpected(self, connection: Connection) -> None:
        """Bytes nobody asked for: the server sent more than it was owed."""
        self._fail(connection, "mismatch")

    # -- the run ---------------------------------------------------------------

    def run(self, start_ns: int) -> WorkerResult:
        """Load from ``start_ns`` (a CLOCK_MONOTONIC time shared by all workers) to the end."""
        plan = self.plan
        measure_ns = start_ns + int(plan.warmup_s * 1e9)
        end_ns = measure_ns + int(plan.duration_s * 1e9)
        delay = start_ns - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        if plan.mode == "closed":
            self._run_closed(measure_ns, end_ns)
        else:
            self._run_open(start_ns, measure_ns, end_ns)
        self.result.measured_s = (end_ns - measure_ns) / 1e9
        return self.result

    @property
    def process(self) -> psutil.Process:
        return psutil.Process()

    def _run_closed(self, measure_ns: int, end_ns: int) -> None:
        now = time.monotonic_ns()
        for connection in list(self.by_fd.values()):
            self._start_request(connection, now)
        process = self.process
        self._loop_closed(measure_ns, None)
        cpu_start = sum(process.cpu_times()[:2])
        counts: dict[int, int] = {}
        self.result.requests = self._loop_closed(end_ns, counts)
        self.result.cpu_s = sum(process.cpu_times()[:2]) - cpu_start
        self._drain_closed(end_ns + self.timeout_ns)
        self.result.sent_in_window = self.result.requests
        self.result.histogram = histogram_from_counts(counts).encode().decode("ascii")

    def _loop_closed(self, until_ns: int, counts: dict[int, int] | None) -> int:
        """Closed loop until ``until_ns``; latencies go into ``counts`` unless it is None."""
        poll = self.epoll.poll
        by_fd = self.by_fd
        monotonic_ns = time.monotonic_ns
        expected = self.expected
        payload = self.payload
        size = len(payload)
        recording = counts is not None
        count_get = counts.get if counts is not None else None
        completed = 0
        mismatches = 0
        now = monotonic_ns()
        next_sweep = now + SWEEP_INTERVAL_NS
        while now < until_ns:
            if not by_fd:
                time.sleep((until_ns - now) / 1e9)
                break
            for fd, mask in poll((min(until_ns, next_sweep) - now) / 1e9):
                connection = by_fd.get(fd)
                if connection is None:
                    continue
                if mask & EPOLLOUT:
                    self._flush(connection)
                    if not mask & ~EPOLLOUT or fd not in by_fd:
                        continue
                try:
                    data = connection.recv(size - connection.got)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                received = len(data)
                if received == size:
                    if data != expected:
                        mismatches += 1
                elif received == 0:
                    self._lost(connection, None)
                    continue
                elif self._partial(connection, data):
                    if connection.corrupt:
                        connection.corrupt = False
                        mismatches += 1
                else:
                    continue
                now = monotonic_ns()
                if recording:
                    latency_us = (now - connection.sent_ns) // NS_PER_US
                    counts[latency_us] = count_get(latency_us, 0) + 1  # type: ignore[index,misc]
                    completed += 1
                connection.sent_ns = now
                try:
                    sent = connection.send(payload)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                if sent != size:
                    self._send_rest(connection, sent)
            now = monotonic_ns()
            if now >= next_sweep:
                self._sweep_timeouts(now)
                next_sweep = now + SWEEP_INTERVAL_NS
        self.errors["mismatch"] += mismatches
        return completed

    def _drain_closed(self, deadline_ns: int) -> None:
        """Send nothing more; check the responses still owed, waiting up to ``deadline_ns``.

        Not measured, but verified: a server that corrupts or stalls at the
        very end of a run is caught too. What is still owed at the deadline
        counts as a time-out.
        """
        by_fd = self.by_fd
        now = time.monotonic_ns()
        while now < deadline_ns and any(connection.busy for connection in by_fd.values()):
            for fd, mask in self.epoll.poll((deadline_ns - now) / 1e9):
                connection = by_fd.get(fd)
                if connection is None:
                    continue
                if mask & EPOLLOUT:
                    self._flush(connection)
                    if not mask & ~EPOLLOUT or fd not in by_fd:
                        continue
                try:
                    data = connection.recv(len(self.expected) - connection.got)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                if not data:
                    self._lost(connection, None)
                elif not connection.busy:
                    self._unexpected(connection)
                elif self._partial(connection, data):
                    connection.busy = False
                    if connection.corrupt:
                        connection.corrupt = False
                        self.errors["mismatch"] += 1
            now = time.monotonic_ns()
        for connection in list(by_fd.values()):
            if connection.busy:
                self.errors["timeout"] += 1
                self._close(connection)

    def _sweep_timeouts(self, now: int) -> int:
        """Drop connections whose request has waited longer than --timeout.

        A request queued behind a timed-out one is lost with it and counts as
        a time-out too. Returns how many requests timed out.
        """
        timed_out = 0
        for connection in list(self.by_fd.values()):
            if connection.busy and now - connection.sent_ns > self.timeout_ns:
                timed_out += 1 + len(connection.queue)
                connection.queue.clear()
                self._close(connection)
        self.errors["timeout"] += timed_out
        return timed_out

    def _schedule(self, start_ns: int) -> tuple[list[tuple[int, int]], Callable[[int], int]]:
        """The first intended send time of each connection, and a 'next after' function.

        Uniform: connection g of C sends every C/R seconds, offset by g/R, so
        the total is a steady R. Poisson: exponential gaps at R/C per connection,
        whose superposition is a Poisson stream at R.
        """
        plan = self.plan
        total_rate = plan.total_rate_rps or 0.0
        total_connections_rate = plan.rate_rps or 0.0
        per_connection_rate = total_connections_rate / max(len(plan.connection_indices), 1)
        heap: list[tuple[int, int]] = []
        if plan.arrival == "uniform":
            interval_ns = round(1e9 / per_connection_rate)
            for slot, index in enumerate(plan.connection_indices):
                heap.append((start_ns + round(index * 1e9 / total_rate), slot))

            def next_after(due_ns: int) -> int:
                return due_ns + interval_ns
        else:
            rng = random.Random(plan.seed * 1_000_003 + plan.worker_index)
            expovariate = rng.expovariate
            for slot in range(len(plan.connection_indices)):
                heap.append((start_ns + int(expovariate(per_connection_rate) * 1e9), slot))

            def next_after(due_ns: int) -> int:
                return due_ns + int(expovariate(per_connection_rate) * 1e9)
        heapq.heapify(heap)
        return heap, next_after

    def _run_open(self, start_ns: int, measure_ns: int, end_ns: int) -> None:
        """Open loop: fire requests at their intended times until ``end_ns``, then drain.

        ``requests`` (and so throughput) counts responses that arrived in the
        window. The histograms hold every request *meant* for the window: the
        ones queued behind a slow server are waited for up to --timeout after
        the window, so the worst latencies are not cut off at its end.
        """
        heap, next_after = self._schedule(start_ns)
        connections = self.connections
        poll = self.epoll.poll
        epoll_fd = self.epoll.fileno()
        wait_readable = select.select
        by_fd = self.by_fd
        monotonic_ns = time.monotonic_ns
        heappop = heapq.heappop
        heapreplace = heapq.heapreplace
        expected = self.expected
        payload = self.payload
        size = len(payload)
        corrected: dict[int, int] = {}
        uncorrected: dict[int, int] = {}
        corrected_get = corrected.get
        uncorrected_get = uncorrected.get
        completed = 0
        sent_in_window = 0
        mismatches = 0
        max_lag_ns = 0
        process = self.process
        cpu_start: float | None = None
        cpu_end: float | None = None
        drain_deadline = end_ns + self.timeout_ns
        result = self.result
        now = monotonic_ns()
        next_sweep = now + SWEEP_INTERVAL_NS
        while True:
            # Fire every request that is due.
            while heap and heap[0][0] <= now:
                due, slot = heap[0]
                if due >= end_ns:
                    heap.clear()
                    break
                connection = connections[slot]
                if connection is None or connection.fd not in by_fd:
                    heappop(heap)
                    continue
                if due >= measure_ns and now - due > max_lag_ns:
                    max_lag_ns = now - due
                if connection.busy:
                    connection.queue.append(due)
                else:
                    if measure_ns <= now < end_ns:
                        sent_in_window += 1
                    connection.busy = True
                    connection.intended_ns = due
                    connection.sent_ns = now
                    try:
                        sent = connection.send(payload)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        self._lost(connection, exc)
                        heappop(heap)
                        continue
                    if sent != size:
                        self._send_rest(connection, sent)
                heapreplace(heap, (next_after(due), slot))
            if cpu_start is None and now >= measure_ns:
                cpu_start = sum(process.cpu_times()[:2])
            if now >= end_ns:
                if cpu_end is None:
                    cpu_end = sum(process.cpu_times()[:2])
                owed = any(connection.busy for connection in by_fd.values())
                if not owed or now >= drain_deadline:
                    break
            # Wait for a response or the next due time. epoll_wait rounds its
            # time-out to milliseconds, too coarse for a schedule; select() on
            # the epoll descriptor waits with microsecond precision.
            wake_ns = min(heap[0][0] if heap else drain_deadline, next_sweep, drain_deadline)
            events = poll(0)
            if not events and wake_ns > now:
                wait_readable((epoll_fd,), (), (), (wake_ns - now) / 1e9)
                events = poll(0)
            for fd, mask in events:
                connection = by_fd.get(fd)
                if connection is None:
                    continue
                if mask & EPOLLOUT:
                    self._flush(connection)
                    if not mask & ~EPOLLOUT or fd not in by_fd:
                        continue
                try:
                    data = connection.recv(size - connection.got)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                received = len(data)
                if not connection.busy:
                    if received:
                        self._unexpected(connection)
                    else:
                        self._lost(connection, None)
                    continue
                if received == size:
                    if data != expected:
                        mismatches += 1
                elif received == 0:
                    self._lost(connection, None)
                    continue
                elif self._partial(connection, data):
                    if connection.corrupt:
                        connection.corrupt = False
                        mismatches += 1
                else:
                    continue
                now = monotonic_ns()
                intended = connection.intended_ns
                if measure_ns <= intended < end_ns:
                    latency_us = (now - intended) // NS_PER_US
                    corrected[latency_us] = corrected_get(latency_us, 0) + 1
                    latency_us = (now - connection.sent_ns) // NS_PER_US
                    uncorrected[latency_us] = uncorrected_get(latency_us, 0) + 1
                if measure_ns <= now < end_ns:
                    completed += 1
                    if connection.queue:
                        sent_in_window += 1
                if connection.queue:
                    # The next request has waited for this response; send it now.
                    connection.intended_ns = connection.queue.popleft()
                    connection.sent_ns = now
                    try:
                        sent = connection.send(payload)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        self._lost(connection, exc)
                        continue
                    if sent != size:
                        self._send_rest(connection, sent)
                else:
                    connection.busy = False
            now = monotonic_ns()
            if now >= next_sweep:
                self._sweep_timeouts(now)
                next_sweep = now + SWEEP_INTERVAL_NS
        # Still owed after the drain: each request on the wire has waited less
        # than --timeout (the sweep catches the rest), so it is no error, and
        # neither is a request still queued: the server is merely behind. They
        # are counted, and missing from the histograms.
        for connection in list(by_fd.values()):
            if connection.busy:
                result.unfinished += 1 + len(connection.queue)
                connection.queue.clear()
                self._close(connection)
        self.errors["mismatch"] += mismatches
        result.requests = completed
        result.sent_in_window = sent_in_window
        result.max_schedule_lag_us = max_lag_ns / NS_PER_US
        end_cpu = cpu_end if cpu_end is not None else sum(process.cpu_times()[:2])
        result.cpu_s = end_cpu - (cpu_start if cpu_start is not None else end_cpu)
        result.histogram = histogram_from_counts(corrected).encode().decode("ascii")
        result.histogram_uncorrected = histogram_from_counts(uncorrected).encode().decode("ascii")


def run_worker(plan: WorkerPlan, await_start: Callable[[int, str | None], int | None]
               ) -> WorkerResult:
    """Connect, report the count through ``await_start``, and run from the time it returns.

    ``await_start(connected, first_error)`` returns the common start time, or
    None when the run is off (no worker could connect).
    """
    worker = Worker(plan)
    try:
        connected = worker.connect()
        start_ns = await_start(connected, worker.result.first_connect_error)
        if start_ns is None:
            return worker.result
        return worker.run(start_ns)
    finally:
        worker.close()
