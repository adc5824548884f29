"""Fixtures shared by the whole suite: every registered model, and a running server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iobench.servers.process import ServerProcess
from tests.helpers import model_params


@pytest.fixture(params=model_params())
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(model_name: str) -> Iterator[ServerProcess]:
    with ServerProcess(model_name) as proc:
        yield proc
