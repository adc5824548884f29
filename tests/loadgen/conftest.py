"""Fixtures for the load generator tests: faulty servers that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.loadgen.faulty_servers import FaultyServer, Handler


@pytest.fixture
def faulty_server() -> Iterator[Callable[[Handler], FaultyServer]]:
    """A factory: ``faulty_server(handler)`` starts one; all are stopped at teardown."""
    started: list[FaultyServer] = []

    def start(handler: Handler) -> FaultyServer:
        server = FaultyServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
