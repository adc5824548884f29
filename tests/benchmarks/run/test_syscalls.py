"""System calls by kind: perf's output read right, and what the models do per request.

The live tests count a real server's calls with perf while a client makes a
bounded number of round trips, and check the figures the report explains
the models by: epoll makes about one recv per request, busy-poll more (its
recv calls that find nothing), io-uring (multishot) none at all.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from iobench.benchmarks.run import syscalls
from iobench.benchmarks.run.syscalls import (
    StraceCounter,
    SyscallCounter,
    SyscallCounts,
    parse_perf_csv,
    parse_strace_summary,
    print_stamps,
)
from iobench.servers.io_uring import IoUringServer
from iobench.servers.process import ServerProcess

ROUND_TRIPS = 2000
CONNECTIONS = 4
PERF_OUTPUT = """# started on Sun Nov 29 12:00:00 2026

40247,,raw_syscalls:sys_enter,223385043,100.00,,
17126,,syscalls:sys_enter_recvfrom,223385043,100.00,,
<not counted>,,syscalls:sys_enter_sendto,0,100.00,,
"""


def test_perf_csv_is_read_by_event_and_uncounted_rows_are_left_out() -> None:
    assert parse_perf_csv(PERF_OUTPUT) == {"raw_syscalls:sys_enter": 40247,
                                           "syscalls:sys_enter_recvfrom": 17126}


# perf stat --interval-print: a print every interval, counting switched on for the
# second only; the third print is not whole yet.
PERF_PRINTS = """# started on Sun Dec  6 20:00:00 2026

     0.100200000,<not counted>,,raw_syscalls:sys_enter,0,100.00,,
     0.100200000,<not counted>,,syscalls:sys_enter_recvfrom,0,100.00,,
     0.200300000,40247,,raw_syscalls:sys_enter,99985043,100.00,,
     0.200300000,17126,,syscalls:sys_enter_recvfrom,99985043,100.00,,
     0.300400000,<not counted>,,raw_syscalls:sys_enter,0,100.00,,
"""


def test_perf_prints_are_summed_and_only_whole_ones_are_stamped() -> None:
    assert parse_perf_csv(PERF_PRINTS) == {"raw_syscalls:sys_enter": 40247,
                                           "syscalls:sys_enter_recvfrom": 17126}
    assert print_stamps(PERF_PRINTS, events=2) == ["0.100200000", "0.200300000"]
    assert print_stamps(PERF_OUTPUT, events=2) == []


STRACE_OUTPUT = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 66.13    0.028889          15      1848      1648 recvfrom
 12.74    0.005567          27       200           sendto
------ ----------- ----------- --------- --------- ----------------
100.00    0.043683          17      2048      1648 total
"""


def test_strace_summary_is_read_by_call_with_failed_calls_included() -> None:
    assert parse_strace_summary(STRACE_OUTPUT) == {"recvfrom": 1848, "sendto": 200}


def test_counts_become_per_request_and_a_missing_count_stays_null() -> None:
    counts = SyscallCounts(elapsed_s=2.0, total=4000, by_kind={"recvfrom": 1000, "other": 3000})
    record = counts.per_request(500.0)  # 1000 requests in the window
    assert record["per_request"] == 4.0
    assert record["by_kind_per_request"] == {"recvfrom": 1.0, "other": 3.0}
    missing = SyscallCounts(reason="perf is not installed").per_request(500.0)
    assert missing["per_request"] is None and missing["by_kind_per_request"] is None
    assert missing["reason"] == "perf is not installed"


def test_without_perf_the_counter_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscalls.shutil, "which", lambda name: None)
    counter = SyscallCounter(1)
    counter.start()
    counter.enable()
    counts = counter.stop()
    assert counts.total is None and counts.reason is not None
    assert syscalls.INSTALL_HINT in counts.reason


def _per_request(model: str, params: dict[str, str] | None = None,
                 counter_class: type[SyscallCounter] = SyscallCounter) -> dict[str, float]:
    """Calls by kind per round trip while CONNECTIONS clients make ROUND_TRIPS in turn."""
    with ServerProcess(model, params, cpus=[0]) as server:  # as the runner pins it
        # Attached as the runner attaches: as soon as the server is ready, when a
        # forking model may still be starting its workers.
        counter = counter_class(server.pid)
        counter.start()
        assert counter.reason is None, counter.reason
        clients = [socket.create_connection(server.address, timeout=5)
                   for _ in range(CONNECTIONS)]
        try:
            for sock in clients:  # every connection accepted before counting
                sock.sendall(b"x")
                assert sock.recv(1) == b"X"
            counter.enable()
            began = time.monotonic()
            for index in range(ROUND_TRIPS):
                sock = clients[index % CONNECTIONS]
                sock.sendall(b"ping")
                reply = b""
                while len(reply) < 4:
                    chunk = sock.recv(4 - len(reply))
                    assert chunk, "the server closed the connection"
                    reply += chunk
                assert reply == b"PING"
            counter.disable()
            elapsed = time.monotonic() - began
            counts = counter.stop()
        finally:
            for sock in clients:
                sock.close()
    # perf exits in the background, and is waited for: nothing of it is left.
    syscalls.wait_released()
    assert not [child for child in psutil.Process().children(recursive=True)
                if child.name() == "perf" and child.status() != psutil.STATUS_ZOMBIE]
    assert counts.reason is None, counts.reason
    record = counts.per_request(ROUND_TRIPS / counts.elapsed_s if counts.elapsed_s else None)
    assert counts.elapsed_s is not None and counts.elapsed_s >= elapsed * 0.9
    return record["by_kind_per_request"] or {}


needs_perf = pytest.mark.skipif(syscalls.unavailable_reason() is not None,
                                reason=f"{syscalls.unavailable_reason()}")


@needs_perf
def test_epoll_makes_one_recv_and_one_send_per_request() -> None:
    kinds = _per_request("epoll")
    assert 0.9 <= kinds.get("recvfrom", 0) <= 1.2, kinds
    assert 0.9 <= kinds.get("sendto", 0) <= 1.2, kinds
    assert 0 < kinds.get("epoll_wait", 0) <= 1.2, kinds


@needs_perf
@pytest.mark.parametrize("model", ["prefork", "threads"])
def test_calls_of_processes_and_threads_started_later_are_counted(model: str) -> None:
    """prefork's workers start after its ready line; threads' after each accept."""
    kinds = _per_request(model)
    assert 0.9 <= kinds.get("recvfrom", 0) <= 1.2, kinds


@needs_perf
def test_busy_poll_makes_recv_calls_that_find_nothing() -> None:
    kinds = _per_request("busy-poll")
    # While a request is in flight, the loop keeps trying every connection.
    assert kinds.get("recvfrom", 0) > 2, kinds
    assert 0.9 <= kinds.get("sendto", 0) <= 1.2, kinds


@needs_perf
@pytest.mark.skipif(IoUringServer.unavailable_reason() is not None,
                    reason=f"io-uring: {IoUringServer.unavailable_reason()}")
def test_io_uring_makes_no_recv_or_send_calls() -> None:
    kinds = _per_request("io-uring")
    assert "recvfrom" not in kinds and "sendto" not in kinds, kinds
    # One enter per loop turn. With one request at a time, a request takes two
    # turns (its recv's completion, then its send's); under load, a turn serves many.
    assert 0 < kinds.get("io_uring_enter", 0) <= 2.2, kinds


@pytest.mark.skipif(syscalls.strace_unavailable_reason() is not None,
                    reason=f"{syscalls.strace_unavailable_reason()}")
@pytest.mark.parametrize("model", ["epoll", "threads"])
def test_strace_counts_the_same_recv_and_send_per_request(model: str) -> None:
    kinds = _per_request(model, counter_class=StraceCounter)
    assert 0.95 <= kinds.get("recvfrom", 0) <= 1.05, kinds
    assert 0.95 <= kinds.get("sendto", 0) <= 1.05, kinds


def test_counts_from_outside_the_window_are_not_a_figure() -> None:
    """Closing 16 connections after the window made epoll's 2.04 calls a request read 1.50."""
    counts = SyscallCounts(elapsed_s=0.2, total=4000, by_kind={"recvfrom": 2000})
    assert counts.inside((10.0, 10.3), (10.03, 10.27)) is counts
    late = counts.inside((10.0, 10.3), (10.03, 10.38))
    assert late.total is None and late.by_kind == {}
    assert late.reason == "counted from +0.030 s to +0.380 s of a 0.300 s window, not inside it"
    assert late.per_request(1000.0)["per_request"] is None
    assert counts.inside((10.0, 10.3), None) is counts  # nothing known to judge by
    missing = SyscallCounts(reason="perf is not installed")
    assert missing.inside((10.0, 10.3), (9.0, 11.0)) is missing


def test_output_without_the_total_names_its_first_line_blank_lines_and_all(
        tmp_path: Path) -> None:
    """perf's output that lacks the total is quoted by its first row, past blank lines."""
    counter = SyscallCounter(1)
    counter.reason, counter.elapsed_s = None, 0.2
    counter._events, counter._output = 1, tmp_path / "counts.csv"
    counter._output.write_text("# started\n   \n     0.100,7,,syscalls:sys_enter_read,1,100,,\n")
    counter._proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"],
                                     stderr=subprocess.PIPE)
    counts = counter.stop()
    syscalls.wait_released()
    assert counts.total is None and counts.reason is not None
    assert "0.100,7,,syscalls:sys_enter_read" in counts.reason, counts.reason
