"""Fixtures shared by the whole suite: every registered model, and a running server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.process import ServerProcess
from servers.registry import all_models


def model_params() -> list:
    """Every registered model; one that cannot run here is skipped with its reason."""
    params = []
    for name, cls in all_models().items():
        reason = cls.unavailable_reason()
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=model_params())
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(model_name: str) -> Iterator[ServerProcess]:
    with ServerProcess(model_name) as proc:
        yield proc
