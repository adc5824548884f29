"""threadpool: blocking sockets served by a fixed pool of worker threads.

The main thread blocks in accept() and queues each connection; a free worker
takes it and serves it, blocking in recv() and sendall(), until the client
closes. A connection holds its worker for as long as it is open, so when
connections outnumber workers the extra ones are accepted but wait in the
queue, unserved, until a worker frees up: their clients see that as latency
or timeouts, which is what this model is here to show.
"""

from __future__ import annotations

import queue
import signal
import socket
import threading
from typing import Any, ClassVar

from servers.base import Family, Param, ServerModel, transform

# How long shutdown waits for each worker once the sockets are shut.
JOIN_TIMEOUT = 0.5
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class ThreadPoolServer(ServerModel):
    name: ClassVar[str] = "threadpool"
    family: ClassVar[Family] = Family.BLOCKING
    mechanism: ClassVar[str] = "fixed pool of threads"
    description: ClassVar[str] = (
        "Blocking sockets; `workers` threads each serve one connection at a time, "
        "connections beyond the pool wait, accepted but unserved, in a queue"
    )
    params: ClassVar[tuple[Param, ...]] = (
        Param("workers", 256, "worker threads; connections beyond it queue", parse=int,
              minimum=1),
    )

    def __init__(self, listener: socket.socket, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        # Accepted connections waiting for a worker; None tells a worker to exit.
        self._queue: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._active: set[socket.socket] = set()
        self._workers = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(self.options["workers"])]

    def serve(self) -> None:
        # A Python signal handler runs only when the main thread runs Python
        # code. A signal that lands after the main thread has let go of the GIL
        # but before it sleeps in accept() interrupts nothing, and with busy
        # workers around that window is wide: the stop would wait for the next
        # connection. So SIGTERM and SIGINT stay blocked in every thread, and
        # one thread takes them with sigwait(), which cannot miss one.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            threading.Thread(target=self._await_stop_signal, daemon=True).start()
            for worker in self._workers:
                worker.start()
            self.listener.setblocking(True)
            while self._running:
                try:
                    sock, _ = self.listener.accept()
                except OSError:  # shut down by shutdown() (EINVAL), or out of descriptors
                    continue
                self.configure_client_socket(sock)
                self._queue.put(sock)
            self._stop_workers()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _await_stop_signal(self) -> None:
        signal.sigwait(STOP_SIGNALS)
        self.shutdown()

    def _work(self) -> None:
        while (sock := self._queue.get()) is not None:
            with self._lock:
                if not self._running:
                    sock.close()
                    continue
                self._active.add(sock)
            try:
                while data := sock.recv(self.recv_size):
                    sock.sendall(transform(data))
            except OSError:  # reset by peer, or shut down by shutdown()
                pass
            finally:
                with self._lock:
                    self._active.discard(sock)
                sock.close()

    def shutdown(self) -> None:
        self._running = False
        # Shutting a socket down wakes the thread blocked on it (accept, recv or
        # sendall) at once; a connection still queued is closed by its worker.
        for sock in [self.listener, *list(self._active)]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _stop_workers(self) -> None:
        with self._lock:
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(JOIN_TIMEOUT)
