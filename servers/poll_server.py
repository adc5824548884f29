"""poll: readiness multiplexing with select.poll(); no FD_SETSIZE limit."""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any, ClassVar

from iobench.servers.base import Watching
from iobench.servers.readiness import READ, WRITE, ReadinessServer


class PollServer(ReadinessServer):
    name: ClassVar[str] = "poll"
    description: ClassVar[str] = (
        "poll() sleeps until a socket is ready; no descriptor limit, but the kernel still "
        "scans the whole list on every call"
    )
    watching: ClassVar[Watching | None] = Watching.SCANS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._poller = select.poll()

    def watch(self, fd: int, events: int) -> None:
        # register() on a registered descriptor replaces its mask.
        self._poller.register(fd, (select.POLLIN if events & READ else 0)
                              | (select.POLLOUT if events & WRITE else 0))

    def forget(self, fd: int) -> None:
        self._poller.unregister(fd)

    def wait(self) -> Iterable[tuple[int, int]]:
        # POLLHUP and POLLERR come whatever the mask: hand them to both sides,
        # which then see the EOF or the error and close (as selectors does).
        return [(fd, (READ if revents & ~select.POLLOUT else 0)
                 | (WRITE if revents & ~select.POLLIN else 0))
                for fd, revents in self._poller.poll()]
