"""Churn (``--requests-per-connection K``): K verified requests a connection, then the next one."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from iobench.cli import main
from iobench.loadgen import LoadParams, run
from iobench.loadgen.churn import FIRST_CHURN_HOST, LAST_CHURN_HOST
from tests.loadgen.faulty_servers import RECV_SIZE, FaultyServer, Handler, SerialServer

StartServer = Callable[[Handler], FaultyServer]
SIZE = 100
CONNECTIONS = 4
TCP_TIME_WAIT = "06"  # the state column of /proc/net/tcp


class PerConnection:
    """Uppercase echo that notes how many whole requests each connection carried, and how it
    ended: end of file, or a reset."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.requests: list[int] = []
        self.peers: set[str] = set()
        self.resets = 0

    def __call__(self, conn: socket.socket) -> None:
        received = 0
        reset = False
        peer = conn.getpeername()[0]
        try:
            while data := conn.recv(RECV_SIZE):
                received += len(data)
                conn.sendall(data.upper())
        except ConnectionResetError:
            reset = True
        with self.lock:
            self.requests.append(received // self.size)
            self.peers.add(peer)
            self.resets += reset


def time_wait_towards(port: int) -> int:
    """Sockets in TIME_WAIT towards ``port`` on this host (IPv4)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == TCP_TIME_WAIT and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


@pytest.mark.parametrize(("per_connection", "workers"), [(1, 1), (3, 2)])
def test_each_connection_carries_k_requests_and_closes_without_time_wait(
        faulty_server: StartServer, per_connection: int, workers: int) -> None:
    counter = PerConnection(SIZE)
    server = faulty_server(counter)
    result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=0.5,
                            warmup_s=0.1, size_bytes=SIZE, workers=workers,
                            requests_per_connection=per_connection)).to_json()
    assert result["ok"] is True, result["errors"]
    churn = result["churn"]
    assert churn["requests_per_connection"] == per_connection
    assert churn["connections"] > 20
    # Each connection closed in the window carried K requests, all of them answered.
    assert abs(churn["connections"] * per_connection - result["requests"]) \
        <= CONNECTIONS * per_connection
    assert churn["connections_per_s"] == pytest.approx(churn["connections"]
                                                       / result["measured_s"], rel=1e-3)
    connect = HdrHistogram.decode(churn["connect_latency"]["histogram"])
    assert connect.get_total_count() == churn["connects"] > 0
    assert 0 < churn["connect_latency"]["p50_us"] <= churn["connect_latency"]["max_us"]
    finished = [count for count in counter.requests]
    # Every connection the server saw to its end carried exactly K requests
    # (the last few were cut off when the run ended).
    assert finished.count(per_connection) >= len(finished) - 2 * CONNECTIONS
    # They ended with a reset, which leaves no TIME_WAIT on either side.
    assert counter.resets >= len(finished) - 2 * CONNECTIONS
    assert time_wait_towards(server.port) <= CONNECTIONS
    # From several loopback source addresses, in the range kept for churn.
    hosts = {int(peer.rsplit(".", 1)[1]) for peer in counter.peers}
    assert len(hosts) > 5
    assert all(host == 1 or FIRST_CHURN_HOST <= host <= LAST_CHURN_HOST for host in hosts)


def test_open_loop_churn_keeps_its_rate(faulty_server: StartServer) -> None:
    counter = PerConnection(SIZE)
    server = faulty_server(counter)
    rate = 400.0
    result = run(LoadParams(target=server.target, mode="open", rate_rps=rate,
                            connections=CONNECTIONS, duration_s=1.0, warmup_s=0.1,
                            size_bytes=SIZE, requests_per_connection=2)).to_json()
    assert result["ok"] is True, result["errors"]
    assert result["behind_schedule"] is False, result["client"]
    assert result["client"]["achieved_rate_rps"] == pytest.approx(rate, rel=0.05)
    assert result["churn"]["connections_per_s"] == pytest.approx(rate / 2, rel=0.1)
    assert result["unanswered"] is None  # open loop: unfinished_requests instead


def test_a_refusing_server_counts_each_connect_by_cause_and_is_bounded(
        tmp_path: Path) -> None:
    """The server stops listening after a few connections: refused connects, not a spin."""
    server = SerialServer()
    done = threading.Event()

    def close_listener_soon() -> None:
        done.wait(0.4)
        # shutdown() stops listening at once, even while the server's thread
        # is blocked in accept() (close() alone would leave it listening).
        server.listener.shutdown(socket.SHUT_RDWR)

    closer = threading.Thread(target=close_listener_soon)
    closer.start()
    path = tmp_path / "load.json"
    try:
        # A refused connect fails at once; the time-out only bounds the first
        # exchange, which a busy machine may slow.
        code = main(["load", "--target", server.target, "--connections", "1",
                     "--duration", "1", "--warmup", "0", "--timeout", "2",
                     "--requests-per-connection", "1", "--json", str(path)])
    finally:
        done.set()
        closer.join()
        server.stop()
    result = json.loads(path.read_text())
    assert code == 1
    causes = result["connect_errors"]
    assert causes.get("ECONNREFUSED", 0) > 0
    assert sum(causes.values()) == result["errors"]["connect"]
    # A refused connect is tried again at the next sweep (every 20 ms), not at once.
    assert result["errors"]["connect"] <= 1.0 / 0.02 + 5


def test_a_server_serving_one_client_at_a_time_starves_the_others(tmp_path: Path,
                                                                  capsys) -> None:
    server = SerialServer()
    path = tmp_path / "load.json"
    try:
        code = main(["load", "--target", server.target, "--connections", str(CONNECTIONS),
                     "--duration", "0.5", "--warmup", "0", "--timeout", "0.5",
                     "--json", str(path)])
    finally:
        server.stop()
    result = json.loads(path.read_text())
    assert code == 1
    assert result["ok"] is False
    limit = result["starved"]["after_s"]
    assert result["failure"] == (f"starved: {CONNECTIONS - 1} of {CONNECTIONS} connections "
                                 f"unanswered after {limit:g} s")
    assert 0.5 <= limit < 1.0
    # Each counted with its cause; nothing was measured.
    assert result["errors"]["timeout"] == CONNECTIONS - 1
    assert result["requests"] == 0
    assert result["failure"] in capsys.readouterr().err


def test_churn_serves_a_one_at_a_time_server(tmp_path: Path) -> None:
    """One request per connection: each client closes, so the next is served."""
    server = SerialServer()
    try:
        result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=0.5,
                                warmup_s=0.0, timeout_s=1.0, requests_per_connection=1)).to_json()
    finally:
        server.stop()
    assert result["ok"] is True, (result["errors"], result.get("failure"))
    assert result["churn"]["connections"] > 20
    assert server.resets >= len(server.peers) - CONNECTIONS


def test_a_server_that_never_accepts_times_out_connects_and_ends_in_time(
        tmp_path: Path) -> None:
    """A full accept queue drops handshakes: ETIMEDOUT by cause, starved, within bounds."""
    server = SerialServer(backlog=1, accepting=False)
    path = tmp_path / "load.json"
    try:
        code = main(["load", "--target", server.target, "--connections", "8",
                     "--duration", "0.5", "--warmup", "0", "--timeout", "0.5",
                     "--requests-per-connection", "1", "--json", str(path)])
    finally:
        server.stop()
    result = json.loads(path.read_text())
    assert code == 1
    assert result["connect_errors"].get("ETIMEDOUT", 0) > 0
    assert result["starved"]["connections"] == result["client"]["connected"] > 0
    assert result["failure"].startswith("starved: ")


def test_zero_requests_per_connection_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["load", "--target", "127.0.0.1:9", "--requests-per-connection", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("iobench: error: --requests-per-connection must be 1-1000000, not 0\n")


@pytest.mark.parametrize("per_connection", [None, 1])
def test_a_server_blocked_on_an_idle_client_starves_everyone_in_bounded_time(
        per_connection: int | None) -> None:
    """Idle connections come first: a one-at-a-time server waits on the first for ever."""
    server = SerialServer()
    started = time.monotonic()
    try:
        result = run(LoadParams(target=server.target, connections=CONNECTIONS, idle=2,
                                workers=2, duration_s=0.5, warmup_s=0.0, timeout_s=0.5,
                                requests_per_connection=per_connection)).to_json()
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    assert result["ok"] is False
    assert result["starved"]["connections"] == CONNECTIONS == result["starved"]["of"]
    assert result["failure"].startswith(f"starved: {CONNECTIONS} of {CONNECTIONS} connections")
    assert result["errors"]["timeout"] == CONNECTIONS
    assert result["requests"] == 0
    # Connecting, the first exchange's limit and the workers' start-up, with room to spare.
    assert elapsed < 15.0
