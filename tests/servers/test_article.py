"""The article's code as printed: what it does, and that the harness still stops it.

The conformance suite skips it (it is a reference, not a conforming model);
these tests pin down the behaviour the article scenario measures, and the
one promise it keeps with the harness: SIGTERM stops it, even while its loop
sleeps in recv() or send().
"""

from __future__ import annotations

import select
import signal
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from iobench.servers.process import ServerProcess
from iobench.servers.registry import all_models, available_models, get_model, reference_models
from iobench.servers.testing import model_params

IO_TIMEOUT_S = 5.0
# Short, but far above the microseconds a pass of the loop takes.
SETTLE_S = 0.2
# How long a second client is left waiting to show that it gets nothing.
STARVED_S = 0.5
STOP_WITHIN_S = 2.0


@pytest.fixture
def article() -> Iterator[ServerProcess]:
    with ServerProcess("article") as server:
        yield server


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=IO_TIMEOUT_S)


def answered_within(sock: socket.socket, seconds: float) -> bool:
    readable, _, _ = select.select([sock], [], [], seconds)
    return bool(readable)


def syscall_name(pid: int) -> str:
    """The system call the server's main thread sleeps in, as /proc names its number."""
    with open(f"/proc/{pid}/syscall") as file:
        number = file.read().split()[0]
    return {"45": "recvfrom", "44": "sendto", "207": "recvfrom", "206": "sendto"}.get(number,
                                                                                     number)


def test_article_is_registered_as_a_reference_only() -> None:
    cls = get_model("article")
    assert cls.reference and "as printed" in cls.reference
    assert "article" in all_models() and "article" in reference_models()
    assert "article" not in available_models()
    assert "article" in available_models(references=True)
    skipped = [p for p in model_params() if p.id == "article"]
    assert skipped and skipped[0].marks[0].kwargs["reason"].endswith(cls.reference)


def test_it_echoes_the_protocol_to_a_lone_client(article: ServerProcess) -> None:
    with connect(article.address) as sock:
        for word in (b"hello", b"world"):
            sock.sendall(word)
            assert sock.recv(1024) == word.upper()


def test_a_second_client_waits_for_an_idle_first(article: ServerProcess) -> None:
    with connect(article.address) as first:
        time.sleep(SETTLE_S)
        with connect(article.address) as second:
            second.sendall(b"second")
            assert not answered_within(second, STARVED_S)
            assert syscall_name(article.pid) == "recvfrom"
            # Once the first speaks, the loop goes round and accepts the second;
            # it answers the second only after the first has spoken again.
            for word in (b"one", b"two"):
                first.sendall(word)
                assert first.recv(1024) == word.upper()
            assert answered_within(second, IO_TIMEOUT_S)
            assert second.recv(1024) == b"SECOND"


def test_sigterm_stops_it_asleep_in_recv(article: ServerProcess) -> None:
    with connect(article.address) as idle:
        time.sleep(SETTLE_S)
        assert syscall_name(article.pid) == "recvfrom"
        started = time.monotonic()
        article.signal(signal.SIGTERM)
        assert article.proc.wait(timeout=STOP_WITHIN_S) == 0, article.stderr_text()
        assert time.monotonic() - started < STOP_WITHIN_S
        assert idle.recv(1) == b""


def test_sigterm_stops_it_asleep_in_send(article: ServerProcess) -> None:
    """A client that sends and never reads: the loop sleeps in send(), and still stops."""
    with connect(article.address) as hog:
        hog.setblocking(False)
        chunk, last_progress = b"x" * 65536, time.monotonic()
        deadline = last_progress + 10.0
        while time.monotonic() < deadline and time.monotonic() - last_progress < 0.3:
            try:
                hog.send(chunk)
                last_progress = time.monotonic()
            except BlockingIOError:
                select.select([], [hog], [], 0.05)
        assert syscall_name(article.pid) == "sendto"
        article.signal(signal.SIGTERM)
        assert article.proc.wait(timeout=STOP_WITHIN_S) == 0, article.stderr_text()


def test_it_spins_with_nobody_connected_and_sleeps_with_one_idle(
        article: ServerProcess) -> None:
    """Read from the process's state, which a busy machine does not change: with nobody
    connected it is always runnable (it never waits), with one idle client asleep in
    recv(). Its CPU figures, with thresholds, are the scenario's, in the report."""
    assert set(states(article.pid)) == {"R"}
    with connect(article.address):
        time.sleep(SETTLE_S)
        assert set(states(article.pid)) == {"S"}
        assert syscall_name(article.pid) == "recvfrom"


def states(pid: int, samples: int = 20, interval_s: float = 0.02) -> list[str]:
    """The process's scheduler state (R running or runnable, S asleep), sampled."""
    seen = []
    for _ in range(samples):
        with open(f"/proc/{pid}/stat") as file:
            seen.append(file.read().rsplit(")", 1)[1].split()[0])
        time.sleep(interval_s)
    return seen


def test_a_client_that_resets_ends_it_with_one_line_saying_why(article: ServerProcess) -> None:
    """The article catches BlockingIOError alone: a reset ends its loop, and the server."""
    with connect(article.address) as rude:
        rude.sendall(b"bye")
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert article.proc.wait(timeout=STOP_WITHIN_S) == 1
    assert "catches BlockingIOError alone" in article.stderr_text()


def test_it_takes_no_work_per_request() -> None:
    """Every model takes work per request; the article's loop, as printed, does none."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "iobench.servers", "article", "--param",
                           "work=cpu:50us"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "takes no work per request" in done.stderr and "Traceback" not in done.stderr
