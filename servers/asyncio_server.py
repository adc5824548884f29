"""asyncio: the standard library's event loop, with a protocol per connection.

Underneath it is readiness multiplexing (the selector loop waits in epoll on
Linux); what the model adds is the mechanism, an event loop that calls back
into :class:`UpperEchoProtocol`. The protocol is a ``BufferedProtocol``,
the interface asyncio offers for speed: the loop reads with ``recv_into()``
into one buffer the server owns. A plain ``Protocol`` gets each read as a new
``bytes`` of the transport's 256 KiB ``max_size``, which CPython's allocator
maps, shrinks and unmaps: an mmap, an mremap and a munmap per request,
measured on this suite's closed loop with Python 3.11 (3 of asyncio's 5
system calls per request). Its flow control is the backpressure rule:
when a transport's write buffer passes ``max_pending_output`` the loop calls
``pause_writing()``, and the protocol stops reading that client.

Work per request (``work=``) runs in the callback, blocking the loop, unless
``offload=pool``: then the protocol hands it to ``run_in_executor()`` on a
pool of ``pool`` threads, the asyncio documentation's advice for blocking
calls, and writes the answer when the future is done; what the client sends
meanwhile waits behind it, so responses leave in order.
"""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, cast

from iobench.servers.base import Family, ServerModel, transform
from iobench.servers.exhaustion import OUT_OF_DESCRIPTORS, OUT_OF_MEMORY, RefusingListener, warn


class UpperEchoProtocol(asyncio.BufferedProtocol):
    """One connection: uppercase what arrives, write it back, mind the buffer."""

    def __init__(self, server: AsyncioServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.received = 0  # bytes, to count requests (work per request)
        # offload=pool: True while the pool holds this connection's request.
        # What arrives meanwhile (a pipelining client) waits in ``queued`` so
        # responses leave in order; reading pauses only if it grows past
        # max_pending_output, so a closed-loop client costs no pause and resume.
        self.busy = False
        self.queued: list[tuple[int, bytes]] = []
        self.queued_bytes = 0
        self.queue_paused = False
        self.write_paused = False
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.server.configure_client_socket(transport.get_extra_info("socket"))
        limit = self.server.max_pending_output
        self.transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.server.transports.add(self.transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One buffer for every connection: the loop is one thread, and it hands
        # the bytes over (buffer_updated) before it reads from another socket.
        return self.server.receive_buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self.transport is not None
        work = self.server.work
        if work is None:
            self.transport.write(transform(self.server.receive_buffer[:nbytes].tobytes()))
            return
        data = self.server.receive_buffer[:nbytes].tobytes()
        requests = work.completed(self.received, nbytes)
        self.received += nbytes
        if self.server.pool is None:
            work.run(requests)
            self.transport.write(transform(data))
        elif self.busy:
            self.queued.append((requests, data))
            self.queued_bytes += nbytes
            if self.queued_bytes >= self.server.max_pending_output and not self.queue_paused:
                self.queue_paused = True
                self.transport.pause_reading()
        elif requests:
            self._offload(requests, data)
        else:
            self.transport.write(transform(data))

    def _offload(self, requests: int, data: bytes) -> None:
        """The asyncio documentation's idiom for a blocking call: run_in_executor()."""
        assert self.server.work is not None
        self.busy = True
        loop = asyncio.get_running_loop()
        answer = loop.run_in_executor(self.server.pool, self.server.work.answer, requests, data)
        answer.add_done_callback(self._answered)

    def _answered(self, answer: asyncio.Future[bytes]) -> None:
        assert self.transport is not None
        self.busy = False
        if answer.cancelled() or self.transport.is_closing():
            return
        self.transport.write(answer.result())
        while self.queued and not self.busy:
            requests, data = self.queued.pop(0)
            self.queued_bytes -= len(data)
            if requests:
                self._offload(requests, data)
            else:
                self.transport.write(transform(data))
        if self.busy:
            return
        if self.eof:
            self.transport.close()  # after the buffered output, as eof_received's False does
        elif self.queue_paused and not self.write_paused:
            self.queue_paused = False
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        # False: the transport closes itself once the buffered output is sent;
        # with a request still in the pool, it stays open until that is answered.
        if self.busy:
            self.eof = True
            return True
        return False

    def pause_writing(self) -> None:
        assert self.transport is not None
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        self.write_paused = False
        if not self.queue_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.transports.discard(self.transport)


class AsyncioServer(ServerModel):
    name: ClassVar[str] = "asyncio"
    family: ClassVar[Family] = Family.MULTIPLEXING
    mechanism: ClassVar[str] = "one thread, event loop with callbacks"
    can_offload: ClassVar[bool] = True
    description: ClassVar[str] = (
        "asyncio's standard event loop with a BufferedProtocol per connection; readiness "
        "multiplexing underneath (epoll on Linux), flow control by pause_writing()"
    )

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        self.transports: set[asyncio.Transport] = set()
        self.receive_buffer = memoryview(bytearray(self.recv_size))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_requested = False
        # offload=pool: run_in_executor()'s pool (the loop wakes itself on its answers).
        self.pool: ThreadPoolExecutor | None = None
        if self.work is not None and self.options["offload"] == "pool":
            self.pool = ThreadPoolExecutor(self.options["pool"], thread_name_prefix="offload")

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop implementation: the one thing the uvloop model changes."""
        return asyncio.new_event_loop()

    def serve(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
                runner.run(self._serve())
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)

    def accepting_socket(self) -> socket.socket:
        """The listener the loop accepts on: one that refuses at the descriptor limit.

        A duplicate of the harness's listener (which the harness closes) that
        the loop owns and closes.
        """
        listener = RefusingListener(self.listener.family, self.listener.type,
                                    self.listener.proto, fileno=os.dup(self.listener.fileno()))
        listener.model_name = self.name
        return listener

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._loop_error)
        self._stopped = asyncio.Event()
        if self._stop_requested:  # SIGTERM came before the loop ran
            return
        server = await self._loop.create_server(lambda: UpperEchoProtocol(self),
                                                sock=self.accepting_socket(),
                                                backlog=self.backlog)
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for transport in list(self.transports):
                transport.abort()
            await server.wait_closed()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of descriptors, warn once: the loop itself stops accepting for a second.

        asyncio's selector loop removes the listener at EMFILE and retries a
        second later, so it does not spin, but it reports every retry with a
        traceback; one warning says the same.
        """
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS | OUT_OF_MEMORY:
            warn("accept:descriptors", f"{self.name}: out of file descriptors ({exc.strerror}); "
                 "the loop stops accepting for a second at a time until clients leave")
            return
        loop.default_exception_handler(context)

    def shutdown(self) -> None:
        self._stop_requested = True
        if self._loop is not None and self._stopped is not None:
            # Thread-safe, and it writes to the loop's self-pipe, so a loop
            # asleep in epoll_wait() wakes at once.
            self._loop.call_soon_threadsafe(self._stopped.set)
