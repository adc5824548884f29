"""uvloop: the asyncio model's very code on uvloop, the libuv-based event loop."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from iobench.servers.asyncio_server import AsyncioServer
from iobench.servers.base import Watching


class UvloopServer(AsyncioServer):
    name: ClassVar[str] = "uvloop"
    mechanism: ClassVar[str] = "one thread, libuv event loop with callbacks"
    description: ClassVar[str] = (
        "The asyncio model's Protocol on uvloop (libuv, epoll underneath): same code, a "
        "loop written in C"
    )
    watching: ClassVar[Watching | None] = Watching.IS_TOLD

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "uvloop is not installed (pip install iobench[uvloop])"
        return None

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        import uvloop

        return uvloop.new_event_loop()
