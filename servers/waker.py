"""Waking a loop that sleeps in the kernel, from a signal handler or another thread.

A socketpair, as trio's ``WakeupSocketpair``: :meth:`Waker.wake` writes a
byte to one end; the loop watches the other (select, epoll, or a recv in
flight on an io_uring) and :meth:`Waker.drain` empties it.
"""

from __future__ import annotations

import socket


class Waker:
    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        # Never block the waker: a full buffer already holds a wake-up.
        self.writer.setblocking(False)

    def fileno(self) -> int:
        """The descriptor the loop watches for readability."""
        return self.reader.fileno()

    def wake(self) -> None:
        try:
            self.writer.send(b"\0")
        except OSError:  # buffer full (a wake-up is already pending) or already closed
            pass

    def drain(self) -> None:
        """Read every pending wake-up byte without blocking."""
        try:
            while self.reader.recv(4096, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
