"""Closed and open loop against each of the article's four models: no errors, full JSON."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from hdrh.histogram import HdrHistogram

from iobench.loadgen import SCHEMA, LoadParams, run
from iobench.loadgen.params import Mode
from iobench.servers.process import ServerProcess

FOUR_MODELS = ["busy-poll", "poll-sleep", "select", "threads"]
LATENCY_FIELDS = {"p50_us", "p90_us", "p99_us", "p99_9_us", "p99_99_us", "max_us", "mean_us",
                  "histogram"}
TOP_FIELDS = {"schema", "params", "requests", "measured_s", "throughput_rps", "latency",
              "latency_uncorrected", "errors", "client", "client_saturated", "behind_schedule",
              "ok"}
PARAM_FIELDS = {"target", "mode", "connections", "duration_s", "warmup_s", "size_bytes",
                "rate_rps", "arrival", "workers", "timeout_s", "expect", "idle",
                "requests_per_connection"}
ERROR_FIELDS = {"mismatch", "connect", "reset", "timeout", "short", "idle_closed", "total"}
CLIENT_FIELDS = {"workers", "cpu_percent", "target_rate_rps", "achieved_rate_rps",
                 "max_schedule_lag_us", "idle_connected", "idle_open"}


@pytest.fixture(scope="module", params=FOUR_MODELS)
def model_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(request.param) as server:
        yield server


def target_of(server: ServerProcess) -> str:
    host, port = server.address
    return f"{host}:{port}"


def check_latency(latency: dict[str, Any], requests: int, slack: int = 0) -> None:
    """``slack``: open loop records requests meant for the window, ``requests`` counts
    responses that arrived in it; the two differ by what was on the wire at its edges."""
    assert set(latency) >= LATENCY_FIELDS
    histogram = HdrHistogram.decode(latency["histogram"])
    assert abs(histogram.get_total_count() - requests) <= slack
    assert 0 < latency["p50_us"] <= latency["p90_us"] <= latency["p99_us"] \
        <= latency["p99_9_us"] <= latency["p99_99_us"] <= latency["max_us"]
    assert latency["p50_us"] == histogram.get_value_at_percentile(50)


def check_format(result: dict[str, Any]) -> None:
    assert set(result) >= TOP_FIELDS
    assert result["schema"] == SCHEMA
    assert set(result["params"]) == PARAM_FIELDS
    assert set(result["errors"]) == ERROR_FIELDS
    assert set(result["client"]) >= CLIENT_FIELDS
    assert len(result["client"]["cpu_percent"]) == result["client"]["workers"]
    assert result["throughput_rps"] == pytest.approx(result["requests"] / result["measured_s"],
                                                     rel=1e-3)
    slack = result["params"]["connections"] if result["params"]["mode"] == "open" else 0
    # Closed loop: a request unanswered when the window closed is in the
    # histogram at its age then, beside every response counted.
    unanswered = (result["unanswered"] or {}).get("requests", 0)
    check_latency(result["latency"], result["requests"] + unanswered, slack)
    if result["latency_uncorrected"] is not None:
        check_latency(result["latency_uncorrected"], result["requests"], slack)


def test_closed_loop(model_server: ServerProcess) -> None:
    result = run(LoadParams(target=target_of(model_server), connections=8, duration_s=0.6,
                            warmup_s=0.2, size_bytes=100)).to_json()
    check_format(result)
    assert result["ok"] is True
    assert result["errors"]["total"] == 0
    assert result["requests"] > 50
    assert result["latency_uncorrected"] is None
    assert result["params"]["mode"] == "closed"
    # measured_s, requests and throughput against the server's own count and clock:
    # tests/loadgen/test_counts.py.


def test_open_loop(model_server: ServerProcess) -> None:
    rate = 500.0
    result = run(LoadParams(target=target_of(model_server), mode="open", rate_rps=rate,
                            connections=4, duration_s=0.6, warmup_s=0.2,
                            arrival="poisson")).to_json()
    check_format(result)
    assert result["ok"] is True
    assert result["errors"]["total"] == 0
    assert result["client"]["target_rate_rps"] == rate
    assert result["behind_schedule"] is False, result["client"]
    # Poisson arrivals (seed 0): 300 expected in 0.6 s, standard deviation sqrt(300),
    # about 17; four of them, plus the 4 requests on the wire at either edge.
    assert abs(result["requests"] - 300) <= 4 * 300**0.5 + 4


def test_python_m_loadgen_with_two_workers_writes_the_json(tmp_path: Path) -> None:
    path = tmp_path / "out" / "load.json"
    path.parent.mkdir()
    with ServerProcess("select") as server:
        completed = subprocess.run(
            [sys.executable, "-m", "iobench.loadgen",
             "--target", target_of(server), "--workers", "2",
             "--connections", "6", "--duration", "0.5", "--warmup", "0.2", "--mode", "open",
             "--rate", "600", "--json", str(path)],
            capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "throughput" in completed.stdout
    assert "latency (from intended send time)" in completed.stdout
    result = json.loads(path.read_text())
    check_format(result)
    assert result["client"]["workers"] == 2
    assert len(result["client"]["cpu_percent"]) == 2
    assert result["params"]["workers"] == 2
    assert result["params"]["rate_rps"] == 600.0
    assert result["errors"]["total"] == 0
    assert result["behind_schedule"] is False, result["client"]
    # Uniform arrivals: exactly 300 sends in the 0.5 s window at 600 req/s. Responses
    # counted in it differ by at most the 6 requests on the wire at either edge.
    assert 300 - 6 <= result["requests"] <= 300 + 6


def test_json_to_stdout_replaces_the_summary() -> None:
    with ServerProcess("select") as server:
        completed = subprocess.run(
            [sys.executable, "-m", "iobench.loadgen", "--target", target_of(server),
             "--connections", "2", "--duration", "0.3", "--warmup", "0", "--json"],
            capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    check_format(result)


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_one_mebibyte_messages_in_many_pieces(mode: Mode) -> None:
    with ServerProcess("select") as server:
        result = run(LoadParams(target=target_of(server), mode=mode,
                                rate_rps=40.0 if mode == "open" else None, connections=3,
                                size_bytes=1 << 20, duration_s=0.5, warmup_s=0.1)).to_json()
    check_format(result)
    assert result["errors"]["total"] == 0
    assert result["requests"] >= 10


def test_sigterm_stops_the_worker_processes_too() -> None:
    with ServerProcess("select") as server:
        load = subprocess.Popen(
            [sys.executable, "-m", "iobench.loadgen", "--target", target_of(server),
             "--workers", "2", "--connections", "4", "--duration", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            parent = psutil.Process(load.pid)
            deadline = time.monotonic() + 20
            while len(parent.children()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            workers = parent.children()
            assert len(workers) == 2
            time.sleep(0.5)  # let them connect and start
            load.send_signal(signal.SIGTERM)
            _, stderr = load.communicate(timeout=10)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    assert load.returncode != 0
    assert "interrupted" in stderr
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
