"""epoll: readiness multiplexing with select.epoll(), Linux's O(ready) interface."""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any, ClassVar

from iobench.servers.base import Watching
from iobench.servers.readiness import READ, WRITE, ReadinessServer


class EpollServer(ReadinessServer):
    name: ClassVar[str] = "epoll"
    description: ClassVar[str] = (
        "epoll_wait() sleeps until a socket is ready; the kernel keeps the interest list, so a "
        "wait costs by ready sockets, not watched ones (level-triggered)"
    )
    watching: ClassVar[Watching | None] = Watching.IS_TOLD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoll = select.epoll()
        self._watched: set[int] = set()
        # Added to the listener's mask: prefork's listener=exclusive sets
        # EPOLLEXCLUSIVE (a listener's mask is set once, never modified).
        self.listener_events = 0

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if hasattr(select, "epoll") else "select.epoll exists on Linux only"

    def serve(self) -> None:
        try:
            super().serve()
        finally:
            self._epoll.close()

    def watch(self, fd: int, events: int) -> None:
        mask = (select.EPOLLIN if events & READ else 0) | (select.EPOLLOUT if events & WRITE else 0)
        if fd in self._watched:
            self._epoll.modify(fd, mask)
        else:
            if fd == self.listener.fileno():
                mask |= self.listener_events
            self._epoll.register(fd, mask)
            self._watched.add(fd)

    def forget(self, fd: int) -> None:
        self._watched.discard(fd)
        try:
            self._epoll.unregister(fd)
        except OSError:  # already closed: closing removed it from the epoll set
            pass

    def wait(self) -> Iterable[tuple[int, int]]:
        return [(fd, (READ if revents & ~select.EPOLLOUT else 0)
                 | (WRITE if revents & ~select.EPOLLIN else 0))
                for fd, revents in self._epoll.poll()]
