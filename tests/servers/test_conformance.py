"""The protocol contract, checked for every registered model.

A model added to servers/registry.py is tested here automatically.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import select
import signal
import socket
import struct
import termios
import threading
import time

import pytest

from iobench.servers.base import ServerModel
from iobench.servers.process import ServerProcess
from iobench.servers.registry import get_model
from tests.helpers import tree_uss

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


# The largest single read any model makes: asyncio's selector transport reads up
# to 256 KiB at once (``_SelectorTransport.max_size``); the others read recv_size.
LARGEST_READ = max(ServerModel.recv_size, 256 * 1024)
# How much a client sends at most: far past anything the kernel buffers on loopback
# once the receiver stops reading, so a server without backpressure cannot stall it.
HOG_CAP = 96 * 1024 * 1024


def _queues(local: tuple[str, int], remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the kernel socket ``local`` -> ``remote_port``.

    Read from /proc/net/tcp, which lists every TCP socket of this network
    namespace, the server's side of a loopback connection included.
    """
    want_local = f"{local[1]:04X}"
    want_remote = f"{remote_port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1].endswith(":" + want_local) and fields[2].endswith(":" + want_remote):
                tx_queue, rx_queue = (int(value, 16) for value in fields[4].split(":"))
                return tx_queue, rx_queue
    return None


def _client_queues(sock: socket.socket) -> tuple[int, int]:
    """(unsent, unread) bytes of a client socket: SIOCOUTQ and SIOCINQ."""
    out_queue = struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]
    in_queue = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
    return out_queue, in_queue


def _held_by_server(sock: socket.socket, server: ServerProcess, sent: int) -> int:
    """Bytes the server process holds: taken from the kernel, not yet handed back.

    Every byte the client sent is in exactly one place once the connection is
    still: the client's send queue, the server's receive queue, the server
    process, the server's send queue or the client's receive queue. The kernel
    counts all but the third, so the third is the rest.
    """
    for _ in range(50):
        before = (_client_queues(sock), _queues(server.address, sock.getsockname()[1]))
        time.sleep(0.1)
        after = (_client_queues(sock), _queues(server.address, sock.getsockname()[1]))
        if before == after:  # nothing in flight: the figures add up
            break
    (client_out, client_in), server_queues = after
    assert server_queues is not None, "the server's side of the connection is not listed"
    server_tx, server_rx = server_queues
    return sent - client_out - server_rx - server_tx - client_in


def test_client_that_never_reads_is_held_back(server: ServerProcess) -> None:
    """Backpressure: a client that sends and never reads stalls, and costs the server
    no more than its output bound (``max_pending_output``) plus one read.

    A server without backpressure keeps reading: the sender never stalls and the
    server holds everything the kernel does not.
    """
    model = get_model(server.model)
    bound = model.max_pending_output + LARGEST_READ
    uss_before = tree_uss(server.pid)
    hog = connect(server.address)
    hog.setblocking(False)
    chunk = b"x" * 65536
    sent, deadline = 0, time.monotonic() + 8.0
    last_progress = time.monotonic()
    try:
        # Send until the server has taken nothing for 0.5 s, or the cap, or the deadline.
        while sent < HOG_CAP and time.monotonic() < deadline:
            try:
                sent += hog.send(chunk)
                last_progress = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - last_progress > 0.5:
                    break
                select.select([], [hog], [], 0.05)
        # The server is still serving others, so a stall is its choice, not a hang.
        assert round_trip(server.address, b"still here") == b"STILL HERE"
        held = _held_by_server(hog, server, sent)
        growth = tree_uss(server.pid) - uss_before
    finally:
        hog.close()
    mib = 2**20
    assert sent < HOG_CAP, f"the server took all {sent / mib:.0f} MiB: no backpressure"
    assert held <= bound, (
        f"the server holds {held / mib:.2f} MiB of a silent client's output, more than "
        f"max_pending_output + one read = {bound / mib:.2f} MiB (sent {sent / mib:.1f} MiB)")
    # Memory, a coarser check: the held bytes, copies of them (transform's output, a
    # bytearray's over-allocation), thread stacks and the allocator's rounding.
    assert growth <= 8 * bound, f"server grew by {growth / mib:.1f} MiB, held {held / mib:.2f}"
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
