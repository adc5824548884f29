"""Open loop corrects coordinated omission: a server frozen for 0.5 s shows in the latency.

During the freeze the requests meant to go out queue on their connections.
Measured from their intended send times they waited up to 0.5 s; measured
from when they could actually be sent, almost none did. With 2 connections
at 1000 requests/s for 3 s, at most 2 of 3000 requests (under 0.1%) were on
the wire when the server froze, so the uncorrected p99.9 stays low while
about 500 requests (16%) carry the freeze in the corrected histogram.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from iobench.servers.process import ServerProcess

FREEZE_S = 0.5
WARMUP_S = 0.5
DURATION_S = 3.0
CONNECTIONS = 2
CONNECT_WAIT_S = 30.0


def wait_for_connections(pid: int, port: int, count: int) -> None:
    """Until process ``pid`` has ``count`` connections established to ``port``."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + CONNECT_WAIT_S
    while time.monotonic() < deadline:
        established = [c for c in process.net_connections("tcp")
                       if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]
        if len(established) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the load generator did not connect within {CONNECT_WAIT_S:.0f} s")


def test_a_frozen_server_raises_the_corrected_tail_only(tmp_path: Path) -> None:
    path = tmp_path / "load.json"
    with ServerProcess("select") as server:
        host, port = server.address
        load = subprocess.Popen(
            [sys.executable, "-m", "iobench.loadgen",
             "--target", f"{host}:{port}", "--mode", "open",
             "--rate", "1000", "--connections", str(CONNECTIONS), "--warmup", str(WARMUP_S),
             "--duration", str(DURATION_S), "--timeout", "5", "--json", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # Freeze well inside the measured window, which begins WARMUP_S after
            # the connections are up (start-up time varies on a busy machine).
            wait_for_connections(load.pid, port, CONNECTIONS)
            time.sleep(WARMUP_S + 0.8)
            server.signal(signal.SIGSTOP)
            try:
                time.sleep(FREEZE_S)
            finally:
                server.signal(signal.SIGCONT)
            _, stderr = load.communicate(timeout=30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    assert load.returncode == 0, stderr
    result = json.loads(path.read_text())
    corrected = result["latency"]
    uncorrected = result["latency_uncorrected"]
    assert corrected["p99_9_us"] >= 400_000
    assert corrected["max_us"] >= 400_000
    assert uncorrected["p99_9_us"] < corrected["p99_9_us"] / 4
    assert uncorrected["p99_us"] < 100_000
    assert result["errors"]["total"] == 0
