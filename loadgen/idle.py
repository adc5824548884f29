"""Idle connections (``--idle N``): opened before the start, silent, checked at the end.

They are the crowd of the C10K problem: a server that scans every connection
it watches pays for them on every pass, one that waits in epoll does not. The
load generator pays nothing for them while they are idle: they are in no
epoll set and no loop looks at them, so they wake nothing; each costs a
socket object and the kernel's socket buffers.

One source address can open only as many connections to one server port as
the ephemeral-port range holds (about 28,000 on Linux), so against a loopback
server the idle connections are spread over several source addresses,
127.0.0.2 onward (127.0.0.1 stays for the active connections and everyone
else on the machine). An idle connection's global index picks its address,
so workers and shards that split the idle connections never collide.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

from iobench.loadgen.plan import WorkerPlan

# Connections in the middle of their handshake at once: enough to open tens of
# thousands in a second or two, few enough that the server's accept queue
# (backlog 4096) is never flooded, which would drop SYNs and cost a
# one-second retransmission each.
IN_FLIGHT = 256
PORT_RANGE_PATH = Path("/proc/sys/net/ipv4/ip_local_port_range")
# When the range cannot be read: Linux's default 32768-60999.
DEFAULT_PORT_RANGE = 28_232
# First loopback source address for idle connections (127.0.0.2).
FIRST_SOURCE_HOST = 2
LAST_SOURCE_HOST = 254
# Linux: pick the source port at connect() by the whole 4-tuple, not at bind()
# by the address alone, so a port in TIME_WAIT towards an earlier server's port
# can be used again (socket.IP_BIND_ADDRESS_NO_PORT, missing before 3.12).
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

ConnectFailed = Callable[[socket.socket | None, int], None]


def per_source_address() -> int:
    """Idle connections per source address: half the ephemeral-port range.

    Half, so a source address never runs out of ports even while the other
    half is held by connections of an earlier run waiting out TIME_WAIT.
    """
    try:
        low, high = (int(part) for part in PORT_RANGE_PATH.read_text().split())
        size = high - low + 1
    except (OSError, ValueError):
        size = DEFAULT_PORT_RANGE
    return max(size // 2, 1)


def source_address(family: int, sockaddr: tuple, index: int, per_source: int) -> str | None:
    """The source address of idle connection ``index``, or None to let the kernel choose.

    Only an IPv4 loopback target has a whole /8 of local source addresses to
    spread over; any other target gets the kernel's choice.
    """
    if family != socket.AF_INET or not ipaddress.ip_address(sockaddr[0]).is_loopback:
        return None
    host = FIRST_SOURCE_HOST + index // per_source
    if host > LAST_SOURCE_HOST:
        return None
    return f"127.0.0.{host}"


class IdleConnections:
    """A worker's share of the idle connections."""

    def __init__(self, plan: WorkerPlan, failed: ConnectFailed) -> None:
        self.plan = plan
        self.failed = failed
        self.sockets: list[socket.socket] = []

    def connect(self) -> int:
        """Open them all, at most IN_FLIGHT handshakes at a time; return how many are up.

        Each handshake has --timeout to complete; a failure is reported through
        ``failed`` like any other connect error.
        """
        plan = self.plan
        per_source = per_source_address()
        indices = iter(range(plan.idle_first, plan.idle_first + plan.idle_count))
        pending: dict[int, tuple[socket.socket, float]] = {}
        timeout = plan.timeout_s
        with select.epoll() as epoll:
            exhausted = False
            while True:
                while not exhausted and len(pending) < IN_FLIGHT:
                    index = next(indices, None)
                    if index is None:
                        exhausted = True
                        break
                    sock = self._start(index, per_source)
                    if sock is None:
                        exhausted = True  # out of descriptors: the rest fail too
                        for _ in indices:
                            self.failed(None, errno.EMFILE)
                        break
                    if sock.fileno() != -1:
                        pending[sock.fileno()] = (sock, time.monotonic())
                        epoll.register(sock.fileno(), select.EPOLLOUT)
                if not pending:
                    break
                for fd, _ in epoll.poll(0.1):
                    sock, _ = pending.pop(fd)
                    epoll.unregister(fd)
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        self.failed(sock, code)
                    else:
                        self.sockets.append(sock)
                now = time.monotonic()
                for fd, (sock, started) in list(pending.items()):
                    if now - started > timeout:
                        del pending[fd]
                        epoll.unregister(fd)
                        self.failed(sock, errno.ETIMEDOUT)
        return len(self.sockets)

    def _start(self, index: int, per_source: int) -> socket.socket | None:
        """Begin one handshake; None when no descriptor is left; a closed socket on failure."""
        plan = self.plan
        try:
            sock = socket.socket(plan.family, socket.SOCK_STREAM)
        except OSError:
            return None
        sock.setblocking(False)
        source = source_address(plan.family, plan.sockaddr, index, per_source)
        try:
            if source is not None:
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            code = sock.connect_ex(plan.sockaddr)
        except OSError as exc:
            code = exc.errno or errno.EADDRNOTAVAIL
        if code not in (0, errno.EINPROGRESS):
            self.failed(sock, code)  # closes it
        return sock

    def give_back(self, count: int) -> None:
        """Close ``count`` of them (counted as connect failures) to free descriptors."""
        for _ in range(min(count, len(self.sockets))):
            self.failed(self.sockets.pop(), errno.EMFILE)

    def still_open(self) -> tuple[int, int]:
        """(open, spoken): how many are still open, and how many the server wrote to.

        A closed or reset connection reads as end of file or an error; an
        open one has nothing to read. Peeking leaves any data where it is.
        """
        still, spoken = 0, 0
        for sock in self.sockets:
            try:
                data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                still += 1
                continue
            except OSError:
                continue
            if data:
                still += 1
                spoken += 1
        return still, spoken

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
