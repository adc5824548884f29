"""Non-blocking connection handling shared by every model that does not block.

Reading, transforming, buffering output that the peer has not taken yet,
partial sends, EAGAIN, EOF and resets are written once here. A model decides
only *when* to call :meth:`Connection.on_readable` and
:meth:`Connection.on_writable`; both are safe to call when the socket is not
ready (they then return False), which is what the polling models do.
"""

from __future__ import annotations

import socket

from iobench.servers.base import ServerModel, transform
from iobench.servers.exhaustion import back_off, refuse_waiting, warn
from iobench.servers.work import Offload, Work

__all__ = ["Connection", "accept_pending", "warn"]


class Connection:
    """One accepted client socket in non-blocking mode, with its pending output."""

    __slots__ = ("busy", "closed", "fd", "interest", "max_pending", "offload", "pending",
                 "read_closed", "received", "recv_size", "sock", "work")

    def __init__(self, sock: socket.socket, recv_size: int, max_pending: int,
                 work: Work | None = None, offload: Offload | None = None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.recv_size = recv_size
        self.max_pending = max_pending
        self.pending = bytearray()
        self.read_closed = False
        self.closed = False
        # Free for the model's own bookkeeping (the events it watches for).
        self.interest = 0
        # Work per request (see iobench.servers.work): bytes received so far
        # count the requests; under offload=pool, ``busy`` while the pool holds
        # this connection's request, during which it is not read, so answers
        # leave in order and a client cannot queue unbounded work.
        self.work = work
        self.offload = offload
        self.received = 0
        self.busy = False

    @property
    def wants_read(self) -> bool:
        """Not at EOF, and not holding back because the peer is not reading."""
        return not self.read_closed and not self.busy and len(self.pending) < self.max_pending

    @property
    def wants_write(self) -> bool:
        return bool(self.pending)

    def on_readable(self) -> bool:
        """Read once, queue the response and try to send it. True if anything happened."""
        try:
            data = self.sock.recv(self.recv_size)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset by peer, or any other socket error: drop the client
            self.close()
            return True
        if not data:
            self.read_closed = True
        elif self.work is None:
            self.pending += transform(data)
        else:
            requests = self.work.completed(self.received, len(data))
            self.received += len(data)
            if requests and self.offload is not None:
                self.busy = True
                self.offload.submit(self, requests, data)
                return True
            self.work.run(requests)
            self.pending += transform(data)
        self.on_writable()
        return True

    def answered(self, output: bytes) -> None:
        """The pool has done this connection's request: send its response."""
        self.busy = False
        if not self.closed:
            self.pending += output
            self.on_writable()

    def on_writable(self) -> bool:
        """Send as much pending output as the kernel takes. True if anything happened."""
        sent = 0
        if self.pending:
            try:
                sent = self.sock.send(self.pending)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.close()
                return True
            del self.pending[:sent]
        if self.read_closed and not self.pending:
            # The peer half-closed and has had all its bytes: closing sends our FIN.
            self.close()
            return True
        return sent > 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pending.clear()
            self.sock.close()


def accept_pending(
    listener: socket.socket, model: ServerModel, max_fd: int | None = None,
    offload: Offload | None = None
) -> list[Connection]:
    """Accept every connection waiting on a non-blocking listener.

    With ``max_fd`` (select's FD_SETSIZE), a connection whose descriptor the
    model cannot watch is closed at once, with a warning on stderr, instead of
    crashing the server. Each connection does ``model.work`` per request,
    inline or on ``offload``'s pool.
    """
    accepted: list[Connection] = []
    while True:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return accepted
        except OSError as exc:  # EMFILE, ENFILE, ECONNABORTED, ...
            if not refuse_waiting(listener, exc.errno, model.name):
                back_off()
            return accepted
        if max_fd is not None and sock.fileno() >= max_fd:
            warn("max_fd", f"descriptor {sock.fileno()} >= {max_fd}: {model.name} cannot "
                 "watch it; connections past the limit are closed")
            sock.close()
            continue
        model.configure_client_socket(sock)
        accepted.append(Connection(sock, model.recv_size, model.max_pending_output,
                                   model.work, offload))
