"""The probes of the article's scenario: what they find, and that they never hang.

Against the article's code as printed a second client and the clients beside
a non-reading one go unanswered, and the probe says where the server slept;
against busy-poll (the article's idea done correctly) nobody waits. Against
a server that accepts nothing at all the probes still end within their
bounds. Timing assertions are lower bounds of the probe's own bound, or wide.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from iobench.benchmarks.run import article_probes as probes
from iobench.servers.process import ServerProcess

BOUND_S = 0.6
FLOOD_BYTES = 8 * 1024 * 1024
# Far beyond any probe here: bound, nudges, stall detection and drain together.
PROBE_MAX_S = 20.0


@pytest.fixture
def article() -> Iterator[ServerProcess]:
    with ServerProcess("article") as server:
        yield server


@pytest.fixture
def busy_poll() -> Iterator[ServerProcess]:
    with ServerProcess("busy-poll") as server:
        yield server


def test_second_client_waits_behind_an_idle_first(article: ServerProcess) -> None:
    result = probes.second_client(article.address, article.pid, BOUND_S)
    assert result.unanswered == 1
    assert result.longest_wait_s is not None and result.longest_wait_s >= BOUND_S
    assert result.state is not None and result.state.asleep
    assert result.state.syscall == "recvfrom"
    assert f"no answer within {BOUND_S:g} s" in result.cause
    assert "spoke 2 times" in result.cause  # accepted after one, answered after the next
    assert article.alive()


def test_second_client_is_answered_at_once_by_busy_poll(busy_poll: ServerProcess) -> None:
    result = probes.second_client(busy_poll.address, busy_poll.pid, BOUND_S)
    assert result.unanswered == 0
    assert result.longest_wait_s is not None and result.longest_wait_s < BOUND_S
    assert result.cause.startswith("answered in")


def test_a_non_reading_client_stalls_every_other_client(article: ServerProcess) -> None:
    result = probes.non_reading_client(article.address, article.pid, FLOOD_BYTES, BOUND_S)
    assert result.state is not None and result.state.syscall == "sendto"
    assert result.unanswered >= 1
    assert result.longest_wait_s is not None and result.longest_wait_s >= BOUND_S
    # Nothing lost: once it reads, it gets back every byte it sent, uppercased.
    assert result.sent_bytes and result.returned_bytes == result.sent_bytes
    assert result.returned_intact
    assert article.alive()


def test_busy_poll_serves_the_others_beside_a_non_reading_client(
        busy_poll: ServerProcess) -> None:
    result = probes.non_reading_client(busy_poll.address, busy_poll.pid, FLOOD_BYTES, BOUND_S)
    assert result.unanswered == 0
    assert len(result.waits_s) > 10  # the others kept being answered throughout
    assert result.returned_intact and result.returned_bytes == result.sent_bytes


def test_probes_end_within_their_bounds_against_a_server_that_never_answers() -> None:
    """A listener nobody accepts from: connections complete (the kernel's backlog), no
    byte ever comes back. The probes report it; they do not hang."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()[:2]
        started = time.monotonic()
        hol = probes.second_client(address, os.getpid(), BOUND_S)
        assert hol.unanswered == 1 and "still unanswered" in hol.cause
        hog = probes.non_reading_client(address, None, 256 * 1024, BOUND_S, others=1)
        assert hog.unanswered == 1 and hog.state is None
        assert not hog.returned_bytes and hog.returned_intact is False
        assert time.monotonic() - started < PROBE_MAX_S


def test_no_server_is_a_probe_error_not_a_hang() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        address = placeholder.getsockname()[:2]  # bound, not listening: refused
        with pytest.raises(probes.ProbeError, match="cannot connect"):
            probes.second_client(address, None, BOUND_S)


def test_server_state_reads_this_process_and_nothing_of_another_host() -> None:
    state = probes.server_state(os.getpid())
    assert state is not None and state.state == "R" and not state.asleep
    assert probes.server_state(None) is None
    assert "running" in state.describe()
    asleep = probes.ServerState("S", "wait_woken", "recvfrom")
    assert asleep.describe() == "asleep in recvfrom() (state S, wchan wait_woken)"
