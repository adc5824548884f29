"""One load worker: a single-threaded epoll loop driving its share of the connections.

The hot loops are written for speed (100,000 requests/s on one core from
Python): the payload and the expected response are built once, a response
that arrives in one piece is checked with a single ``bytes`` comparison,
latencies are counted in a dict (see ``iobench.loadgen.histograms``), and attribute
look-ups are hoisted into locals. Only the rare paths (partial sends and
reads, errors, time-outs) leave the loop body.

Per connection at most one request is on the wire. In open loop a request
that falls due while its connection still waits for the previous response
queues on that connection and goes out as soon as the response is complete;
its latency still counts from its intended send time (coordinated omission
corrected, as wrk2 does), and the uncorrected latency from its actual send.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import string
import time
from collections import deque

import psutil

from iobench.common.processes import raise_fd_limit
from iobench.loadgen.churn import Churn, error_name
from iobench.loadgen.histograms import histogram_from_counts
from iobench.loadgen.idle import IdleConnections
from iobench.loadgen.plan import WorkerPlan, WorkerResult

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
# Time-outs are checked this often, not per request; a request times out at most
# this much later than --timeout says.
SWEEP_INTERVAL_NS = 20_000_000
NS_PER_US = 1000
# Descriptors left free when connections exhaust the limit (see Worker.connect).
FD_RESERVE = 8
# The slowest a server may accept connections (forking a process for each)
# before the first exchange on the active ones gives up (see _first_exchange).
IDLE_ACCEPTS_PER_S = 2000


def make_payload(size_bytes: int) -> bytes:
    """Lower-case letters, so an uppercasing server changes every byte it returns."""
    alphabet = string.ascii_lowercase.encode()
    return (alphabet * (size_bytes // len(alphabet) + 1))[:size_bytes]


class Connection:
    """One client connection and the request it has on the wire."""

    __slots__ = ("busy", "connect_ns", "corrupt", "dead", "fd", "got", "intended_ns", "left",
                 "out", "queue", "recv", "send", "sent_ns", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.attach(sock)
        self.busy = False  # a request is on the wire (churn: or the next connection is not up)
        self.sent_ns = 0  # when the current request was actually sent
        self.intended_ns = 0  # when it was meant to be sent (open loop)
        self.queue: deque[int] = deque()  # intended send times waiting for this connection
        self.dead = False  # closed for good: an error, a time-out, the end
        self.left = 0  # churn: requests before this connection is closed and another opened
        self.connect_ns = 0  # churn: when its connect began

    def attach(self, sock: socket.socket) -> None:
        """Take ``sock`` as this slot's connection (churn: the next one), fresh."""
        self.sock = sock
        self.fd = sock.fileno()
        self.recv = sock.recv
        self.send = sock.send
        self.got = 0  # bytes of the current response received so far
        self.corrupt = False  # a byte of the current response did not match
        self.out: memoryview | None = None  # the unsent rest of a partially sent request


class Worker:
    """Connects, waits for the common start time, runs the loop, reports.

    Holds the connections and the rare paths; subclasses add the loop.
    """

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
        self.idle = IdleConnections(plan, self._connect_failed)
        self.churn = (Churn(self, plan.requests_per_connection)
                      if plan.requests_per_connection else None)

    # -- connections -------------------------------------------------------

    def connect(self) -> int:
        """Open the idle connections, then the active ones; return how many active are up.

        Idle first: they are the crowd the active connections arrive into, and
        a server that hands connections to a fixed pool in arrival order must
        meet them first, as it would in service.
        """
        plan = self.plan
        raise_fd_limit(len(plan.connection_indices) + plan.idle_count + 2 * FD_RESERVE)
        if plan.idle_count:
            self.result.idle_connected = self.idle.connect()
        pending: dict[int, socket.socket] = {}
        for created, _ in enumerate(plan.connection_indices):
            try:
                sock = socket.socket(plan.family, socket.SOCK_STREAM)
            except OSError as exc:  # out of descriptors (ulimit -n) or memory
                # Give a few back: reading our own CPU time and writing the
                # results need descriptors too.
                freed = min(FD_RESERVE, len(pending))
                for _ in range(freed):
                    fd, sock = pending.popitem()
                    self.epoll.unregister(fd)
                    self._connect_failed(sock, exc.errno or errno.EMFILE)
                self.idle.give_back(FD_RESERVE - freed)
                for _ in range(len(plan.connection_indices) - created):
                    self._connect_failed(None, exc.errno or errno.EMFILE)
                break
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
                # Not watched for input until every connection is up: a server
                # that closes it at once must not wake this loop again and again.
                self.epoll.modify(fd, 0)
                connection = Connection(sock)
                connection.left = plan.requests_per_connection or 0
                self.by_fd[fd] = connection
                self.connections[slots[fd]] = connection
        for fd, sock in pending.items():
            self.epoll.unregister(fd)
            self._connect_failed(sock, errno.ETIMEDOUT)
        for fd in self.by_fd:
            self.epoll.modify(fd, EPOLLIN)
        self.result.connected = len(self.by_fd)
        if (plan.idle_count or plan.mode == "closed") and self.by_fd:
            self._first_exchange()
        return self.result.connected

    def first_exchange_limit_s(self) -> float:
        """How long the first exchange waits for every answer: --timeout, and time to accept.

        A server that forks a process per connection takes about half a
        millisecond for each (IDLE_ACCEPTS_PER_S), idle ones included.
        """
        plan = self.plan
        accepts = plan.idle_total + len(plan.connection_indices)
        return plan.timeout_s + accepts / IDLE_ACCEPTS_PER_S

    def _first_exchange(self) -> None:
        """One request per active connection, before the start: nobody starts starved.

        In a closed loop, and beside idle connections in both loops. A server
        accepts in arrival order, so it answers an active connection only
        once it has accepted every connection before it; a server that forks
        or starts a thread per connection may take seconds to get there, long
        after the kernel completed the handshakes. The measured window starts
        after every connection has been answered once, on a server in its
        steady state. A connection still unanswered when the first exchange
        gives up (a pool whose workers the idle ones hold, a server that
        serves one client at a time) counts as a time-out and as starved:
        the run is called off (see ``runnable`` in iobench.loadgen.runner).
        """
        now = time.monotonic_ns()
        for connection in list(self.by_fd.values()):
            self._start_request(connection, now)
        limit_s = self.first_exchange_limit_s()
        starved = self._drain(now + int(limit_s * 1e9))
        if starved:
            self.result.starved = starved
            self.result.starved_after_s = round(limit_s, 3)

    def _connect_failed(self, sock: socket.socket | None, code: int) -> None:
        if sock is not None:
            sock.close()
        self.errors["connect"] += 1
        cause = error_name(code)
        self.result.connect_errors[cause] = self.result.connect_errors.get(cause, 0) + 1
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
        connection.dead = True

    def check_idle(self) -> None:
        """Count the idle connections still open at the end; a closed one is an error."""
        still, spoken = self.idle.still_open()
        self.result.idle_open = still
        self.errors["idle_closed"] += self.result.idle_connected - still
        self.errors["mismatch"] += spoken  # nobody asked an idle connection for a byte

    def next_round(self) -> None:
        """Start a fresh result for another window on the same connections (``--rounds``).

        What the connections hold carries over: how many are up (a connection
        lost in an earlier round stays lost, and ``connected`` says so) and the
        idle ones. Churn: slots whose next connection was not up when the last
        window ended are opened again as this one starts.
        """
        old = self.result
        self.result = WorkerResult(worker_index=old.worker_index, idle_connected=old.idle_connected,
                                   connected=sum(1 for c in self.connections
                                                 if c is not None and not c.dead))
        self.errors = self.result.errors
        if self.churn is not None:
            self.churn.connect_counts = {}
            self.churn.recording = None

    def close(self) -> None:
        if self.churn is not None:
            self.churn.close()
        for connection in list(self.by_fd.values()):
            self._close(connection)
        self.idle.close()
        self.epoll.close()

    # -- rare paths ------------------------------------------------------------

    def _drain(self, deadline_ns: int) -> int:
        """Send nothing more; check the responses still owed, waiting up to ``deadline_ns``.

        Not measured, but verified: a server that corrupts or stalls at the
        very end of a run is caught too. What is still owed at the deadline
        counts as a time-out; returns how many. Churn: a connection that got
        its K-th response is closed, and its slot opened again at the start.
        """
        churn = self.churn
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
                    if churn is not None:
                        connection.left -= 1
                        if not connection.left:
                            churn.drop(connection)
                            churn.waiting.append(connection)
            now = time.monotonic_ns()
        owed = 0
        for connection in list(by_fd.values()):
            if connection.busy:
                owed += 1
                self._close(connection)
        self.errors["timeout"] += owed
        return owed


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

    def _opened(self, connection: Connection, now: int) -> None:
        """Churn: the slot's next connection is up; the closed loop sends at once."""
        self._start_request(connection, now)

    def _alive(self) -> bool:
        """Whether any slot still has (or is getting) a connection."""
        churn = self.churn
        return bool(self.by_fd or (churn is not None and (churn.connecting or churn.waiting)))

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
        if self.churn is not None:
            self.churn.window_ns = (measure_ns, end_ns)
            self.churn.sweep(time.monotonic_ns(), self.timeout_ns)  # slots done in the ramp
        self._run(start_ns, measure_ns, end_ns)
        if self.churn is not None and self.churn.connect_counts:
            self.result.connect_histogram = (
                histogram_from_counts(self.churn.connect_counts).encode().decode("ascii"))
        self.result.measured_s = (end_ns - measure_ns) / 1e9
        self.result.window_end_ns = end_ns
        return self.result

    def _run(self, start_ns: int, measure_ns: int, end_ns: int) -> None:
        """The loop itself: warm up from ``start_ns``, measure from ``measure_ns`` to ``end_ns``."""
        raise NotImplementedError

    @property
    def process(self) -> psutil.Process:
        return psutil.Process()

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
                self.result.timed_out_connections += 1
        self.errors["timeout"] += timed_out
        if self.churn is not None:
            self.churn.sweep(now, self.timeout_ns)
        return timed_out
