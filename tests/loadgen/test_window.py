"""The closed loop's measured window: it opens after every connection's first exchange, and
what is unanswered when it closes is counted, never dropped."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from iobench.cli import main
from iobench.loadgen import LoadParams, run
from iobench.loadgen.connection_report import merge_connection_fields
from iobench.loadgen.runner import build_result
from tests.loadgen.faulty_servers import (
    RECV_SIZE,
    FaultyServer,
    Handler,
    delayed_upper_echo,
    stall_after,
)
from tests.loadgen.test_runner import encoded, worker_result

StartServer = Callable[[Handler], FaultyServer]
CONNECTIONS = 4
FIRST_DELAY_S = 0.4


def slow_first_reply(conn: socket.socket) -> None:
    """Uppercase echo whose first reply on each connection waits FIRST_DELAY_S (a fork, say)."""
    data = conn.recv(RECV_SIZE)
    time.sleep(FIRST_DELAY_S)
    while data:
        conn.sendall(data.upper())
        data = conn.recv(RECV_SIZE)


def test_the_window_opens_after_every_connection_was_answered_once(
        faulty_server: StartServer) -> None:
    server = faulty_server(slow_first_reply)
    result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=0.3,
                            warmup_s=0.0)).to_json()
    assert result["ok"] is True, result["errors"]
    # Without the first exchange the window would open on four requests
    # waiting 0.4 s each: its latencies would reach that.
    assert result["latency"]["max_us"] < FIRST_DELAY_S * 1e6 / 2
    assert result["unanswered"]["requests"] <= CONNECTIONS


def test_requests_unanswered_at_the_close_are_counted_with_their_ages(
        faulty_server: StartServer) -> None:
    delay_s = 0.25
    server = faulty_server(delayed_upper_echo(delay_s))
    result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=0.6,
                            warmup_s=0.0, timeout_s=2.0)).to_json()
    assert result["ok"] is True, result["errors"]
    unanswered = result["unanswered"]
    # Every connection has a request on the wire at any moment.
    assert unanswered["requests"] == CONNECTIONS == unanswered["connections"]
    assert 0 < unanswered["p50_age_us"] <= unanswered["max_age_us"] <= delay_s * 1e6 * 1.5
    ages = HdrHistogram.decode(unanswered["histogram"])
    assert ages.get_total_count() == CONNECTIONS
    # Their ages are in the latency figures too, beside every answered request.
    latency = HdrHistogram.decode(result["latency"]["histogram"])
    assert latency.get_total_count() == result["requests"] + CONNECTIONS
    assert latency.get_min_value() <= ages.get_max_value()


def test_shards_add_their_unanswered_connect_counts_and_churn() -> None:
    def fields(unanswered: int, refused: int, connect_us: int) -> dict:
        params = LoadParams(target="198.18.0.1:9000", connections=2, duration_s=1.0,
                            requests_per_connection=1)
        worker = worker_result(0, {100: 10})
        worker.unanswered = unanswered
        worker.connect_errors = {"ECONNREFUSED": refused}
        worker.connections_completed = worker.connects = 10
        worker.connect_histogram = encoded({connect_us: 10})
        return build_result(params, [worker]).to_json()

    merged = merge_connection_fields([fields(1, 2, 50), fields(2, 3, 5000)])
    assert merged["unanswered"]["requests"] == 3
    assert merged["unanswered"]["connections"] == 4
    assert merged["connect_errors"] == {"ECONNREFUSED": 5}
    assert merged["starved"] is None
    churn = merged["churn"]
    assert churn["connections"] == churn["connects"] == 20
    assert churn["connections_per_s"] == 20.0
    # Histograms added, not percentiles averaged: half at 50 us, half at 5 ms.
    assert churn["connect_latency"]["p50_us"] == 50
    assert 4990 <= churn["connect_latency"]["max_us"] <= 5010


def test_connections_left_unanswered_in_the_window_are_starved(
        faulty_server: StartServer) -> None:
    """Answered at first, then never: each connection is closed at --timeout, and named."""
    server = faulty_server(stall_after(3))
    result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=1.0,
                            warmup_s=0.0, timeout_s=0.3)).to_json()
    assert result["ok"] is False
    assert result["starved"] == {"connections": CONNECTIONS, "of": CONNECTIONS,
                                 "after_s": 0.3, "when": "window"}
    assert result["failure"] == (f"starved: {CONNECTIONS} of {CONNECTIONS} connections "
                                 "unanswered after 0.3 s")
    assert result["errors"]["timeout"] == CONNECTIONS
    assert result["requests"] == 2 * CONNECTIONS  # the first exchange took one of three


@pytest.mark.parametrize("workers", [1, 2])
def test_the_window_is_told_before_it_opens_and_is_the_one_measured(
        faulty_server: StartServer, tmp_path: Path, workers: int) -> None:
    """A caller on this host (the matrix runner's perf marks) learns the window while the
    first exchanges and the warm-up run; ``--schedule`` writes it to a file."""
    server = faulty_server(slow_first_reply)
    told: list[tuple[int, int, int]] = []
    report = run(LoadParams(target=server.target, connections=CONNECTIONS, workers=workers,
                            warmup_s=0.2, duration_s=0.3),
                 announce=lambda start, end: told.append((time.monotonic_ns(), start, end)))
    assert len(told) == 1
    at, start, end = told[0]
    assert at < start and end - start == 300_000_000
    assert report.client.window_monotonic_s == pytest.approx([start / 1e9, end / 1e9], abs=1e-5)
    schedule = tmp_path / "schedule.json"
    assert main(["load", "--target", server.target, "--connections", "2", "--warmup", "0.1",
                 "--duration", "0.2", "--json", str(tmp_path / "load.json"),
                 "--schedule", str(schedule)]) == 0
    start_s, end_s = json.loads(schedule.read_text())["window_monotonic_s"]
    measured = json.loads((tmp_path / "load.json").read_text())["client"]["window_monotonic_s"]
    assert measured == pytest.approx([start_s, end_s], abs=1e-5)
