"""select: readiness multiplexing with select.select(), the article's recommendation."""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any, ClassVar

from iobench.servers.base import Watching
from iobench.servers.readiness import READ, WRITE, ReadinessServer


class SelectServer(ReadinessServer):
    name: ClassVar[str] = "select"
    description: ClassVar[str] = (
        "select() sleeps until a socket is ready; write interest only while output is pending"
    )
    watching: ClassVar[Watching | None] = Watching.SCANS
    # glibc's fd_set holds descriptors below FD_SETSIZE = 1024; CPython's
    # select.select() raises ValueError for a larger one.
    max_fd: ClassVar[int | None] = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def watch(self, fd: int, events: int) -> None:
        for fds, flag in ((self._readers, READ), (self._writers, WRITE)):
            if events & flag:
                fds.add(fd)
            else:
                fds.discard(fd)

    def forget(self, fd: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def wait(self) -> Iterable[tuple[int, int]]:
        readable, writable, _ = select.select(self._readers, self._writers, ())
        ready = dict.fromkeys(readable, READ)
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | WRITE
        return ready.items()
