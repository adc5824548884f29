"""prefork: N processes, each with its own epoll loop, on a listener chosen by ``listener``.

The parent binds (in the harness), forks ``processes`` workers and waits.
How the workers share the connections is the ``listener`` parameter:

- ``shared`` (the default): every worker watches the one inherited listening
  socket in its own epoll set. A new connection wakes them all and one wins
  the accept() (the others get EAGAIN: the thundering herd); the kernel wakes
  the waiters last-in-first-out, so a busy worker that returns to epoll_wait()
  first tends to win again, and one worker can take most connections.
- ``exclusive``: the same socket, watched with EPOLLEXCLUSIVE, so a
  connection wakes one waiting worker instead of all of them.
- ``reuseport``: a listening socket per worker, all bound to the one port
  with SO_REUSEPORT; the kernel hashes each connection's addresses and ports
  to one of them, so a worker's share does not depend on who waits.

Each worker counts its accepts and prints them as one JSON line on stdout
when it stops (``{"event": "worker", "pid": ..., "accepted": ...}``), which
``iobench.servers.process.ServerProcess`` collects. SIGTERM to the parent is
passed on to the workers, and the parent waits for them.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import socket
import sys
from typing import Any, ClassVar

from iobench.servers.base import WORK_PARAMS, Family, Param, ServerModel
from iobench.servers.children import PARENT_SIGNALS, Children
from iobench.servers.epoll_server import EpollServer

LISTENERS = ("shared", "reuseport", "exclusive")


def parse_listener(text: str) -> str:
    if text not in LISTENERS:
        raise ValueError(f"expected one of {', '.join(LISTENERS)}")
    return text


class PreforkServer(ServerModel):
    name: ClassVar[str] = "prefork"
    family: ClassVar[Family] = Family.MULTIPLEXING
    mechanism: ClassVar[str] = "N processes, each an epoll loop"
    description: ClassVar[str] = (
        "`processes` forked workers share the inherited listening socket, each accepting "
        "and serving in its own epoll loop"
    )
    params: ClassVar[tuple[Param, ...]] = (
        # Each worker is a whole interpreter: a few hundred is already far past the CPUs.
        Param("processes", 2, "worker processes", parse=int, minimum=1, maximum=256),
        Param("listener", "shared", "how workers share connections: shared (one inherited "
              "listener), reuseport (SO_REUSEPORT listener per worker), exclusive (the shared "
              "listener with EPOLLEXCLUSIVE)", parse=parse_listener),
    )
    worker_model: ClassVar[type[EpollServer]] = EpollServer
    spreads_over_workers: ClassVar[bool] = True

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        self.children = Children()
        # The signal mask before prepare() blocked the parent's signals.
        # The signal mask before prepare() blocked the stop signals, restored after.
        self._previous_mask: set[int | signal.Signals] | None = None
        # Worker i accepts on listeners[i] (one for all but under reuseport).
        # The extra sockets join the port's group now, before the ready line,
        # so no connection can come while only the harness's socket listens.
        self.listeners = [listener]
        if self.options["listener"] == "reuseport":
            for _ in range(self.options["processes"] - 1):
                self.listeners.append(reuseport_listener(listener, self.backlog))

    @classmethod
    def reuse_port(cls, options: dict[str, Any]) -> bool:
        return bool(options["listener"] == "reuseport")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cls.worker_model.unavailable_reason()

    def prepare(self) -> None:
        # The parent only waits: for a stop signal, or for a worker to exit.
        # Both are taken with sigwaitinfo() while blocked, so one that comes
        # between two waits stays pending instead of being missed. The workers
        # start before the ready line, so a launcher's baseline holds them.
        self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
        for index in range(self.options["processes"]):
            if self._running:
                self.children.spawn(functools.partial(self._run_worker, index))
        if len(self.listeners) > 1:
            # Each socket now lives in its worker; a copy here would keep
            # a dead worker's socket taking connections no one accepts.
            for sock in self.listeners:
                sock.close()

    def serve(self) -> None:
        if self._previous_mask is None:
            self.prepare()
        previous = self._previous_mask
        assert previous is not None, "prepare() keeps the mask it replaced"
        try:
            while self._running and self.children.pids:
                if signal.sigwaitinfo(PARENT_SIGNALS).si_signo != signal.SIGCHLD:
                    self.shutdown()
                    break
                workers = len(self.children.pids)
                self.children.reap()
                if self._running and len(self.children.pids) < workers:
                    print("warning: a prefork worker exited; serving with the rest",
                          file=sys.stderr, flush=True)
        finally:
            self.children.stop()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self._previous_mask = None

    def _run_worker(self, index: int) -> None:
        own = self.listeners[index if len(self.listeners) > 1 else 0]
        for sock in self.listeners:
            if sock is not own:
                sock.close()
        work = {param.name: self.options[param.name] for param in WORK_PARAMS}
        worker = self.worker_model(own, **work)
        if self.options["listener"] == "exclusive":
            worker.listener_events = select.EPOLLEXCLUSIVE
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: worker.shutdown())
        worker.serve()
        # One write(), below PIPE_BUF, so lines of workers stopping at once do
        # not mix (print() may write a line and its newline separately).
        line = json.dumps({"event": "worker", "pid": os.getpid(), "accepted": worker.accepted})
        os.write(sys.stdout.fileno(), f"{line}\n".encode())

    def shutdown(self) -> None:
        self._running = False
        self.children.signal_all(signal.SIGTERM)


def reuseport_listener(first: socket.socket, backlog: int) -> socket.socket:
    """Another listening socket on ``first``'s address, in its SO_REUSEPORT group."""
    sock = socket.socket(first.family, first.type, first.proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(first.getsockname())
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
