"""fork: one process per connection, the classic Unix server.

The parent blocks in accept() (the blocking models' loop, servers/blocking.py)
and its dispatch forks a child for each connection; the child serves it with
blocking recv() and sendall() and exits when the client closes. The parent
reaps children as SIGCHLD reports them, and on SIGTERM stops them all before
it exits.
"""

from __future__ import annotations

import signal
import socket
from typing import Any, ClassVar

from iobench.servers.blocking import BlockingServer, echo
from iobench.servers.children import Children
from iobench.servers.exhaustion import warn


class ForkServer(BlockingServer):
    name: ClassVar[str] = "fork"
    mechanism: ClassVar[str] = "process per connection"
    process_per_connection: ClassVar[bool] = True
    task_per_connection: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Blocking sockets; the parent blocks in accept() and fork()s a child per connection "
        "that blocks in recv()"
    )

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self.children = Children()

    def start_workers(self) -> None:
        signal.signal(signal.SIGCHLD, lambda signum, frame: self.children.reap())

    def dispatch(self, sock: socket.socket) -> None:
        with sock:  # the parent's copy; the child has its own
            try:
                self.children.spawn(lambda: self._serve_connection(sock))
            except OSError as exc:  # EAGAIN, ENOMEM: out of processes or memory
                warn("fork", f"fork failed ({exc.strerror}); refusing the connections "
                     "that find no process")

    def _serve_connection(self, sock: socket.socket) -> None:
        """The child: one blocking echo loop, then exit."""
        self.listener.close()
        echo(sock, self.recv_size, self.work)

    def close_connections(self) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.children.stop()
