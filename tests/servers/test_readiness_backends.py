"""poll and epoll have no FD_SETSIZE: they serve descriptors past 1024, where select cannot."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterator

import psutil
import pytest

from iobench.servers.process import ServerProcess
from iobench.servers.select_server import SelectServer

assert SelectServer.max_fd is not None
PAST_SELECT_LIMIT = SelectServer.max_fd + 16


@pytest.fixture
def enough_descriptors() -> Iterator[None]:
    """This process needs one descriptor per connection too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = PAST_SELECT_LIMIT + 64
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"open-file limit {hard} < {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("enough_descriptors")
@pytest.mark.parametrize("model", ["poll", "epoll"])
def test_serves_descriptors_beyond_select_limit(model: str) -> None:
    with ServerProcess(model) as server:
        clients: list[socket.socket] = []
        try:
            for _ in range(PAST_SELECT_LIMIT):
                clients.append(socket.create_connection(server.address, timeout=5))
            for sock in (clients[0], clients[-1]):
                sock.sendall(b"far")
                assert sock.recv(3) == b"FAR"
            # Served the last client, so it holds a descriptor for each: past 1024.
            assert psutil.Process(server.pid).num_fds() > PAST_SELECT_LIMIT
        finally:
            for sock in clients:
                sock.close()
