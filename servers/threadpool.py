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
import socket
import threading
from typing import Any, ClassVar

from iobench.servers.base import Param
from iobench.servers.blocking import JOIN_TIMEOUT, BlockingServer


class ThreadPoolServer(BlockingServer):
    name: ClassVar[str] = "threadpool"
    mechanism: ClassVar[str] = "fixed pool of threads"
    description: ClassVar[str] = (
        "Blocking sockets; `workers` threads each serve one connection at a time, "
        "connections beyond the pool wait, accepted but unserved, in a queue"
    )
    params: ClassVar[tuple[Param, ...]] = (
        # All threads start up front: a bound keeps a typo from exhausting the machine.
        Param("workers", 256, "worker threads; connections beyond it queue", parse=int,
              minimum=1, maximum=10_000),
    )

    @classmethod
    def starved_by(cls, params: dict[str, Any], idle: int) -> str | None:
        workers = cls.resolve_params(params)["workers"]
        if idle < workers:
            return None
        return (f"all {workers} pool threads are held by idle connections that came first "
                f"({idle} of them), so the active connections wait in the queue, never served")

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        # Accepted connections waiting for a worker; None tells a worker to exit.
        self._queue: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(self.options["workers"])]

    def start_workers(self) -> None:
        for worker in self._workers:
            worker.start()

    def dispatch(self, sock: socket.socket) -> None:
        self._queue.put(sock)

    def _work(self) -> None:
        while (sock := self._queue.get()) is not None:
            self.handle(sock)  # closes at once a connection still queued at shutdown

    def close_connections(self) -> None:
        super().close_connections()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(JOIN_TIMEOUT)
