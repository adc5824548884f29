"""What a server does when the machine says no: out of descriptors, threads or processes.

At the descriptor limit accept() fails with EMFILE and leaves the connection
waiting, so the listener stays readable: a readiness loop wakes at once, a
blocking loop returns from accept() at once, and either spins at 100% of a
core until some client leaves. The standard remedy (libuv's, nginx's) is a
spare descriptor held in reserve: at EMFILE, close it, accept the waiting
connections and close them at once (their clients see the connection end),
then take the spare back. The listener is quiet again and the server waits
as it always does; once clients leave, accept() succeeds again.

At the limit accept() fails at once even when no connection waits, since
the kernel takes the descriptor before it looks for a connection: a blocking
loop then waits for the listener to become readable, and io-uring polls it,
before they accept again.

Should the spare be lost (another thread took the freed number first), a
loop backs off for ``BACKOFF_S`` instead, which costs a few wake-ups a second.
Either way the server warns once, not once per attempt.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import time
from typing import Any

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
# Kernel memory for a socket, also a kind of exhaustion: nothing to refuse with, so wait.
OUT_OF_MEMORY = frozenset({errno.ENOBUFS, errno.ENOMEM})
# How long a loop that could not refuse waits before it tries accept() again.
BACKOFF_S = 0.1
# At most this many waiting connections refused per EMFILE, so one turn stays short.
MAX_REFUSED_PER_TURN = 1024


class SpareDescriptor:
    """One descriptor kept open so that, at the limit, there is one to accept with."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.take()

    def take(self) -> bool:
        """Hold the spare again; False if the process is (still) at its limit."""
        if self.fd is None:
            try:
                self.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_spare: SpareDescriptor | None = None
_warned: set[str] = set()


def warn(key: str, message: str) -> None:
    """Print a warning to stderr once per ``key`` (a loop may hit the same case often)."""
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def spare() -> SpareDescriptor:
    """This process's spare descriptor, opened on first use (a forked child keeps its copy)."""
    global _spare
    if _spare is None:
        _spare = SpareDescriptor()
    return _spare


def reserve_spare() -> None:
    """Open the spare now, while descriptors are plentiful: call it before serving."""
    spare()


def refuse_waiting(listener: socket.socket, error: int | None, model: str, *,
                   wait_for_next: bool = False) -> bool:
    """Handle a failed accept() with ``error`` (an errno); True if the listener is quiet again.

    Out of descriptors: warn once, then accept and close the waiting
    connections with the spare. Out of socket memory: warn once, and the
    caller backs off. False means the caller must back off (see
    :func:`back_off`) before its next accept(), or it would spin.

    ``wait_for_next``: for a loop that blocks in accept(), return only once
    another connection waits (see the module's note on why).
    """
    if error is None:  # an OSError without an errno names no limit: back off, try again
        return False
    if error in OUT_OF_DESCRIPTORS:
        warn("accept:descriptors", f"{model}: out of file descriptors "
             f"({errno.errorcode.get(error, error)}); refusing new connections until "
             "clients leave")
        reserve = spare()
        if reserve.fd is None:
            reserve.take()
            return False
        reserve.release()
        was_blocking = listener.getblocking()
        listener.setblocking(False)
        try:
            for _ in range(MAX_REFUSED_PER_TURN):
                try:
                    # The plain accept(), also for a RefusingListener.
                    sock, _ = socket.socket.accept(listener)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # another thread took the number first
                    return False
                sock.close()
        finally:
            listener.setblocking(was_blocking)
            taken = reserve.take()
        if taken and wait_for_next:
            # At the limit a blocking accept() fails at once whether or not a
            # connection waits (the kernel takes the descriptor first): wait
            # for one here instead, as accept() would have. select.poll needs
            # no descriptor; shutting the listener down wakes it.
            waiter = select.poll()
            waiter.register(listener, select.POLLIN)
            waiter.poll()
        return taken
    if error in OUT_OF_MEMORY:
        warn("accept:memory", f"{model}: accept failed ({errno.errorcode.get(error, error)}); "
             f"backing off {BACKOFF_S:g} s at a time")
        return False
    # ECONNABORTED and the like: that one connection is gone, the next may be fine.
    warn("accept:other", f"{model}: accept failed: {errno.errorcode.get(error, error)}")
    return True


class RefusingListener(socket.socket):
    """A non-blocking listener whose accept() refuses the waiting connections at the limit.

    For an event loop that accepts for itself: asyncio's selector loop, at
    EMFILE, goes on calling accept() up to ``backlog`` times in the same turn
    and schedules a retry for each failure. This accept() refuses what waits
    with the spare and reports "nothing more to accept" (EAGAIN) instead, so
    the loop waits for the next connection as it always does.
    """

    __slots__ = ("model_name",)
    model_name: str  # the model named in the warning; set by the model that makes it

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            return super().accept()
        except OSError as exc:
            name = getattr(self, "model_name", "server")
            if exc.errno not in OUT_OF_DESCRIPTORS or not refuse_waiting(self, exc.errno, name):
                raise
            raise BlockingIOError(errno.EAGAIN, "refused at the descriptor limit") from None


def back_off() -> None:
    """Wait before the next accept() when the waiting connections could not be refused."""
    time.sleep(BACKOFF_S)
