"""threadpool: a connection holds a worker, so the ones beyond the pool wait."""

from __future__ import annotations

import socket

import pytest

from iobench.servers.process import ServerProcess

QUEUED_WAIT_S = 0.5


def round_trip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return sock.recv(len(payload))


def test_connections_beyond_the_pool_queue_until_a_worker_frees() -> None:
    with ServerProcess("threadpool", {"workers": 2}) as server:
        first, second, third = (socket.create_connection(server.address, timeout=5)
                                for _ in range(3))
        with first, second, third:
            assert round_trip(first, b"one") == b"ONE"
            assert round_trip(second, b"two") == b"TWO"
            # Accepted by the kernel and the main thread, but no worker is free.
            third.settimeout(QUEUED_WAIT_S)
            with pytest.raises(TimeoutError):
                round_trip(third, b"three")
            first.close()  # frees a worker, which takes the queued connection
            third.settimeout(5)
            assert third.recv(5) == b"THREE"
            assert round_trip(second, b"still") == b"STILL"


def test_workers_must_be_positive() -> None:
    from iobench.servers.base import ParamError
    from iobench.servers.threadpool import ThreadPoolServer

    with pytest.raises(ParamError, match="workers"):
        ThreadPoolServer.resolve_params({"workers": "0"})
