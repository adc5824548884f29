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

__all__ = ["Connection", "accept_pending", "warn"]


class Connection:
    """One accepted client socket in non-blocking mode, with its pending output."""

    __slots__ = ("closed", "fd", "interest", "max_pending", "pending", "read_closed", "recv_size",
                 "sock")

    def __init__(self, sock: socket.socket, recv_size: int, max_pending: int) -> None:
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

    @property
    def wants_read(self) -> bool:
        """Not at EOF, and not holding back because the peer is not reading."""
        return not self.read_closed and len(self.pending) < self.max_pending

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
        else:
            self.pending += transform(data)
        self.on_writable()
        return True

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
    listener: socket.socket, model: type[ServerModel], max_fd: int | None = None
) -> list[Connection]:
    """Accept every connection waiting on a non-blocking listener.

    With ``max_fd`` (select's FD_SETSIZE), a connection whose descriptor the
    model cannot watch is closed at once, with a warning on stderr, instead of
    crashing the server.
    """
    accepted = []
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
        accepted.append(Connection(sock, model.recv_size, model.max_pending_output))
