"""prefork: N processes, each with its own epoll loop, on one inherited listener.

The parent binds (in the harness), forks ``processes`` workers and waits.
Every worker watches the shared listening socket in its own epoll set, so a
new connection wakes them all and one wins the accept() (the others get
EAGAIN: the thundering herd, small at these process counts). SIGTERM to the
parent is passed on to the workers, and the parent waits for them.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import Any, ClassVar

from iobench.servers.base import Family, Param, ServerModel
from iobench.servers.children import PARENT_SIGNALS, Children
from iobench.servers.epoll_server import EpollServer


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
    )
    worker_model: ClassVar[type[EpollServer]] = EpollServer

    def __init__(self, listener: socket.socket, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        self.children = Children()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cls.worker_model.unavailable_reason()

    def serve(self) -> None:
        # The parent only waits: for a stop signal, or for a worker to exit.
        # Both are taken with sigwaitinfo() while blocked, so one that comes
        # between two waits stays pending instead of being missed.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
        try:
            for _ in range(self.options["processes"]):
                if self._running:
                    self.children.spawn(self._run_worker)
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

    def _run_worker(self) -> None:
        worker = self.worker_model(self.listener)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: worker.shutdown())
        worker.serve()

    def shutdown(self) -> None:
        self._running = False
        self.children.signal_all(signal.SIGTERM)
