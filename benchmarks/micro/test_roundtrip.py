"""Micro benchmarks: the single-connection round trip of every model, per payload.

Not part of the default test run (pytest's testpaths is tests/). Run with::

    pytest benchmarks/micro --benchmark-only
    pytest benchmarks/micro --benchmark-only --benchmark-json=roundtrip.json

Each payload is a group, with one row per model. The server runs pinned to
the first usable CPU and this process (the client) to the others, as in
``iobench run``; one round = one message sent and its whole reply read.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from iobench.client import recv_exactly
from iobench.common.processes import pinned
from iobench.servers.process import ServerProcess
from iobench.servers.testing import model_params

PAYLOADS_BYTES = (64, 4096)
ROUNDS = 300
WARMUP_ROUNDS = 30

USABLE_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS = USABLE_CPUS[:1]
CLIENT_CPUS = USABLE_CPUS[1:] or SERVER_CPUS


@pytest.fixture(scope="module", autouse=True)
def client_on_client_cpus() -> Iterator[None]:
    """This process is the client: keep it off the server's CPU, as the runner does."""
    with pinned(CLIENT_CPUS):
        yield


@pytest.fixture(scope="module", params=model_params())
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(request.param, cpus=SERVER_CPUS) as proc:
        yield proc


@pytest.mark.parametrize("size_bytes", PAYLOADS_BYTES, ids=lambda size: f"{size}B")
def test_round_trip(benchmark: pytest.FixtureRequest, server: ServerProcess,
                    size_bytes: int) -> None:
    payload = bytes(ord("a") + i % 26 for i in range(size_bytes))
    with socket.create_connection(server.address, timeout=5.0) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def round_trip() -> bytes:
            sock.sendall(payload)
            return recv_exactly(sock, size_bytes)

        benchmark.group = f"payload {size_bytes} B"
        benchmark.extra_info.update(model=server.model, size_bytes=size_bytes,
                                    server_cpus=SERVER_CPUS, client_cpus=CLIENT_CPUS)
        reply = benchmark.pedantic(round_trip, rounds=ROUNDS, iterations=1,
                                   warmup_rounds=WARMUP_ROUNDS)
    assert reply == payload.upper()
