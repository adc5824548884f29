"""io-uring: completion-based I/O, Stevens' fifth (asynchronous) model.

The other models ask "which socket is ready?" and then do the I/O
themselves. This one hands the kernel the I/O itself through io_uring's
submission queue and later reads what was done from the completion queue;
the loop never calls recv() or send().

Written the way the io_uring maintainers recommend for networking
("io_uring and networking in 2023"): one multishot accept stays armed on the
listener and completes once per new connection; one multishot recv stays
armed on each connection and completes once per arrival of data, into a
buffer the kernel picks from a shared provided-buffer ring
(:mod:`iobench.servers.uring_buffers`), so an idle connection holds no
buffer; each loop turn makes one ``io_uring_enter`` that submits what the
last turn queued (the sends) and waits for the next completions, then
handles every completion ready as one batch. Sends stay one at a time per
connection (two in flight could complete out of order).

Backpressure: past ``max_pending_output`` of unsent output, the connection's
recv is cancelled, and armed again once the client has read.

Work per request (``work=``) runs in the loop as completions are handled,
unless ``offload=pool``: then a pool thread does it and writes to the waker,
whose recv completes and has the loop send the answer. Data a connection's
armed recv brings while its request is in the pool waits behind it, so
answers leave in order.

``--param style=oneshot`` runs the older way instead
(:mod:`iobench.servers.io_uring_oneshot`), so a run can show the difference.
Uses the ``liburing`` binding (``pip install iobench[io-uring]``).
"""

from __future__ import annotations

import errno
import select
import signal
import socket
import sys
from typing import Any, ClassVar

from iobench.servers.base import Family, Param, ParamError, ServerModel, Watching, transform
from iobench.servers.exhaustion import OUT_OF_DESCRIPTORS, back_off, refuse_waiting
from iobench.servers.waker import Waker

STYLES = ("multishot", "oneshot")
# Submission queue entries; the completion queue gets twice as many. A turn
# queues at most one send per connection with output, and the queue is
# flushed early when it fills, so this bounds a batch, not the connections.
RING_ENTRIES = 1024
# Shared receive buffers. The kernel fills as many as data and free buffers
# allow before the loop sees a completion, so the pool bounds what one turn
# can take in, as one recv() of recv_size does in the readiness models: 256 KiB
# keeps a client that never reads within max_pending_output plus one such
# intake. 4 KiB holds the matrix's largest message (4096 B) in one completion;
# a larger one arrives in several. Pages are backed only once written.
BUFFER_COUNT = 64
BUFFER_SIZE = 4096
BUFFER_GROUP = 0
# How long a stopping server waits for the operations still in flight to end
# once every socket is shut down, before it tears the ring down.
DRAIN_TIMEOUT = 0.5
# The operations each style submits, as liburing.probe() names them.
NEEDED_OPS = {
    "multishot": ("IORING_OP_ACCEPT", "IORING_OP_RECV", "IORING_OP_SEND",
                  "IORING_OP_ASYNC_CANCEL"),
    "oneshot": ("IORING_OP_ACCEPT", "IORING_OP_RECV", "IORING_OP_SEND"),
}

# What a completion is for, in the low bits of its user_data; the connection's
# number is above them. Numbers are never reused, so a late completion for a
# closed connection cannot be taken for its successor on the same descriptor.
# LISTEN: a poll for a waiting connection, armed instead of the accept at EMFILE.
ACCEPT, RECV, SEND, WAKE, CANCEL, LISTEN = range(6)
OP_BITS = 3
OP_MASK = (1 << OP_BITS) - 1


def parse_style(text: str) -> str:
    if text not in STYLES:
        raise ValueError(text)
    return text


class Stream:
    """One client connection: its socket, unsent output and operations in flight."""

    __slots__ = ("busy", "cancelling", "closed", "pending", "read_closed", "received",
                 "recv_armed", "sending", "sock", "token", "waiting")

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.token = number << OP_BITS
        self.pending = bytearray()  # transformed output not yet handed to a send
        self.sending = b""  # the bytes of the send in flight: alive until it completes
        self.recv_armed = False
        self.cancelling = False
        self.read_closed = False
        self.closed = False
        self.received = 0  # bytes, to count requests (work per request)
        self.busy = False  # offload=pool: the pool holds this stream's request
        self.waiting: list[tuple[int, bytes]] = []  # (requests, data) behind it

    @property
    def in_flight(self) -> bool:
        return self.recv_armed or bool(self.sending)


class MultishotLoop:
    """The ``style=multishot`` loop (the default); see the module docstring."""

    def __init__(self, model: ServerModel) -> None:
        import liburing

        self.uring = liburing
        self.model = model
        self.listener = model.listener
        self._running = True
        self._waker = Waker()
        self._wake_buffer = bytearray(64)
        self._accept_armed = False
        self._wake_armed = False
        self.streams: dict[int, Stream] = {}  # by connection number
        self._next_number = 0
        self._ring = liburing.Ring()
        self._cqe = liburing.Cqe()
        self._buffers: Any = None
        self.offload = model.start_offload(self._waker.wake)

    def serve(self) -> None:
        from iobench.servers.uring_buffers import BufferRing

        uring = self.uring
        init_ring(uring, self._ring, defer_taskrun=self.offload is None)
        # The liburing binding holds the GIL inside io_uring_enter(), so a pool
        # thread could not run while the loop waits there. With a pool the loop
        # submits, then waits in poll() on the ring's descriptor (which lets go
        # of the GIL) until a completion is posted. A ring that defers its
        # completion work (DEFER_TASKRUN) posts none until it is entered, so
        # that ring is made without it.
        ring_ready = None
        if self.offload is not None:
            ring_ready = select.poll()
            ring_ready.register(self._ring.ring_fd, select.POLLIN)
        self._buffers = BufferRing(self._ring.ring_fd, BUFFER_GROUP, BUFFER_COUNT, BUFFER_SIZE)
        # A signal that lands after the loop last looked but before it waits
        # would otherwise wait for the next completion: with the wake-up fd set,
        # the C-level handler writes to the waker, whose recv then completes.
        previous_wakeup = signal.set_wakeup_fd(self._waker.writer.fileno(),
                                               warn_on_full_buffer=False)
        try:
            self._arm_accept()
            self._arm_wake()
            while self._running:
                try:
                    if ring_ready is None:
                        uring.io_uring_submit_and_wait(self._ring, 1)
                    else:
                        uring.io_uring_submit(self._ring)
                        ring_ready.poll()
                except InterruptedError:  # a signal: its handler has run by now
                    pass
                self._complete_batch()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            try:
                if self.offload is not None:
                    self.offload.close()
                self._drain()
            finally:
                self._buffers.close()
                uring.io_uring_queue_exit(self._ring)
                self._waker.close()

    def shutdown(self) -> None:
        self._running = False
        self._waker.wake()

    # -- the ring ---------------------------------------------------------

    def _sqe(self) -> Any:
        """A free submission entry; it goes to the kernel with the next enter."""
        sqe = self.uring.io_uring_get_sqe(self._ring)
        if sqe is None:  # the queue is full: hand it over now
            self.uring.io_uring_submit(self._ring)
            sqe = self.uring.io_uring_get_sqe(self._ring)
        return sqe

    def _complete_batch(self) -> int:
        """Handle every completion ready, then free their entries and buffers at once."""
        uring, cqe = self.uring, self._cqe
        streams, buffers = self.streams, self._buffers
        f_more, f_buffer = uring.IORING_CQE_F_MORE, uring.IORING_CQE_F_BUFFER
        handled = 0
        for _ in uring.CqeIter(self._ring, cqe):
            entry = cqe[0]
            handled += 1
            user_data, flags = entry.user_data, entry.flags
            try:
                result = entry.res
            except OSError as exc:  # the binding raises for a negative result
                result = -(exc.errno or errno.EIO)
            op = user_data & OP_MASK
            if op == RECV:
                data = b""
                if flags & f_buffer:  # the buffer goes back whatever became of the stream
                    buffer_id = flags >> uring.IORING_CQE_BUFFER_SHIFT
                    if result > 0:
                        data = buffers.take(buffer_id, result)
                    buffers.give_back(buffer_id)
                stream = streams.get(user_data >> OP_BITS)
                if stream is not None:
                    self._received(stream, result, data, bool(flags & f_more))
            elif op == SEND:
                stream = streams.get(user_data >> OP_BITS)
                if stream is not None:
                    self._sent(stream, result)
            elif op == ACCEPT:
                self._accepted(result, bool(flags & f_more))
            elif op == LISTEN:
                self._accept_armed = False
                if self._running:
                    self._arm_accept()
            elif op == WAKE:
                self._wake_armed = False
                self._waker.drain()
                self._answer()
                if self._running and result > 0:
                    self._arm_wake()
        if handled:
            uring.io_uring_cq_advance(self._ring, handled)
            buffers.publish()
        return handled

    # -- what each completion means ---------------------------------------

    def _accepted(self, result: int, more: bool) -> None:
        if not more:
            self._accept_armed = False
        if result >= 0:
            sock = socket.socket(fileno=result)
            if not self._running:
                sock.close()
                return
            self.model.configure_client_socket(sock)
            self._next_number += 1
            stream = Stream(sock, self._next_number)
            self.streams[self._next_number] = stream
            self._arm_recv(stream)
        elif self._running and -result in OUT_OF_DESCRIPTORS:
            # At the limit an accept fails at once, connection or not (the kernel
            # takes the descriptor first), and EMFILE ends the multishot accept.
            # Re-armed now it would fail again now: refuse the connections that
            # wait, then poll the listener and re-arm only when one comes.
            refuse_waiting(self.listener, -result, self.model.name)
            self._arm_listen()
            return
        elif self._running and not refuse_waiting(self.listener, -result, self.model.name):
            back_off()
        if not self._accept_armed and self._running:
            self._arm_accept()

    def _received(self, stream: Stream, result: int, data: bytes, more: bool) -> None:
        if not more:
            stream.recv_armed = False
            stream.cancelling = False
        if stream.closed:
            self._forget_if_done(stream)
            return
        if result > 0:
            work = self.model.work
            if work is None:
                self._output(stream, transform(data))
            else:
                requests = work.completed(stream.received, result)
                stream.received += result
                if stream.busy or (requests and self.offload is not None):
                    self._offload(stream, requests, data)
                else:
                    work.run(requests)
                    self._output(stream, transform(data))
        elif result == 0:
            stream.read_closed = True
            if not stream.sending and not stream.busy:
                self._close(stream)  # the peer half-closed and has all its bytes
        elif result == -errno.ENOBUFS:
            # Every shared buffer was taken in this turn: the recv ended and is
            # armed again below, once the batch has given its buffers back.
            pass
        elif result != -errno.ECANCELED:  # reset by peer, or another socket error
            self._close(stream)
        if not stream.recv_armed and not stream.closed and self._wants_read(stream):
            self._arm_recv(stream)

    def _output(self, stream: Stream, output: bytes) -> None:
        """Send a response, or queue it behind the send in flight."""
        if stream.sending:
            stream.pending += output
            if len(stream.pending) + len(stream.sending) >= self.model.max_pending_output:
                self._hold_back(stream)
        else:
            self._send(stream, output)

    def _offload(self, stream: Stream, requests: int, data: bytes) -> None:
        """Hand a request to the pool, or queue it behind the one the pool holds."""
        assert self.offload is not None
        if stream.busy:
            stream.waiting.append((requests, data))
            if sum(len(waiting) for _, waiting in stream.waiting) >= \
                    self.model.max_pending_output:
                self._hold_back(stream)
            return
        stream.busy = True
        self.offload.submit(stream, requests, data)

    def _answer(self) -> None:
        """Send the answers the pool has finished, then hand it what waited behind them."""
        if self.offload is None:
            return
        # The pool hands back the owner each request was submitted with: a Stream here.
        answers: list[tuple[Stream, bytes]] = self.offload.completed()
        for stream, output in answers:
            stream.busy = False
            if stream.closed or self.streams.get(stream.token >> OP_BITS) is not stream:
                continue
            self._output(stream, output)
            while stream.waiting and not stream.busy:
                requests, data = stream.waiting.pop(0)
                if requests:
                    stream.busy = True
                    self.offload.submit(stream, requests, data)
                else:
                    self._output(stream, transform(data))
            if stream.read_closed and not stream.busy and not stream.sending:
                self._close(stream)
            elif not stream.recv_armed and not stream.closed and self._wants_read(stream):
                self._arm_recv(stream)

    def _sent(self, stream: Stream, result: int) -> None:
        sent, stream.sending = stream.sending, b""
        if stream.closed:
            self._forget_if_done(stream)
            return
        if result < 0:
            self._close(stream)
            return
        if result < len(sent):  # a short send: the rest goes first
            stream.pending[:0] = sent[result:]
        if stream.pending:
            output = bytes(stream.pending)
            stream.pending.clear()
            self._send(stream, output)
        elif stream.read_closed and not stream.busy:
            self._close(stream)
            return
        if not stream.recv_armed and self._wants_read(stream):
            self._arm_recv(stream)

    def _wants_read(self, stream: Stream) -> bool:
        queued = len(stream.pending) + len(stream.sending)
        if stream.waiting:
            queued += sum(len(data) for _, data in stream.waiting)
        return not stream.read_closed and queued < self.model.max_pending_output

    # -- submissions ------------------------------------------------------

    def _send(self, stream: Stream, output: bytes) -> None:
        stream.sending = output
        sqe = self._sqe()
        self.uring.io_uring_prep_send(sqe, stream.sock.fileno(), output, 0)
        sqe.user_data = stream.token | SEND

    def _arm_recv(self, stream: Stream) -> None:
        uring = self.uring
        sqe = self._sqe()
        uring.io_uring_prep_recv_multishot(sqe, stream.sock.fileno(), None, 0)
        sqe.flags = uring.IOSQE_BUFFER_SELECT
        uring.io_uring_sqe_set_buf_group(sqe, BUFFER_GROUP)
        sqe.user_data = stream.token | RECV
        stream.recv_armed = True

    def _hold_back(self, stream: Stream) -> None:
        """Stop reading from a client that does not read: cancel its armed recv."""
        if stream.recv_armed and not stream.cancelling:
            stream.cancelling = True
            sqe = self._sqe()
            self.uring.io_uring_prep_cancel64(sqe, stream.token | RECV, 0)
            sqe.user_data = CANCEL

    def _arm_accept(self) -> None:
        sqe = self._sqe()
        self.uring.io_uring_prep_multishot_accept(sqe, self.listener.fileno(), None, 0)
        sqe.user_data = ACCEPT
        self._accept_armed = True

    def _arm_listen(self) -> None:
        sqe = self._sqe()
        self.uring.io_uring_prep_poll_add(sqe, self.listener.fileno(), select.POLLIN)
        sqe.user_data = LISTEN
        self._accept_armed = True  # stopping waits for it as for the accept

    def _arm_wake(self) -> None:
        sqe = self._sqe()
        self.uring.io_uring_prep_recv(sqe, self._waker.fileno(), self._wake_buffer, 0)
        sqe.user_data = WAKE
        self._wake_armed = True

    # -- closing ----------------------------------------------------------

    def _close(self, stream: Stream) -> None:
        """Close the socket; keep the stream until its operations in flight end.

        An armed recv or a send in flight holds the socket in the kernel, and a
        send reads from ``stream.sending``: shutting the socket down makes them
        complete now, and the stream stays known until they have.
        """
        if not stream.closed:
            stream.closed = True
            stream.pending.clear()
            try:
                stream.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            stream.sock.close()
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: Stream) -> None:
        if not stream.in_flight:
            self.streams.pop(stream.token >> OP_BITS, None)

    def _drain(self) -> None:
        """Close every connection and wait (bounded) for the operations in flight."""
        for stream in list(self.streams.values()):
            self._close(stream)
        for sock in (self.listener, self._waker.writer):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # ends the armed accept and the wake recv
            except OSError:
                pass
        timeout = self.uring.timespec(DRAIN_TIMEOUT)
        while self.streams or self._accept_armed or self._wake_armed:
            try:
                self.uring.io_uring_submit_and_wait_timeout(self._ring, self._cqe, 1, timeout)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.ETIME:
                    return  # still in flight: the ring's teardown cancels them
                raise
            if not self._complete_batch():
                return


class IoUringServer(ServerModel):
    name: ClassVar[str] = "io-uring"
    family: ClassVar[Family] = Family.ASYNCHRONOUS
    mechanism: ClassVar[str] = "one thread, completion queue"
    description: ClassVar[str] = (
        "io_uring: multishot accept and multishot recv into a shared buffer ring, one "
        "io_uring_enter per loop turn; style=oneshot submits one operation per completion"
    )
    watching: ClassVar[Watching | None] = Watching.IS_TOLD
    params: ClassVar[tuple[Param, ...]] = (
        Param("style", "multishot", "multishot (the modern interface) or oneshot (one "
              "operation per completion)", parse=parse_style),
    )

    can_offload: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        if options["offload"] == "pool" and options["style"] == "oneshot":
            raise ParamError("model 'io-uring': offload=pool needs style=multishot")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import liburing
        except ImportError:
            return "the liburing binding is not installed (pip install iobench[io-uring])"
        ring = liburing.Ring()
        try:
            liburing.io_uring_queue_init(8, ring)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else "?"
            return f"io_uring_setup failed: {code} ({exc.strerror}){io_uring_sysctl_hint()}"
        try:
            supported = liburing.probe() or {}
        finally:
            liburing.io_uring_queue_exit(ring)
        missing = [op for op in NEEDED_OPS["multishot"] if not supported.get(op)]
        if missing:
            return f"this kernel's io_uring lacks {', '.join(missing)}"
        return None

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        super().__init__(listener, **params)
        if self.options["style"] == "oneshot":
            from iobench.servers.io_uring_oneshot import OneShotLoop

            self._loop: MultishotLoop | Any = OneShotLoop(self)
        else:
            self._loop = MultishotLoop(self)

    def serve(self) -> None:
        self._loop.serve()

    def shutdown(self) -> None:
        self._loop.shutdown()


def init_ring(uring: Any, ring: Any, defer_taskrun: bool = True) -> None:
    """Set the ring up as recommended for one thread serving sockets.

    SINGLE_ISSUER with DEFER_TASKRUN: the kernel runs completion work only when
    this thread enters to wait, in one batch, instead of interrupting it. Kernels
    before 6.1 lack the flags; the plain ring works there too. Without
    ``defer_taskrun`` completions are posted as they happen, so a poll() on the
    ring's descriptor sees them.
    """
    flags = uring.IORING_SETUP_SINGLE_ISSUER
    if defer_taskrun:
        flags |= uring.IORING_SETUP_DEFER_TASKRUN
    try:
        uring.io_uring_queue_init(RING_ENTRIES, ring, flags)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        uring.io_uring_queue_init(RING_ENTRIES, ring)


def io_uring_sysctl_hint() -> str:
    """The kernel.io_uring_disabled setting, when it is what forbids io_uring."""
    if not sys.platform.startswith("linux"):
        return ""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as setting:
            value = setting.read().strip()
    except OSError:
        return ""
    return f" (kernel.io_uring_disabled={value})" if value != "0" else ""
