"""Probes of what one client's behaviour does to a server's other clients.

The article's scenario asks two questions the load generator cannot: while one
client sits idle, does a second one get an answer? And while one client sends
without reading its replies, do the others? Each probe drives a few clients
of its own from one thread, over loopback, with every socket non-blocking and
every wait bounded in time, so a server that answers nobody makes the probe
report that, never hang. A request that gets no answer within the probe's
bound is counted as unanswered, with how long it waited and where the server
was meanwhile (its state, its wait channel and system call, read from /proc),
so the report can say why.
"""

from __future__ import annotations

import contextlib
import platform
import select
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# A server accepts a waiting connection on its next pass, microseconds away when
# it is free: this is long enough on a busy machine, short beside the bounds.
ACCEPT_SETTLE_S = 0.2
# The first client speaks at most this many times to free the second, and the
# second waits this long after each time.
MAX_NUDGES = 3
NUDGE_WAIT_S = 0.3
# How long a connect or a reply the probe needs (not the one it measures) may take.
IO_TIMEOUT_S = 2.0
# The non-reading client sends this much at a time, and counts the server as no
# longer taking its bytes after this long without progress.
FLOOD_CHUNK = 64 * 1024
STALL_S = 0.3
# The longest the flood may take, whatever the server does.
FLOOD_MAX_S = 5.0
# Once it reads again, the non-reading client gets this long to read its replies back.
DRAIN_MAX_S = 5.0
# The other clients' last requests get this long to be answered at the end.
SETTLE_MAX_S = 0.5
# Each of the other clients' requests; lower-case, so an uppercasing server changes it.
REQUEST = b"another client\n"
# System call numbers /proc/PID/syscall shows, for the calls a server sleeps in.
SYSCALL_NAMES = {
    "x86_64": {"45": "recvfrom", "44": "sendto", "43": "accept", "288": "accept4",
               "232": "epoll_wait", "281": "epoll_pwait", "7": "poll", "23": "select",
               "0": "read", "1": "write"},
    "aarch64": {"207": "recvfrom", "206": "sendto", "202": "accept", "242": "accept4",
                "22": "epoll_pwait", "73": "ppoll", "72": "pselect6", "63": "read",
                "64": "write"},
}


@dataclass(frozen=True)
class ServerState:
    """Where a server's main thread was at one moment, as /proc shows it."""

    state: str  # R running or runnable, S asleep, ...
    wchan: str  # the kernel function it sleeps in ("0" or "" when it runs)
    syscall: str | None  # the system call it is in, by name where known; None when running

    @property
    def asleep(self) -> bool:
        return self.state in ("S", "D")

    def describe(self) -> str:
        if not self.asleep:
            return f"running (state {self.state})"
        call = f" in {self.syscall}()" if self.syscall else ""
        return f"asleep{call} (state {self.state}, wchan {self.wchan or '?'})"


def server_state(pid: int | None) -> ServerState | None:
    """The main thread's state, or None if it cannot be read (another host, gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/wchan") as file:
            wchan = file.read().strip()
        with open(f"/proc/{pid}/syscall") as file:
            fields_ = file.read().split()
    except (OSError, IndexError):
        return None
    syscall = None
    if fields_ and fields_[0] not in ("running", "-1"):
        syscall = SYSCALL_NAMES.get(platform.machine(), {}).get(fields_[0],
                                                                f"system call {fields_[0]}")
    return ServerState(state, "" if wchan == "0" else wchan, syscall)


@dataclass
class ProbeResult:
    """The other clients' requests while one client held the server up, and why.

    ``waits_s`` holds every such request's wait, from its send to its whole
    answer, or to the end of the probe if none came; ``unanswered`` counts the
    ones not answered within ``bound_s``.
    """

    bound_s: float
    waits_s: list[float] = field(default_factory=list)
    unanswered: int = 0
    # Where the server was while they waited (read half-way through the bound).
    state: ServerState | None = None
    # One line: what the probe saw, for the cell's notes.
    cause: str = ""
    # The non-reading client: bytes it sent and got back, and whether they were right.
    sent_bytes: int | None = None
    returned_bytes: int | None = None
    returned_intact: bool | None = None

    @property
    def longest_wait_s(self) -> float | None:
        return max(self.waits_s) if self.waits_s else None


class ProbeError(RuntimeError):
    """The probe itself could not run (no connection): the message says why."""


def _connect(address: tuple[str, int]) -> socket.socket:
    try:
        sock = socket.create_connection(address, timeout=IO_TIMEOUT_S)
    except OSError as exc:
        raise ProbeError(f"cannot connect to the server: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


@contextlib.contextmanager
def _clients() -> Iterator[list[socket.socket]]:
    """Sockets opened inside the block, closed at its end whatever happens."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


class _Reply:
    """A request on one client's socket and the answer it is owed."""

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.expected = request.upper()
        self.got = b""
        self.sent_at = time.monotonic()
        self.answered_at: float | None = None
        _send_all(sock, request)

    def poll(self) -> bool:
        """Read what has arrived; True once the whole answer is in."""
        if self.answered_at is not None:
            return True
        while len(self.got) < len(self.expected):
            try:
                chunk = self.sock.recv(len(self.expected) - len(self.got))
            except BlockingIOError:
                return False
            except OSError as exc:
                raise ProbeError(f"a client's connection failed: {exc.strerror or exc}") from None
            if not chunk:
                raise ProbeError("the server closed a client's connection before answering")
            self.got += chunk
        if self.got != self.expected:
            raise ProbeError(f"wrong answer {self.got[:40]!r}, expected {self.expected[:40]!r}")
        self.answered_at = time.monotonic()
        return True

    def wait(self, until: float) -> bool:
        """Wait for the answer until the monotonic time ``until``; True if it came."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self.poll():
                left = until - time.monotonic()
                if left <= 0:
                    return False
                selector.select(left)
        return True

    def waited_s(self, now: float) -> float:
        return (self.answered_at or now) - self.sent_at


def _send_all(sock: socket.socket, data: bytes) -> None:
    """All of a small request on a non-blocking socket, within IO_TIMEOUT_S."""
    view, deadline = memoryview(data), time.monotonic() + IO_TIMEOUT_S
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ProbeError("the server took no request for "
                                 f"{IO_TIMEOUT_S:g} s") from None
            select.select([], [sock], [], 0.01)


def second_client(address: tuple[str, int], pid: int | None, bound_s: float) -> ProbeResult:
    """A second client's request while a first one, connected before it, says nothing.

    If it gets no answer within ``bound_s``, the first client speaks (and
    reads its answer) up to MAX_NUDGES times, and the result says after how
    many the second was answered, if at all: what frees the server.
    """
    result = ProbeResult(bound_s)
    with _clients() as opened:
        first = _connect(address)
        opened.append(first)
        time.sleep(ACCEPT_SETTLE_S)
        second = _connect(address)
        opened.append(second)
        request = _Reply(second, REQUEST)
        answered = request.wait(request.sent_at + bound_s / 2)
        result.state = server_state(pid)
        answered = answered or request.wait(request.sent_at + bound_s)
        if answered:
            result.waits_s.append(request.waited_s(time.monotonic()))
            result.cause = (f"answered in {_ms(result.waits_s[0])} while the first client "
                            "was idle")
            return result
        result.unanswered = 1
        nudges = 0
        while not answered and nudges < MAX_NUDGES:
            nudges += 1
            spoken = _Reply(first, b"first client %d\n" % nudges)
            if not spoken.wait(time.monotonic() + IO_TIMEOUT_S):
                break
            answered = request.wait(time.monotonic() + NUDGE_WAIT_S)
        result.waits_s.append(request.waited_s(time.monotonic()))
        where = result.state.describe() if result.state else "its state unread"
        after = (f"answered after the first client spoke {_times(nudges)} "
                 f"({_ms(result.waits_s[0])} in all)" if answered
                 else f"still unanswered after the first client spoke {_times(nudges)}")
        result.cause = (f"no answer within {bound_s:g} s while the first client was idle: "
                        f"the server was {where}; {after}")
    return result


class _Talker:
    """One of the other clients: a closed loop of small requests, each one's wait kept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reply: _Reply | None = None
        self.waits_s: list[float] = []

    def step(self, now: float, keep_going: bool) -> None:
        """Collect an answer that came; send the next request if asked to."""
        if self.reply is not None and self.reply.poll():
            self.waits_s.append(self.reply.waited_s(now))
            self.reply = None
        if self.reply is None and keep_going:
            self.reply = _Reply(self.sock, REQUEST)

    def longest_pending_s(self, now: float) -> float:
        return self.reply.waited_s(now) if self.reply is not None else 0.0


def non_reading_client(address: tuple[str, int], pid: int | None, flood_bytes: int,
                       bound_s: float, others: int = 2) -> ProbeResult:
    """The other clients' waits while one client sends ``flood_bytes`` without reading.

    The other clients connect first and keep up a closed loop of small
    requests throughout. The non-reading client then sends until it has sent
    ``flood_bytes`` or the server stops taking its bytes (STALL_S without
    progress), and reads nothing for ``bound_s`` more; then it reads its
    replies back and closes its sending side. Every request of the others is
    timed; one that waited ``bound_s`` or more is unanswered within the bound.
    """
    result = ProbeResult(bound_s)
    with _clients() as opened, selectors.DefaultSelector() as selector:
        talkers = []
        for _ in range(others):
            sock = _connect(address)
            opened.append(sock)
            talkers.append(_Talker(sock))
            selector.register(sock, selectors.EVENT_READ)
        hog = _connect(address)
        opened.append(hog)

        def serve_talkers(until: float, keep_going: bool = True,
                          hog_events: int = 0) -> None:
            """Drive the others' loops until ``until``, returning early when the non-reading
            client's socket is ready for ``hog_events``."""
            if hog_events:
                selector.register(hog, hog_events)
            try:
                while (now := time.monotonic()) < until:
                    for talker in talkers:
                        talker.step(now, keep_going)
                    if not keep_going and all(t.reply is None for t in talkers):
                        return
                    ready = selector.select(min(until - now, 0.05))
                    if hog_events and any(key.fileobj is hog for key, _ in ready):
                        return
            finally:
                if hog_events:
                    selector.unregister(hog)

        serve_talkers(time.monotonic() + ACCEPT_SETTLE_S)
        chunk = b"x" * FLOOD_CHUNK
        sent, last_progress = 0, time.monotonic()
        flood_deadline = last_progress + FLOOD_MAX_S
        while sent < flood_bytes and time.monotonic() < flood_deadline:
            try:
                sent += hog.send(chunk[:flood_bytes - sent])
                last_progress = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - last_progress > STALL_S:
                    break
                serve_talkers(min(time.monotonic() + 0.05, last_progress + STALL_S + 0.01),
                              hog_events=selectors.EVENT_WRITE)
            for talker in talkers:
                talker.step(time.monotonic(), True)
        result.sent_bytes = sent
        held_from = time.monotonic()
        serve_talkers(held_from + bound_s / 2)
        result.state = server_state(pid)
        serve_talkers(held_from + bound_s)
        held_s = time.monotonic() - held_from
        # It reads again: everything it sent, uppercased, then the server's EOF.
        hog.shutdown(socket.SHUT_WR)
        returned, intact = 0, True
        drain_deadline = time.monotonic() + DRAIN_MAX_S
        while returned < sent and time.monotonic() < drain_deadline:
            try:
                data = hog.recv(1 << 20)
            except BlockingIOError:
                serve_talkers(min(time.monotonic() + 0.05, drain_deadline),
                              hog_events=selectors.EVENT_READ)
                continue
            except OSError:
                break
            if not data:
                break
            returned += len(data)
            intact = intact and not data.strip(b"X")
        result.returned_bytes, result.returned_intact = returned, intact and returned == sent
        serve_talkers(time.monotonic() + SETTLE_MAX_S, keep_going=False)
        now = time.monotonic()
        for talker in talkers:
            result.waits_s += talker.waits_s
            if talker.reply is not None:
                result.waits_s.append(talker.longest_pending_s(now))
        result.unanswered = sum(1 for wait in result.waits_s if wait >= bound_s)
        where = result.state.describe() if result.state else "its state unread"
        mib = 1024 * 1024
        longest = result.longest_wait_s
        result.cause = (
            f"a client sent {sent / mib:.1f} MiB and read nothing for {held_s:.1f} s: "
            f"the server was {where}; the other {others} clients' longest wait "
            f"{_ms(longest) if longest is not None else 'none'}, {result.unanswered} "
            f"request(s) unanswered within {bound_s:g} s; it then got "
            f"{returned / mib:.1f} MiB back" + ("" if result.returned_intact else
                                               f" of {sent / mib:.1f} MiB, not all intact"))
    return result


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
