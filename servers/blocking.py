"""The blocking models' common part: accept() in the main thread, echo in a worker.

In the manner of ``socketserver``, a blocking model overrides one method,
:meth:`BlockingServer.dispatch`, which hands a new connection to whatever
serves it (a new thread, a pool's queue, a forked child). Serving is the same
everywhere: a loop that blocks in recv() and sendall() until the client
closes (:func:`echo`).
"""

from __future__ import annotations

import signal
import socket
import threading
from abc import abstractmethod
from typing import Any, ClassVar

from iobench.servers.base import Family, ServerModel, transform
from iobench.servers.exhaustion import back_off, refuse_waiting, warn
from iobench.servers.work import Work

# How long stopping waits for the workers once their sockets are shut down.
JOIN_TIMEOUT = 0.5
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class BlockingServer(ServerModel):
    """Blocking sockets: the main thread blocks in accept(), workers in recv()."""

    family: ClassVar[Family] = Family.BLOCKING

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        self._changed = threading.Condition()
        self._active: set[socket.socket] = set()
        # The signal mask before prepare() blocked the stop signals.
        # The signal mask before prepare() blocked the stop signals, restored after.
        self._previous_mask: set[int | signal.Signals] | None = None

    @abstractmethod
    def dispatch(self, sock: socket.socket) -> None:
        """Hand a newly accepted connection on; :meth:`handle` serves it."""

    def prepare(self) -> None:
        # A Python signal handler runs only when the main thread runs Python
        # code. A signal that lands after the main thread has let go of the GIL
        # but before it sleeps in accept() interrupts nothing, and with busy
        # workers around that window is wide: the stop would wait for the next
        # connection. So SIGTERM and SIGINT stay blocked in every thread, and
        # one thread takes them with sigwait(), which cannot miss one.
        self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=self._await_stop_signal, daemon=True).start()
        # After the mask is set, so they inherit it; before the ready line, so
        # that the memory a launcher reads as the baseline holds the pool.
        self.start_workers()

    def serve(self) -> None:
        if self._previous_mask is None:
            self.prepare()
        previous = self._previous_mask
        assert previous is not None, "prepare() keeps the mask it replaced"
        try:
            self.listener.setblocking(True)
            while self._running:
                try:
                    sock, _ = self.listener.accept()
                except OSError as exc:  # shut down by shutdown() (EINVAL), or exhaustion
                    if self._running and not refuse_waiting(self.listener, exc.errno,
                                                            self.name, wait_for_next=True):
                        back_off()
                    continue
                self.configure_client_socket(sock)
                try:
                    self.dispatch(sock)
                except RuntimeError as exc:  # "can't start new thread": out of threads
                    warn("dispatch", f"{self.name}: {exc}; refusing the connections that "
                         "find no thread")
                    sock.close()
        finally:
            self.close_connections()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self._previous_mask = None

    def start_workers(self) -> None:
        """Start threads that serve connections from the outset (a pool); none by default."""

    def handle(self, sock: socket.socket) -> None:
        """Serve one connection until the client closes it: the body of every worker."""
        with self._changed:
            if not self._running:
                sock.close()
                return
            self._active.add(sock)
        try:
            echo(sock, self.recv_size, self.work)
        finally:
            with self._changed:
                self._active.discard(sock)
                self._changed.notify_all()
            sock.close()

    def shutdown(self) -> None:
        self._running = False
        # On Linux, shutting a socket down wakes the thread blocked on it at
        # once: accept() with EINVAL, recv() with EOF, sendall() with EPIPE.
        for sock in [self.listener, *list(self._active)]:
            _shut(sock)

    def close_connections(self) -> None:
        """Wake every worker still serving a client and wait for them to finish."""
        with self._changed:
            for sock in self._active:
                _shut(sock)
            self._changed.wait_for(lambda: not self._active, timeout=JOIN_TIMEOUT)

    def _await_stop_signal(self) -> None:
        # This thread waits for the stop signals alone: every other signal
        # (fork's SIGCHLD) goes to the main thread and interrupts its accept().
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        signal.sigwait(STOP_SIGNALS)
        self.shutdown()


def echo(sock: socket.socket, recv_size: int, work: Work | None = None) -> None:
    """Block in recv() and sendall() until the client closes (or the socket is shut down).

    Work per request (see iobench.servers.work) is done in this thread between
    the two, as a blocking server's handler does: a blocking wait releases the GIL.
    """
    try:
        if work is None:
            while data := sock.recv(recv_size):
                sock.sendall(transform(data))
            return
        received = 0
        while data := sock.recv(recv_size):
            work.run(work.completed(received, len(data)))
            received += len(data)
            sock.sendall(transform(data))
    except OSError:  # reset by peer, or shut down by shutdown()
        pass


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected any more
        pass
