"""``--idle N``: silent connections held beside the active ones, checked at the end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from iobench.loadgen import LoadParams, run
from iobench.loadgen.closed_loop import ClosedLoopWorker
from iobench.loadgen.idle import per_source_address, source_address
from iobench.loadgen.runner import make_plans
from tests.loadgen.faulty_servers import RECV_SIZE, FaultyServer, Handler, upper_echo

StartServer = Callable[[Handler], FaultyServer]
IDLE = 120


def close_the_silent(conn: socket.socket) -> None:
    """Uppercase echo, but a connection that sends nothing for 0.3 s is closed."""
    conn.settimeout(0.3)
    try:
        data = conn.recv(RECV_SIZE)
    except TimeoutError:
        conn.close()
        return
    conn.settimeout(None)
    while data:
        conn.sendall(data.upper())
        data = conn.recv(RECV_SIZE)


def registered(epoll_fd: int) -> int:
    """How many descriptors an epoll instance of this process watches (from /proc)."""
    text = Path(f"/proc/self/fdinfo/{epoll_fd}").read_text()
    return sum(1 for line in text.splitlines() if line.startswith("tfd:"))


def test_idle_connections_are_held_and_found_open(faulty_server: StartServer) -> None:
    server = faulty_server(upper_echo)
    result = run(LoadParams(target=server.target, connections=2, idle=IDLE, duration_s=0.3,
                            warmup_s=0.1)).to_json()
    assert result["ok"] is True, result["errors"]
    assert result["requests"] > 0
    assert result["client"]["connected"] == 2
    assert result["client"]["idle_connected"] == IDLE
    assert result["client"]["idle_open"] == IDLE
    assert result["params"]["idle"] == IDLE
    # Every one of them reached the server, before the active ones.
    assert len(server.connections) == IDLE + 2
    # Closing them came after the window: the result says how long after.
    assert 0 < result["client"]["teardown_s"] < 5


def test_an_idle_connection_closed_by_the_server_is_an_error(faulty_server: StartServer) -> None:
    server = faulty_server(close_the_silent)
    result = run(LoadParams(target=server.target, connections=2, idle=10, duration_s=0.5,
                            warmup_s=0.1)).to_json()
    assert result["client"]["idle_connected"] == 10
    assert result["client"]["idle_open"] == 0
    assert result["errors"]["idle_closed"] == 10
    assert result["ok"] is False
    assert result["requests"] > 0  # the active ones were served all along


def test_idle_connections_wake_nothing(faulty_server: StartServer) -> None:
    """They are in no epoll set, so no loop spends a cycle on them while they are silent."""
    server = faulty_server(upper_echo)
    plan, = make_plans(LoadParams(target=server.target, connections=3, idle=40).validate())
    worker = ClosedLoopWorker(plan)
    try:
        assert worker.connect() == 3
        assert len(worker.idle.sockets) == 40
        assert registered(worker.epoll.fileno()) == 3
    finally:
        worker.close()


def test_idle_connections_split_over_workers_by_global_index() -> None:
    plans = make_plans(LoadParams(target="127.0.0.1:9", connections=3, idle=10,
                                  workers=3).validate())
    assert [(p.idle_first, p.idle_count) for p in plans] == [(0, 4), (4, 3), (7, 3)]
    assert all(p.idle_total == 10 for p in plans)


def test_loopback_idle_connections_spread_over_source_addresses() -> None:
    per = per_source_address()
    assert per > 1000  # half of any sane ephemeral-port range
    target = ("127.0.0.1", 8000)
    assert source_address(socket.AF_INET, target, 0, per) == "127.0.0.2"
    assert source_address(socket.AF_INET, target, per - 1, per) == "127.0.0.2"
    assert source_address(socket.AF_INET, target, per, per) == "127.0.0.3"
    assert source_address(socket.AF_INET, target, 3 * per + 5, per) == "127.0.0.5"
    # Other targets have one usable source address: the kernel's choice.
    assert source_address(socket.AF_INET, ("198.18.0.2", 8000), 0, per) is None
    assert source_address(socket.AF_INET6, ("::1", 8000, 0, 0), 0, per) is None


def test_past_one_source_address_the_ports_come_from_the_next(
        faulty_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 25 connections per address, 60 idle ones come from three source addresses."""
    monkeypatch.setattr("iobench.loadgen.idle.per_source_address", lambda: 25)
    server = faulty_server(upper_echo)
    result = run(LoadParams(target=server.target, connections=1, idle=60, duration_s=0.2,
                            warmup_s=0.0)).to_json()
    assert result["ok"] is True, result["errors"]
    with server.lock:
        peers = [conn.getpeername()[0] for conn in server.connections]
    assert sorted(set(peers)) == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert peers.count("127.0.0.2") == 25 and peers.count("127.0.0.4") == 10


@pytest.mark.parametrize("idle, message", [
    ("-1", "--idle must be 0-"),
    # With a million active ones, past fs.nr_open: no limit can be raised that far.
    ("1000000", "needs 2000032 open files in one process, but `ulimit -n` allows"),
])
def test_bad_idle_counts_are_one_line_errors(idle: str, message: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "iobench.loadgen", "--target", "127.0.0.1:9", "--idle", idle,
         "--connections", "1000000", "--json", str(tmp_path / "load.json")],
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "load.json").exists()


def test_the_json_records_the_idle_count(faulty_server: StartServer, tmp_path: Path) -> None:
    server = faulty_server(upper_echo)
    path = tmp_path / "load.json"
    completed = subprocess.run(
        [sys.executable, "-m", "iobench.loadgen", "--target", server.target, "--idle", "5",
         "--connections", "2", "--workers", "2", "--duration", "0.2", "--warmup", "0",
         "--json", str(path)],
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(path.read_text())
    assert result["params"]["idle"] == 5
    assert result["client"]["idle_open"] == 5
    assert result["errors"]["idle_closed"] == 0
