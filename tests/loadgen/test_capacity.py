"""``python -m iobench.loadgen.capacity`` and its native C echo server, briefly.

The full check takes half a minute; here each run is half a second, so the
verdicts themselves depend on the machine's load. What is checked is what
does not: the native server echoes correctly, every run is printed, the
verdict lines and exit code follow from the printed figures, and nothing is
left running. Skipped, with the reason, where no C compiler exists.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from iobench.common.errors import UsageError
from iobench.loadgen import capacity

HAS_COMPILER = bool(shutil.which("cc") or shutil.which("gcc"))
needs_compiler = pytest.mark.skipif(
    not HAS_COMPILER, reason="no C compiler (cc or gcc): the native echo server cannot be built")


@needs_compiler
def test_native_server_echoes_uppercase_and_stops(tmp_path: Path) -> None:
    binary = capacity.build_native(capacity.NATIVE_SOURCE, tmp_path)
    payload = bytes(range(256)) + random.Random(3).randbytes(100_000)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with capacity.native_server(binary, None) as target:
        host, port = target.rsplit(":", 1)
        server_pids = {p.pid for p in psutil.Process().children(recursive=True)} - before
        assert len(server_pids) == 1
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = bytearray()
            while len(received) < len(payload) and (chunk := sock.recv(65536)):
                received += chunk
        assert bytes(received) == payload.upper()
    assert not [pid for pid in server_pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


@needs_compiler
def test_capacity_prints_every_run_and_a_verdict_that_follows_from_them() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = subprocess.run(
        [sys.executable, "-m", "iobench.loadgen.capacity", "--duration", "0.5", "--warmup",
         "0.1", "--repeat", "2"], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    out = done.stdout
    closed_runs = [float(x) for x in re.findall(
        r"closed loop, 1 worker.*, run \d+\n  throughput (\d+) req/s", out)]
    open_runs = re.findall(r"open loop, 2 workers.*, run \d+\n(?:.*\n){2}.*behind schedule "
                           r"(True|False).*errors (\d+)", out)
    assert len(closed_runs) == 2 and len(open_runs) == 2, out
    assert "errors 0" in out and not re.search(r"errors [1-9]", out), out
    best = max(closed_runs)
    verdict = re.search(r"^closed loop: (PASS|FAIL), best (\d+) req/s \(needs >= (\d+)\)$",
                        out, re.MULTILINE)
    assert verdict is not None, out
    assert float(verdict[2]) == best and float(verdict[3]) == capacity.CLOSED_TARGET_RPS
    closed_pass = best >= capacity.CLOSED_TARGET_RPS
    assert verdict[1] == ("PASS" if closed_pass else "FAIL")
    open_pass = any(behind == "False" for behind, _ in open_runs)
    assert f"open loop: {'PASS' if open_pass else 'FAIL'}" in out
    assert done.returncode == (0 if closed_pass and open_pass else 1)
    assert not ({p.pid for p in psutil.Process().children(recursive=True)} - before)


@pytest.mark.parametrize(("arguments", "message"), [
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--source", "/nonexistent/native_echo.c"], "no such file"),
])
def test_bad_arguments_are_one_clear_line(arguments: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "iobench.loadgen.capacity", *arguments],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_compiler_is_a_clear_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity.shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="no C compiler"):
        capacity.build_native(capacity.NATIVE_SOURCE, tmp_path)
