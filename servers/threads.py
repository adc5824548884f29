"""threads: blocking sockets, one thread per connection.

Each connection's thread blocks in recv() and sendall(); the kernel wakes it
when its data arrives. Simple and fast at low connection counts; pays a stack
and context switches per connection as connections grow.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, ClassVar

from servers.base import Family, ServerModel, transform

# How long shutdown waits for connection threads once their sockets are shut.
JOIN_TIMEOUT = 0.5


class ThreadPerConnectionServer(ServerModel):
    name: ClassVar[str] = "threads"
    family: ClassVar[Family] = Family.BLOCKING
    mechanism: ClassVar[str] = "thread per connection"
    description: ClassVar[str] = (
        "Blocking sockets; the main thread blocks in accept(), each connection gets a thread "
        "that blocks in recv()"
    )

    def __init__(self, listener: socket.socket, **params: Any) -> None:
        super().__init__(listener, **params)
        self._running = True
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, threading.Thread] = {}

    def serve(self) -> None:
        self.listener.setblocking(True)
        while self._running:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                # shutdown() shut the listener down (EINVAL), or accept failed
                # for want of descriptors: stop, or try again.
                continue
            self.configure_client_socket(sock)
            thread = threading.Thread(target=self._handle, args=(sock,), daemon=True)
            with self._lock:
                self._clients[sock] = thread
            thread.start()
        self._close_clients()

    def _handle(self, sock: socket.socket) -> None:
        try:
            while data := sock.recv(self.recv_size):
                sock.sendall(transform(data))
        except OSError:  # reset by peer, or shut down by shutdown()
            pass
        finally:
            with self._lock:
                self._clients.pop(sock, None)
            sock.close()

    def shutdown(self) -> None:
        self._running = False
        # On Linux, shutting a listening socket down wakes a thread blocked in
        # accept() with EINVAL; likewise recv() and sendall() on a client.
        for sock in [self.listener, *list(self._clients)]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_clients(self) -> None:
        with self._lock:
            pending = list(self._clients.items())
        for sock, _ in pending:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in pending:
            thread.join(JOIN_TIMEOUT)
