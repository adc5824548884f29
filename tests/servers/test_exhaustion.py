"""Servers outlive exhaustion: out of descriptors, threads or processes, they go on serving.

Each model is started with a descriptor limit of FD_LIMIT and given more idle
clients than that. At the limit it must warn once (each of prefork's worker
processes, which accept on their own, at most once), use no more than
IDLE_CPU_LIMIT percent of a core beyond what it used just below the limit,
scaled to the descriptors it holds at the limit (no spinning on a listener that
stays readable; the baseline is about zero for a model that waits, and is the
cost of scanning its connections for poll-sleep, which grows with them), and,
once the idle clients have gone, serve a new client. busy-poll spins by
design and is only held to the rest.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from iobench.servers.process import ServerProcess
from iobench.servers.registry import get_model
from tests.helpers import model_params, tree_cpu_seconds, tree_total

FD_LIMIT = 64
IDLE_CLIENTS = 2 * FD_LIMIT
# Clearly below the limit, whatever the model's own descriptors (epoll, waker, ring).
BELOW_LIMIT_CLIENTS = FD_LIMIT - 24
# Acceptance: a server at its descriptor limit uses under 5% of a core.
IDLE_CPU_LIMIT = 5.0
MEASURE_S = 1.0
# asyncio stops accepting for a second at each EMFILE: a new client may wait that long.
RECOVER_S = 10.0
WARNING = "out of file descriptors"
SILENT_MODELS = {"uvloop"}


def echo_once(address: tuple[str, int], timeout_s: float = 1.0) -> bool:
    """True if a new client is served: it sends a line and gets it back uppercased."""
    try:
        with socket.create_connection(address, timeout=timeout_s) as sock:
            sock.sendall(b"still there?\n")
            received = b""
            while len(received) < 13:
                chunk = sock.recv(64)
                if not chunk:
                    return False
                received += chunk
            return received == b"STILL THERE?\n"
    except OSError:
        return False


def tree_fds(pid: int) -> int:
    """Descriptors open in the server's tree (its connections and its own)."""
    return tree_total(pid, psutil.Process.num_fds)


def cpu_percent(pid: int, seconds: float) -> float:
    before = tree_cpu_seconds(pid)
    time.sleep(seconds)
    return 100.0 * (tree_cpu_seconds(pid) - before) / seconds


@pytest.mark.parametrize("model", model_params())
def test_a_server_at_its_descriptor_limit_waits_and_serves_again(model: str,
                                                                 tmp_path: Path) -> None:
    check_outlives_exhaustion(model, {}, tmp_path)


def test_io_uring_oneshot_at_its_descriptor_limit_waits_and_serves_again(
        tmp_path: Path) -> None:
    reason = get_model("io-uring").unavailable_reason()
    if reason:
        pytest.skip(reason)
    check_outlives_exhaustion("io-uring", {"style": "oneshot"}, tmp_path)


def check_outlives_exhaustion(model: str, params: dict[str, str], tmp_path: Path) -> None:
    cls = get_model(model)
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr, \
            ServerProcess(model, params, stderr=stderr, fd_limit=FD_LIMIT) as server, \
            contextlib.ExitStack() as clients:
        first = clients.enter_context(socket.create_connection(server.address, timeout=5.0))
        for _ in range(BELOW_LIMIT_CLIENTS - 1):
            clients.enter_context(socket.create_connection(server.address, timeout=5.0))
        time.sleep(0.5)
        below_limit = cpu_percent(server.pid, MEASURE_S)
        fds_below = tree_fds(server.pid)
        for _ in range(IDLE_CLIENTS - BELOW_LIMIT_CLIENTS):
            # Connections past the limit complete in the kernel's backlog, or
            # are accepted and closed by the server: either way connect() returns.
            clients.enter_context(socket.create_connection(server.address, timeout=5.0))
        time.sleep(0.5)
        at_limit = cpu_percent(server.pid, MEASURE_S)
        fds_at = tree_fds(server.pid)
        print(f"{model}: {below_limit:.1f}% of a core with {BELOW_LIMIT_CLIENTS} idle clients, "
              f"{at_limit:.1f}% at the descriptor limit ({FD_LIMIT})")
        assert server.alive(), stderr_path.read_text()
        # At the limit the clients it holds are still served: nothing blocks the loop.
        first.sendall(b"x")
        assert first.recv(1) == b"X", f"{model} stopped serving its clients at the limit"
        clients.close()
        deadline = time.monotonic() + RECOVER_S
        while not (served := echo_once(server.address)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert served, f"{model} serves no new client: {stderr_path.read_text()[-2000:]}"
        assert server.alive()
    text = stderr_path.read_text()
    warnings = [line for line in text.splitlines() if line.startswith("warning")]
    # fork's parent never fills up (each connection's descriptor is in its
    # child); libuv refuses at the limit by itself, with its own spare, silently.
    if not getattr(cls, "process_per_connection", False) and model not in SILENT_MODELS:
        assert any(WARNING in line for line in warnings), text[-2000:]
    # Once per process that accepts: prefork's workers each run their own loop.
    accepting = int(params.get("processes", next(
        (p.default for p in cls.params if p.name == "processes"), 1)))
    assert len(warnings) <= accepting, text[-2000:]
    if not cls.spins:
        # A model that scans its connections pays for each one it holds: its
        # baseline grows with the descriptors it holds at the limit.
        baseline = below_limit * max(1.0, fds_at / fds_below)
        assert at_limit < baseline + IDLE_CPU_LIMIT, (
            f"{model} used {at_limit:.1f}% of a core at the limit with {fds_at} descriptors, "
            f"{below_limit:.1f}% below it with {fds_below}")


FAILING_ONCE = """
import sys
{patch}
from iobench.servers.harness import serve
sys.exit(serve(sys.argv[1]))
"""
# The second connection's fork() or thread start fails, as it does when the
# machine is out of processes or memory.
FAIL_SECOND_FORK = """
import os
_fork, _calls = os.fork, [0]
def fork():
    _calls[0] += 1
    if _calls[0] == 2:
        raise BlockingIOError(11, "Resource temporarily unavailable")
    return _fork()
os.fork = fork
"""
FAIL_SECOND_THREAD = """
import threading
_start, _calls = threading.Thread.start, [0]
def start(self):
    _calls[0] += 1
    if _calls[0] == 3:  # the first is the stop-signal thread
        raise RuntimeError("can't start new thread")
    return _start(self)
threading.Thread.start = start
"""


@pytest.mark.parametrize(("model", "patch"), [("fork", FAIL_SECOND_FORK),
                                              ("threads", FAIL_SECOND_THREAD)])
def test_a_failed_fork_or_thread_start_refuses_that_connection_only(model: str,
                                                                    patch: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", FAILING_ONCE.format(patch=patch), model],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert '"ready"' in ready, proc.communicate(timeout=5)
        import json
        address = ("127.0.0.1", json.loads(ready)["port"])
        first = socket.create_connection(address, timeout=5.0)
        first.sendall(b"a")
        assert first.recv(1) == b"A"
        assert not echo_once(address), "the connection without a process or thread was served"
        assert echo_once(address)
        first.sendall(b"b")
        assert first.recv(1) == b"B"
        first.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err.count("warning") == 1, err
