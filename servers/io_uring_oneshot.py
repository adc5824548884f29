"""io-uring, ``style=oneshot``: one accept, one recv and one send at a time.

The way io_uring was first used for sockets, kept so the report can show what
the newer interface (``iobench.servers.io_uring``) buys: every operation is
submitted for one result, so each recv is submitted again after it
completes, with a fresh ``recv_size`` buffer of its own that the kernel fills
(so each idle connection holds one), and the loop submits and waits in two
calls. Backpressure: no new recv while a connection's unsent output is at
``max_pending_output``.
"""

from __future__ import annotations

import enum
import errno
import select
import socket
from collections.abc import Callable
from typing import Any

from iobench.servers.base import ServerModel, transform
from iobench.servers.exhaustion import OUT_OF_DESCRIPTORS, back_off, refuse_waiting
from iobench.servers.waker import Waker

# How long a stopping server waits for the operations still in flight to
# complete, once every socket is shut down, before it tears the ring down.
DRAIN_TIMEOUT = 0.5
RING_ENTRIES = 1024


class Op(enum.IntEnum):
    ACCEPT = 1
    RECV = 2
    SEND = 3
    WAKE = 4
    LISTEN = 5  # a poll for a waiting connection, instead of the accept at EMFILE


class Stream:
    """One client connection: its socket, unsent output and operations in flight."""

    __slots__ = ("closed", "pending", "read_closed", "received", "recv_posted", "sending", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0  # bytes, to count requests (work per request)
        self.pending = bytearray()  # transformed output not yet handed to a send
        self.sending = b""  # the bytes of the send in flight
        self.recv_posted = False
        self.read_closed = False
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Operations in flight hold the socket open in the kernel; shutting
            # it down makes them complete now rather than never.
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class OneShotLoop:
    """The io-uring model's ``style=oneshot`` loop: one operation per completion."""

    def __init__(self, model: ServerModel) -> None:
        import liburing

        self.uring = liburing
        self.listener = model.listener
        self.recv_size = model.recv_size
        self.max_pending_output = model.max_pending_output
        self.configure_client_socket = model.configure_client_socket
        self.name = model.name
        self.work = model.work
        self._running = True
        # shutdown() wakes the loop: a recv is always in flight on the waker.
        self._waker = Waker()
        self._wake_buffer = bytearray(64)
        # Every operation in flight, by the user_data token its completion carries,
        # with the buffer the kernel reads or fills: it must stay alive until then.
        self._in_flight: dict[int, tuple[Op, Stream | None, bytes | bytearray]] = {}
        self._next_token = 0
        self.streams: set[Stream] = set()
        self._ring = liburing.Ring()
        self._cqe = liburing.Cqe()

    def serve(self) -> None:
        uring = self.uring
        uring.io_uring_queue_init(RING_ENTRIES, self._ring)
        try:
            self._submit_accept()
            self._submit_wake_recv()
            while self._running:
                self._complete(self._wait())
        finally:
            self._close_all()
            uring.io_uring_queue_exit(self._ring)
            self._waker.close()

    def shutdown(self) -> None:
        self._running = False
        self._waker.wake()

    # -- the ring ---------------------------------------------------------

    def _submit(self, op: Op, stream: Stream | None, buffer: bytes | bytearray,
                prepare: Callable[[Any], None]) -> None:
        """Queue one operation; it is submitted with the next wait."""
        sqe = self.uring.io_uring_get_sqe(self._ring)
        if sqe is None:  # submission queue full: hand it to the kernel, then retry
            self.uring.io_uring_submit(self._ring)
            sqe = self.uring.io_uring_get_sqe(self._ring)
        prepare(sqe)
        self._next_token += 1
        sqe.user_data = self._next_token
        self._in_flight[self._next_token] = (op, stream, buffer)

    def _wait(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Submit what is queued, wait for a completion; (token, result) pairs.

        A failed operation's result is minus its errno, as the kernel reports it.
        """
        uring = self.uring
        # Submit and wait in two calls: when one io_uring_enter() both submits
        # and waits, a signal during the wait does not end it (the call reports
        # what it submitted and liburing waits again), so SIGTERM would go
        # unnoticed until some completion came.
        uring.io_uring_submit(self._ring)
        try:
            if timeout is None:
                uring.io_uring_wait_cqe(self._ring, self._cqe)
            else:
                uring.io_uring_wait_cqe_timeout(self._ring, self._cqe, uring.timespec(timeout))
        except InterruptedError:  # a signal: the caller looks at why
            return []
        except OSError as exc:
            if exc.errno == errno.ETIME:  # the timeout passed
                return []
            raise
        completed = []
        # One entry at a time: the binding's cqe[i] does not wrap at the end of
        # the ring, so a batch read past it returns garbage.
        for _ in range(uring.io_uring_cq_ready(self._ring)):
            uring.io_uring_peek_cqe(self._ring, self._cqe)
            entry = self._cqe[0]
            try:
                result = entry.res
            except OSError as exc:
                result = -(exc.errno or errno.EIO)
            completed.append((entry.user_data, result))
            uring.io_uring_cqe_seen(self._ring, entry)
        return completed

    def _complete(self, completed: list[tuple[int, int]]) -> None:
        for token, result in completed:
            op, stream, buffer = self._in_flight.pop(token)
            if op is Op.ACCEPT:
                self._accepted(result)
            elif op is Op.WAKE:
                if result > 0:
                    self._submit_wake_recv()
            elif op is Op.LISTEN:
                if self._running:
                    self._submit_accept()
            elif stream is not None and not stream.closed:
                if op is Op.RECV:
                    self._received(stream, buffer, result)
                else:
                    self._sent(stream, buffer, result)

    # -- what each completion means ---------------------------------------

    def _accepted(self, result: int) -> None:
        if not self._running:
            if result >= 0:
                socket.socket(fileno=result).close()
            return
        if result >= 0:
            sock = socket.socket(fileno=result)
            self.configure_client_socket(sock)
            stream = Stream(sock)
            self.streams.add(stream)
            self._submit_recv(stream)
        elif -result in OUT_OF_DESCRIPTORS:
            # At the limit an accept fails at once, connection or not: refuse
            # the ones that wait, then accept again only once another comes.
            refuse_waiting(self.listener, -result, self.name)
            self._submit(Op.LISTEN, None, b"", lambda sqe: self.uring.io_uring_prep_poll_add(
                sqe, self.listener.fileno(), select.POLLIN))
            return
        elif not refuse_waiting(self.listener, -result, self.name):
            back_off()  # not at once: the same accept would fail the same way
        self._submit_accept()

    def _received(self, stream: Stream, buffer: bytes | bytearray, result: int) -> None:
        stream.recv_posted = False
        if result < 0:  # reset by peer
            self._close(stream)
            return
        if result == 0:
            stream.read_closed = True
        else:
            if (work := self.work) is not None:  # inline: offload needs multishot
                work.run(work.completed(stream.received, result))
                stream.received += result
            stream.pending += transform(bytes(buffer[:result]))
        self._advance(stream)

    def _sent(self, stream: Stream, buffer: bytes | bytearray, result: int) -> None:
        stream.sending = b""
        if result < 0:
            self._close(stream)
            return
        if result < len(buffer):  # a short send: the rest goes first next time
            stream.pending[:0] = buffer[result:]
        self._advance(stream)

    def _advance(self, stream: Stream) -> None:
        """Start the next send and the next recv, or close after a half-close."""
        if stream.pending and not stream.sending:
            data = stream.sending = bytes(stream.pending)
            stream.pending.clear()
            self._submit(Op.SEND, stream, data, lambda sqe: self.uring.io_uring_prep_send(
                sqe, stream.sock.fileno(), data))
        if stream.read_closed:
            if not stream.sending:
                self._close(stream)  # the peer half-closed and has all its bytes
        elif not stream.recv_posted and \
                len(stream.pending) + len(stream.sending) < self.max_pending_output:
            self._submit_recv(stream)

    def _submit_accept(self) -> None:
        self._submit(Op.ACCEPT, None, b"", lambda sqe: self.uring.io_uring_prep_accept(
            sqe, self.listener.fileno()))

    def _submit_recv(self, stream: Stream) -> None:
        buffer = bytearray(self.recv_size)
        stream.recv_posted = True
        self._submit(Op.RECV, stream, buffer, lambda sqe: self.uring.io_uring_prep_recv(
            sqe, stream.sock.fileno(), buffer))

    def _submit_wake_recv(self) -> None:
        self._submit(Op.WAKE, None, self._wake_buffer, lambda sqe: self.uring.io_uring_prep_recv(
            sqe, self._waker.fileno(), self._wake_buffer))

    def _close(self, stream: Stream) -> None:
        stream.close()
        self.streams.discard(stream)

    def _close_all(self) -> None:
        """Close every connection and let the operations in flight finish.

        The kernel may write into a recv buffer until its completion arrives,
        so the buffers are kept until then (or until DRAIN_TIMEOUT).
        """
        for stream in list(self.streams):
            self._close(stream)
        for sock in (self.listener, self._waker.writer):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # completes the accept and the wake recv
            except OSError:
                pass
        rounds = 0
        while self._in_flight and rounds < 100:
            rounds += 1
            completed = self._wait(DRAIN_TIMEOUT)
            if not completed:
                break
            for token, _ in completed:
                self._in_flight.pop(token, None)
