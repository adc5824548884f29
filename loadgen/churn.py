"""Churn (``--requests-per-connection K``): K requests on a connection, close it, open the next.

Short connections are where a process per connection (fork), a thread per
connection and an event loop part ways: each new connection costs the server
an accept, and maybe a thread start or a fork. A slot of the load generator
keeps one connection at a time; after the K-th response is verified the
connection is closed and a new one opened at once, in both loops. In the
closed loop the new connection's first request goes out as soon as it is
established; in the open loop requests that fall due meanwhile queue on the
slot, and their latency counts from their intended time.

How it closes, and why: abortively (SO_LINGER with a zero time-out, so
close() sends RST). TIME_WAIT (60 s on Linux) stays with whichever side
sends the first FIN. The echo protocol has no framing, so the server never
knows a connection is done and cannot close first; a client that half-closes
with shutdown(SHUT_WR) sends the first FIN itself and ends in TIME_WAIT all
the same. One source address towards one server port has about 28,000
ephemeral ports, so at thousands of connections a second a client that left
each port in TIME_WAIT would run out within seconds wherever the kernel does
not reuse them (``tcp_tw_reuse`` covers loopback only). RST leaves no
TIME_WAIT on either side and costs the server no more than a FIN: it sees a
reset where it would have seen end of file, after every byte it owed was
received and checked. Every model closes the connection on either.

Connections also come from many source addresses when the target is IPv4
loopback (127.0.0.128 to 127.0.0.254 in turn), so even a kernel that holds a
port a while after the reset has 127 times the ports to choose from.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import struct
import time
from typing import TYPE_CHECKING

from iobench.loadgen.idle import IP_BIND_ADDRESS_NO_PORT

if TYPE_CHECKING:
    from iobench.loadgen.worker import Connection, Worker

# SO_LINGER on, zero seconds: close() resets the connection instead of sending FIN.
ABORT = struct.pack("ii", 1, 0)
# Source addresses for churned connections: the upper half of 127.0.0.0/24,
# apart from the idle connections' (127.0.0.2 onward).
FIRST_CHURN_HOST = 128
LAST_CHURN_HOST = 254


def error_name(code: int) -> str:
    """The errno's symbolic name (ECONNREFUSED), the cause a failed connect is counted by."""
    return errno.errorcode.get(code, f"errno {code}")


def abort(sock: socket.socket) -> None:
    """Close with RST: no TIME_WAIT on either side (see the module's docstring)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT)
    except OSError:
        pass  # already reset by the peer: close() sends nothing either way
    sock.close()  # also takes it out of every epoll set


class SourceAddresses:
    """127.0.0.128-254 in turn for an IPv4 loopback target; the kernel's choice otherwise."""

    def __init__(self, family: int, sockaddr: tuple, worker_index: int) -> None:
        loopback = (family == socket.AF_INET
                    and ipaddress.ip_address(sockaddr[0]).is_loopback)
        self.hosts = ([f"127.0.0.{host}" for host in range(FIRST_CHURN_HOST, LAST_CHURN_HOST + 1)]
                      if loopback else [])
        self.next_index = worker_index  # workers start apart

    def next(self) -> str | None:
        if not self.hosts:
            return None
        host = self.hosts[self.next_index % len(self.hosts)]
        self.next_index += 1
        return host


class Churn:
    """A worker's churn: closes a slot's connection after its K-th response and opens the next.

    A slot that is connecting is in ``connecting`` (by descriptor), not in the
    worker's ``by_fd``: the loops find it there when it becomes writable. A
    connect that fails is counted by cause and tried again at the worker's
    next time-out sweep, so a refusing server costs a bounded number of
    attempts, never a spin.
    """

    def __init__(self, worker: Worker, requests_per_connection: int) -> None:
        self.worker = worker
        self.per_connection = requests_per_connection
        plan = worker.plan
        self.family = plan.family
        self.sockaddr = plan.sockaddr
        self.sources = SourceAddresses(plan.family, plan.sockaddr, plan.worker_index)
        self.connecting: dict[int, Connection] = {}
        self.waiting: list[Connection] = []  # to open again at the next sweep
        self.connect_counts: dict[int, int] = {}  # connect latency (us) in the window
        self.window_ns = (0, 0)
        # The closed loop says which phase it is in, so that connections and
        # requests are counted at the same edges; the open loop goes by time.
        self.recording: bool | None = None

    def in_window(self, now: int) -> bool:
        if self.recording is not None:
            return self.recording
        return self.window_ns[0] <= now < self.window_ns[1]

    def done(self, connection: Connection, now: int) -> None:
        """The slot's K-th response was verified: close its connection, open the next."""
        worker = self.worker
        if self.in_window(now):
            worker.result.connections_completed += 1
        self.drop(connection)
        self.open(connection, now)

    def drop(self, connection: Connection) -> None:
        """Close the slot's connection abortively; the slot stays, busy until it is open again."""
        worker = self.worker
        worker.by_fd.pop(connection.fd, None)
        abort(connection.sock)
        connection.busy = True  # nothing can be sent until the next one is up
        connection.out = None

    def open(self, connection: Connection, now: int) -> None:
        """Start the slot's next connection (non-blocking); a failure waits for the sweep."""
        worker = self.worker
        try:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors or memory
            worker._connect_failed(None, exc.errno or errno.EMFILE)
            self.waiting.append(connection)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        source = self.sources.next()
        try:
            if source is not None:
                # The port is chosen at connect() by the whole 4-tuple.
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            code = sock.connect_ex(self.sockaddr)
        except OSError as exc:
            code = exc.errno or errno.EADDRNOTAVAIL
        if code not in (0, errno.EINPROGRESS):
            worker._connect_failed(sock, code)
            self.waiting.append(connection)
            return
        connection.attach(sock)
        connection.connect_ns = now
        self.connecting[connection.fd] = connection
        worker.epoll.register(connection.fd, select.EPOLLOUT)

    def connected(self, fd: int) -> bool:
        """Handle a writable connecting socket; False if ``fd`` is not one of them."""
        connection = self.connecting.pop(fd, None)
        if connection is None:
            return False
        worker = self.worker
        code = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            worker._connect_failed(connection.sock, code)
            self.waiting.append(connection)
            return True
        now = time.monotonic_ns()
        if self.in_window(now):
            worker.result.connects += 1
            latency_us = (now - connection.connect_ns) // 1000
            self.connect_counts[latency_us] = self.connect_counts.get(latency_us, 0) + 1
        worker.by_fd[fd] = connection
        worker.epoll.modify(fd, select.EPOLLIN)
        connection.left = self.per_connection
        worker._opened(connection, now)
        return True

    def sweep(self, now: int, timeout_ns: int) -> None:
        """Time out connects that took longer than --timeout; open the waiting slots again."""
        worker = self.worker
        for fd, connection in list(self.connecting.items()):
            if now - connection.connect_ns > timeout_ns:
                del self.connecting[fd]
                worker._connect_failed(connection.sock, errno.ETIMEDOUT)
                self.waiting.append(connection)
        waiting, self.waiting = self.waiting, []
        for connection in waiting:
            if not connection.dead:
                self.open(connection, now)

    def owed(self) -> bool:
        """Open loop: requests queue on a slot whose next connection is not up yet."""
        return any(c.queue for c in self.connecting.values()) or any(c.queue for c in self.waiting)

    def queued(self) -> int:
        """Requests queued on slots without a connection (still owed when the run ends)."""
        return (sum(len(c.queue) for c in self.connecting.values())
                + sum(len(c.queue) for c in self.waiting))

    def close(self) -> None:
        """Close connects still under way (the window is over: they are no failure); their
        slots wait to be opened again should another window follow (``--rounds``)."""
        for connection in self.connecting.values():
            connection.sock.close()
            self.waiting.append(connection)
        self.connecting.clear()

