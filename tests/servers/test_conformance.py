"""The protocol contract, checked for every registered model.

A model added to servers/registry.py is tested here automatically.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import struct
import threading
import time

import pytest

from iobench.servers.process import ServerProcess
from tests.helpers import tree_rss

IO_TIMEOUT = 10.0


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def round_trip(address: tuple[str, int], payload: bytes) -> bytes:
    with connect(address) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def test_hello_comes_back_uppercased(server: ServerProcess) -> None:
    assert round_trip(server.address, b"hello") == b"HELLO"


def test_one_mebibyte_of_every_byte_value(server: ServerProcess) -> None:
    rng = random.Random(1)
    payload = bytes(range(256)) + rng.randbytes(1024 * 1024 - 256)
    received = bytearray()
    with connect(server.address) as sock:

        def read_all() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        sock.sendall(payload)
        reader.join(IO_TIMEOUT)
    assert not reader.is_alive()
    assert bytes(received) == payload.upper()


async def _converse(address: tuple[str, int], seed: int, rounds: int) -> int:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(*address)
    verified = 0
    try:
        for _ in range(rounds):
            payload = rng.randbytes(rng.randint(1, 16 * 1024))
            writer.write(payload)
            response = await reader.readexactly(len(payload))
            assert response == payload.upper()
            verified += len(response)
    finally:
        writer.close()
        await writer.wait_closed()
    return verified


def test_200_connections_50_round_trips_each(server: ServerProcess) -> None:
    connections, rounds = 200, 50

    async def main() -> list[int]:
        tasks = [_converse(server.address, seed, rounds) for seed in range(connections)]
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)

    verified = asyncio.run(main())
    assert len(verified) == connections
    assert all(count > 0 for count in verified)


def test_half_close_gets_full_response_then_eof(server: ServerProcess) -> None:
    payload = random.Random(2).randbytes(300_000)
    with connect(server.address) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        response = recv_exactly(sock, len(payload))
        assert sock.recv(1) == b""  # EOF after the full response
    assert response == payload.upper()


def test_reset_client_does_not_disturb_others(server: ServerProcess) -> None:
    with connect(server.address) as steady:
        steady.sendall(b"before")
        assert recv_exactly(steady, 6) == b"BEFORE"
        rude = connect(server.address)
        rude.sendall(os.urandom(200_000))
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()
        time.sleep(0.2)
        for _ in range(20):
            steady.sendall(b"after")
            assert recv_exactly(steady, 5) == b"AFTER"
    assert server.alive()
    assert round_trip(server.address, b"new") == b"NEW"


def test_client_that_never_reads_is_held_back(server: ServerProcess) -> None:
    """Backpressure: 16 MiB sent and never read must not pile up in the server."""
    total, limit = 16 * 1024 * 1024, 64 * 1024 * 1024
    rss_before = tree_rss(server.pid)
    hog = connect(server.address)
    hog.settimeout(0.2)
    chunk = b"x" * 65536
    sent, deadline = 0, time.monotonic() + 4.0
    last_progress = time.monotonic()
    try:
        # Send until all 16 MiB are out, or the server has taken nothing for 1 s.
        while sent < total and time.monotonic() < deadline:
            try:
                sent += hog.send(chunk)
                last_progress = time.monotonic()
            except TimeoutError:  # the server stopped reading: what we want to see
                if time.monotonic() - last_progress > 1.0:
                    break
        assert round_trip(server.address, b"still here") == b"STILL HERE"
        growth = tree_rss(server.pid) - rss_before
    finally:
        hog.close()
    assert growth <= limit, f"server grew by {growth / 2**20:.1f} MiB"
    assert server.alive()


def test_sigterm_exits_zero_promptly_and_frees_the_port(model_name: str) -> None:
    server = ServerProcess(model_name)
    try:
        with connect(server.address) as sock:
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"PING"
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            code = server.proc.wait(timeout=5)
            elapsed = time.monotonic() - started
        assert code == 0, server.stderr_text()
        assert elapsed < 2.0
        with ServerProcess(model_name, port=server.port) as again:
            assert again.port == server.port
            assert round_trip(again.address, b"back") == b"BACK"
    finally:
        server.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_sigint_also_stops_cleanly(model_name: str, sig: int) -> None:
    with ServerProcess(model_name) as server:
        server.signal(sig)
        assert server.proc.wait(timeout=5) == 0
