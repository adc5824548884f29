"""busy-poll: the article's non-blocking server, done correctly.

Every socket is non-blocking. The loop asks the listener for a new connection
and every connection for data, again and again. When nothing is ready the
answer is EAGAIN and the loop simply asks again: it never sleeps and never
waits in the kernel, so it burns a whole core even when no client sends
anything.
"""

from __future__ import annotations

from typing import Any, ClassVar

from iobench.servers.base import Family, ServerModel, Watching
from iobench.servers.connection import Connection, accept_pending


class BusyPollServer(ServerModel):
    name: ClassVar[str] = "busy-poll"
    family: ClassVar[Family] = Family.NONBLOCKING
    mechanism: ClassVar[str] = "one thread, spinning"
    description: ClassVar[str] = (
        "Non-blocking sockets; tries accept() and recv() on every connection in a loop "
        "that never waits"
    )
    spins: ClassVar[bool] = True
    can_offload: ClassVar[bool] = True
    watching: ClassVar[Watching | None] = Watching.SCANS

    def __init__(self, listener: Any, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self.connections: list[Connection] = []
        self._running = True
        # offload=pool: the pass below collects the pool's answers.
        self.offload = self.start_offload(self.wake)

    def serve(self) -> None:
        self.listener.setblocking(False)
        try:
            self._serve()
        finally:
            if self.offload is not None:
                self.offload.close()

    def _serve(self) -> None:
        while self._running:
            new = accept_pending(self.listener, self, offload=self.offload)
            self.connections.extend(new)
            did_work = bool(new)
            if self.offload is not None:
                for conn, output in self.offload.completed():
                    conn.answered(output)
                    did_work = True
            closed = False
            for conn in self.connections:
                if conn.wants_read:
                    did_work |= conn.on_readable()
                if conn.wants_write:
                    did_work |= conn.on_writable()
                closed |= conn.closed
            if closed:
                self.connections = [c for c in self.connections if not c.closed]
            if not did_work:
                self.idle()
        for conn in self.connections:
            conn.close()

    def idle(self) -> None:
        """A full pass found nothing to do. A busy poller asks again at once."""

    def wake(self) -> None:
        """The offload pool has an answer. A busy poller's next pass finds it anyway."""

    def shutdown(self) -> None:
        self._running = False
