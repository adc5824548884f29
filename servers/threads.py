"""threads: blocking sockets, one thread per connection.

Each connection's thread blocks in recv() and sendall(); the kernel wakes it
when its data arrives. Simple and fast at low connection counts; pays a stack
and context switches per connection as connections grow.
"""

from __future__ import annotations

import socket
import threading
from typing import ClassVar

from iobench.servers.blocking import BlockingServer


class ThreadPerConnectionServer(BlockingServer):
    name: ClassVar[str] = "threads"
    mechanism: ClassVar[str] = "thread per connection"
    task_per_connection: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Blocking sockets; the main thread blocks in accept(), each connection gets a thread "
        "that blocks in recv()"
    )

    def dispatch(self, sock: socket.socket) -> None:
        threading.Thread(target=self.handle, args=(sock,), daemon=True).start()
