"""Deliberately faulty echo servers, to prove the load generator notices each fault.

Each is a loopback thread-per-connection server whose per-connection handler
misbehaves in one way. ``stop()`` closes every socket and joins every thread.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

Handler = Callable[[socket.socket], None]
JOIN_TIMEOUT = 5.0
RECV_SIZE = 65536


class FaultyServer:
    """A listening socket on 127.0.0.1 that runs ``handler`` on a thread per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed: stop
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self.lock:
                self.connections.append(conn)
                self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass  # the client went away, or stop() shut the socket down

    def stop(self) -> None:
        # shutdown() wakes an accept() blocked in another thread; close() alone does not.
        for sock in (self.listener,):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.acceptor.join(JOIN_TIMEOUT)
        with self.lock:
            connections, threads = list(self.connections), list(self.threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        for conn in connections:
            conn.close()


def upper_echo(conn: socket.socket) -> None:
    """A correct server: every byte back, uppercased."""
    while data := conn.recv(RECV_SIZE):
        conn.sendall(data.upper())


def plain_echo(conn: socket.socket) -> None:
    """A correct plain echo server (what --expect echo drives)."""
    while data := conn.recv(RECV_SIZE):
        conn.sendall(data)


def corrupt_byte_at(offset: int) -> Handler:
    """Uppercase echo that returns byte number ``offset`` of each connection wrong."""

    def handler(conn: socket.socket) -> None:
        position = 0
        while data := conn.recv(RECV_SIZE):
            reply = bytearray(data.upper())
            if position <= offset < position + len(reply):
                reply[offset - position] ^= 0x20  # back to lower case: one wrong byte
            position += len(reply)
            conn.sendall(reply)

    return handler


def drop_after(requests: int, *, reset: bool) -> Handler:
    """Answer ``requests`` reads, then close on the next one (with RST if ``reset``)."""

    def handler(conn: socket.socket) -> None:
        for _ in range(requests):
            data = conn.recv(RECV_SIZE)
            if not data:
                return
            conn.sendall(data.upper())
        conn.recv(RECV_SIZE)
        if reset:
            # SO_LINGER with a zero time-out makes close() send RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return handler


def half_reply_then_close(conn: socket.socket) -> None:
    """Send back only the first half of the first request, then close."""
    data = conn.recv(RECV_SIZE)
    conn.sendall(data[: len(data) // 2].upper())
    conn.close()


def stall_after(requests: int) -> Handler:
    """Answer ``requests`` reads, then read and never answer again."""

    def handler(conn: socket.socket) -> None:
        for _ in range(requests):
            data = conn.recv(RECV_SIZE)
            if not data:
                return
            conn.sendall(data.upper())
        while conn.recv(RECV_SIZE):
            pass

    return handler


def delayed_upper_echo(delay_s: float) -> Handler:
    """Uppercase echo that waits ``delay_s`` before every reply: a slow server."""

    def handler(conn: socket.socket) -> None:
        while data := conn.recv(RECV_SIZE):
            time.sleep(delay_s)
            conn.sendall(data.upper())

    return handler


class MessageCounter:
    """A correct uppercase echo that also notes when each whole message arrived.

    An independent count of what the load generator did: with fixed-size
    messages, every ``size`` bytes a connection delivers is one request, and
    the server's clock (CLOCK_MONOTONIC, shared by every process) times it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.arrivals: list[int] = []

    def __call__(self, conn: socket.socket) -> None:
        received = 0
        while data := conn.recv(RECV_SIZE):
            now = time.monotonic_ns()
            whole = (received + len(data)) // self.size - received // self.size
            received += len(data)
            if whole:
                with self.lock:
                    self.arrivals.extend([now] * whole)
            conn.sendall(data.upper())

    def snapshot(self) -> list[int]:
        with self.lock:
            return sorted(self.arrivals)


class SerialServer:
    """One client at a time, as a blocking server without threads serves them.

    Accepts a connection, echoes it uppercased until it closes or resets,
    then accepts the next: every other client waits behind the one it
    serves, and behind an idle one for ever. ``backlog`` small and
    ``accepting`` false make a listener that never accepts, whose queue fills.
    ``peers`` are the clients' addresses in the order served; ``resets`` how
    many ended with a reset rather than end of file.
    """

    def __init__(self, *, backlog: int = 128, accepting: bool = True) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port: int = self.listener.getsockname()[1]
        self.peers: list[tuple[str, int]] = []
        self.resets = 0
        self.current: socket.socket | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        if accepting:
            self.thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, peer = self.listener.accept()
            except OSError:
                return
            self.current = conn
            self.peers.append(peer)
            try:
                while data := conn.recv(RECV_SIZE):
                    conn.sendall(data.upper())
            except ConnectionResetError:
                self.resets += 1
            except OSError:
                pass
            finally:
                conn.close()
                self.current = None

    def stop(self) -> None:
        self.stopping = True
        for sock in (self.listener, self.current):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.thread.is_alive():
            self.thread.join(JOIN_TIMEOUT)
        self.listener.close()
