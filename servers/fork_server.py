"""fork: one process per connection, the classic Unix server.

The parent blocks in accept() and forks a child for each connection; the
child serves it with blocking recv() and sendall() and exits when the client
closes. The parent reaps children as SIGCHLD reports them, and on SIGTERM
stops them all before it exits.
"""

from __future__ import annotations

import signal
import socket
from typing import Any, ClassVar

from iobench.servers.base import Family, ServerModel
from iobench.servers.blocking import echo
from iobench.servers.children import Children
from iobench.servers.exhaustion import back_off, refuse_waiting, warn


class ForkServer(ServerModel):
    name: ClassVar[str] = "fork"
    family: ClassVar[Family] = Family.BLOCKING
    mechanism: ClassVar[str] = "process per connection"
    process_per_connection: ClassVar[bool] = True
    task_per_connection: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Blocking sockets; the parent blocks in accept() and fork()s a child per connection "
        "that blocks in recv()"
    )

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        self.children = Children()

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda signum, frame: self.children.reap())
        self.listener.setblocking(True)
        try:
            while self._running:
                try:
                    sock, _ = self.listener.accept()
                except OSError as exc:  # shut down by shutdown() (EINVAL), or exhaustion
                    if self._running and not refuse_waiting(self.listener, exc.errno,
                                                            self.name, wait_for_next=True):
                        back_off()
                    continue
                with sock:  # the parent's copy; the child has its own
                    self.configure_client_socket(sock)
                    try:
                        self.children.spawn(lambda sock=sock: self._serve_connection(sock))
                    except OSError as exc:  # EAGAIN, ENOMEM: out of processes or memory
                        warn("fork", f"fork failed ({exc.strerror}); refusing the connections "
                             "that find no process")
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.children.stop()

    def _serve_connection(self, sock: socket.socket) -> None:
        """The child: one blocking echo loop, then exit."""
        self.listener.close()
        try:
            echo(sock, self.recv_size, self.work)
        except OSError:  # reset by peer
            pass

    def shutdown(self) -> None:
        self._running = False
        try:
            # Wakes the parent blocked in accept() with EINVAL.
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
