"""The readiness loop shared by select, poll and epoll.

The models differ only in the system call that waits until a socket is ready;
the loop around it (accepting, reading, writing, watching for writability
only while output is pending) is the same, so it lives here. A backend
implements :meth:`watch`, :meth:`forget` and :meth:`wait`, in the manner of
``selectors``.
"""

from __future__ import annotations

import signal
import socket
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from iobench.servers.base import Family, ServerModel
from iobench.servers.connection import Connection, accept_pending
from iobench.servers.waker import Waker

READ = 1
WRITE = 2


class ReadinessServer(ServerModel):
    """One thread that sleeps in the kernel until some socket is ready."""

    family: ClassVar[Family] = Family.MULTIPLEXING
    mechanism: ClassVar[str] = "one thread, event loop"
    can_offload: ClassVar[bool] = True
    # The highest descriptor the wait call can handle (select's FD_SETSIZE), or None.
    max_fd: ClassVar[int | None] = None

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self.connections: dict[int, Connection] = {}
        self._running = True
        # shutdown() wakes a loop that sleeps in wait(), as the offload pool
        # does when it has an answer.
        self._waker = Waker()
        self.offload = self.start_offload(self._waker.wake)
        # Connections this loop accepted (prefork reports each worker's).
        self.accepted = 0

    @abstractmethod
    def watch(self, fd: int, events: int) -> None:
        """Start watching ``fd``, or change what it is watched for (READ | WRITE, or 0)."""

    @abstractmethod
    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (called before it is closed)."""

    @abstractmethod
    def wait(self) -> Iterable[tuple[int, int]]:
        """Block until something is ready; return (fd, READ | WRITE) pairs."""

    def serve(self) -> None:
        listen_fd, wake_fd = self.listener.fileno(), self._waker.fileno()
        self.listener.setblocking(False)
        self.watch(listen_fd, READ)
        self.watch(wake_fd, READ)
        # A signal that lands after the loop lets go of the GIL but before it
        # sleeps in wait() would run its Python handler only after the next
        # event. With the wake-up fd set, the C-level handler writes to the
        # wake socket itself, so wait() returns at once.
        previous_wakeup = signal.set_wakeup_fd(self._waker.writer.fileno(),
                                               warn_on_full_buffer=False)
        try:
            while self._running:
                for fd, events in self.wait():
                    if fd == listen_fd:
                        self._accept()
                    elif fd == wake_fd:
                        self._waker.drain()
                        self._answer()
                    elif conn := self.connections.get(fd):
                        self._service(conn, events)
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            if self.offload is not None:
                self.offload.close()
            for conn in self.connections.values():
                conn.close()
            self._waker.close()

    def shutdown(self) -> None:
        self._running = False
        self._waker.wake()

    def _accept(self) -> None:
        for conn in accept_pending(self.listener, self, self.max_fd, self.offload):
            self.accepted += 1
            self.connections[conn.fd] = conn
            conn.interest = READ
            self.watch(conn.fd, READ)

    def _answer(self) -> None:
        """Send the answers the offload pool has finished (it woke the loop)."""
        if self.offload is None:
            return
        # The pool hands back the owner each request was submitted with: a Connection here.
        answers: list[tuple[Connection, bytes]] = self.offload.completed()
        for conn, output in answers:
            if self.connections.get(conn.fd) is conn:
                conn.answered(output)
                self._settle(conn)

    def _service(self, conn: Connection, events: int) -> None:
        if events & READ:
            conn.on_readable()
        if events & WRITE and not conn.closed:
            conn.on_writable()
        self._settle(conn)

    def _settle(self, conn: Connection) -> None:
        """Forget a closed connection; watch an open one for what it now wants."""
        if conn.closed:
            self.forget(conn.fd)
            del self.connections[conn.fd]
            return
        interest = (READ if conn.wants_read else 0) | (WRITE if conn.wants_write else 0)
        if interest != conn.interest:
            conn.interest = interest
            self.watch(conn.fd, interest)
