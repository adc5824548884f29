"""The load generator against the article's code as printed: it never hangs or crashes.

The article's server blocks every client behind an idle one, so requests go
unanswered: each is counted, by cause, and the run ends within its time-out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from iobench.loadgen import LoadParams, run
from iobench.loadgen.report import LoadReport
from iobench.servers.process import ServerProcess

TIMEOUT_S = 0.5
# Connect, warm-up, window, drain, with room for a busy machine.
RUN_MAX_S = 15.0


@pytest.fixture
def article() -> Iterator[ServerProcess]:
    with ServerProcess("article") as server:
        yield server


def load(server: ServerProcess, **given: object) -> LoadReport:
    params = LoadParams(target=f"{server.host}:{server.port}", duration_s=0.5, warmup_s=0.1,
                        timeout_s=TIMEOUT_S, **given).validate()  # type: ignore[arg-type]
    started = time.monotonic()
    result = run(params, allow_errors=True)  # errors counted, not raised
    assert time.monotonic() - started < RUN_MAX_S
    return result


def test_beside_an_idle_connection_every_request_times_out_and_is_counted(
        article: ServerProcess) -> None:
    result = load(article, connections=4, idle=1)
    assert result.errors["timeout"] == 4 and result.error_count == 4
    assert result.requests == 0


def test_open_loop_counts_the_requests_left_waiting(article: ServerProcess) -> None:
    """Between requests a connection is idle, and the loop sleeps in recv() on it."""
    result = load(article, connections=4, mode="open", rate_rps=100.0)
    assert result.error_count == result.errors["timeout"] > 0


def test_a_closed_loop_is_called_off_starved_with_its_cause(article: ServerProcess) -> None:
    """The window opens once every connection has been answered once: each sends one
    request and waits, an idle client to the article's loop, which answers the first
    connection, accepts the second and sleeps in recv() on the first."""
    result = load(article, connections=4)
    assert result.starved is not None
    assert result.starved["connections"] == 3 and result.starved["of"] == 4
    assert result.failure is not None and result.failure.startswith("starved: 3 of 4")
    assert result.requests == 0 and result.errors["timeout"] == 3
