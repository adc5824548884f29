"""io-uring's two styles: both keep the protocol contract; multishot holds no buffer per client.

The conformance suite runs the default style (multishot); the contract tests
are run here again against ``style=oneshot``, and the difference the styles
exist to show, memory per idle connection, is measured in one run.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from iobench.servers.io_uring import BUFFER_COUNT, IoUringServer
from iobench.servers.process import ServerProcess
from tests.servers.test_conformance import (
    connect,
    round_trip,
    test_200_connections_50_round_trips_each,
    test_client_that_never_reads_is_held_back,
    test_half_close_gets_full_response_then_eof,
    test_hello_comes_back_uppercased,
    test_one_mebibyte_of_every_byte_value,
    test_reset_client_does_not_disturb_others,
)

pytestmark = pytest.mark.skipif(IoUringServer.unavailable_reason() is not None,
                                reason=f"io-uring: {IoUringServer.unavailable_reason()}")

__all__ = [  # collected here against the fixture below
    "test_200_connections_50_round_trips_each",
    "test_client_that_never_reads_is_held_back",
    "test_half_close_gets_full_response_then_eof",
    "test_hello_comes_back_uppercased",
    "test_one_mebibyte_of_every_byte_value",
    "test_reset_client_does_not_disturb_others",
]

IDLE_CONNECTIONS = 1000


@pytest.fixture(params=["oneshot", "multishot"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess("io-uring", {"style": request.param}) as proc:
        yield proc


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        IoUringServer.resolve_params({"style": "sometimes"})


def test_more_clients_at_once_than_shared_buffers() -> None:
    """A burst that takes every shared buffer ends recvs with ENOBUFS; they are re-armed."""
    clients = 4 * BUFFER_COUNT
    with ServerProcess("io-uring") as server:
        socks = [connect(server.address) for _ in range(clients)]
        try:
            for rounds in range(3):
                for index, sock in enumerate(socks):
                    sock.sendall(f"burst {rounds} {index:04d}".encode())
                for index, sock in enumerate(socks):
                    expected = f"BURST {rounds} {index:04d}".encode()
                    got = b""
                    while len(got) < len(expected):
                        chunk = sock.recv(len(expected) - len(got))
                        assert chunk, f"client {index} got EOF after {got!r}"
                        got += chunk
                    assert got == expected
        finally:
            for sock in socks:
                sock.close()
        assert server.alive()


def _pss(pid: int) -> int:
    return psutil.Process(pid).memory_full_info().pss


def _idle_growth(style: str, count: int) -> int:
    """PSS the server gains while ``count`` connections sit idle (after one round trip)."""
    with ServerProcess("io-uring", {"style": style}) as server:
        assert round_trip(server.address, b"warm") == b"WARM"
        before = _pss(server.pid)
        socks = []
        try:
            for _ in range(count):
                socks.append(socket.create_connection(server.address, timeout=10))
            assert round_trip(server.address, b"all in") == b"ALL IN"  # all accepted by now
            time.sleep(0.2)
            return _pss(server.pid) - before
        finally:
            for sock in socks:
                sock.close()


def test_multishot_holds_no_buffer_per_idle_connection() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 100:
        pytest.skip(f"RLIMIT_NOFILE {soft} is below {IDLE_CONNECTIONS + 100}")
    multishot = _idle_growth("multishot", IDLE_CONNECTIONS)
    oneshot = _idle_growth("oneshot", IDLE_CONNECTIONS)
    per_connection = multishot / IDLE_CONNECTIONS
    # oneshot keeps a recv_size (64 KiB) buffer armed on every connection.
    assert oneshot / IDLE_CONNECTIONS > 32 * 1024, f"oneshot grew {oneshot / 2**20:.1f} MiB"
    assert per_connection < 2048, (
        f"multishot grew {per_connection:.0f} B per idle connection "
        f"(oneshot {oneshot / IDLE_CONNECTIONS:.0f} B)")
