"""Work per request (``work=``), offloading it (``offload=pool``), and bad values refused."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from iobench.servers.base import ParamError, parse_work
from iobench.servers.process import ServerProcess, busiest_share, server_report
from iobench.servers.registry import all_models, available_models
from iobench.servers.work import Work, calibrate

IO_TIMEOUT = 10.0
MODELS = sorted(available_models())
OFFLOADING = sorted(name for name, cls in available_models().items() if cls.can_offload)


def test_work_values_are_read_and_written_back_canonical() -> None:
    assert parse_work("CPU:50us") == "cpu:50us"
    assert parse_work("block:1ms") == "block:1ms"
    assert parse_work("none") == "none"


@pytest.mark.parametrize("text", ["cpu:-1us", "cpu:0us", "cpu:50", "cpu:50ns", "block:2s",
                                  "sleep:1ms", "cpu", "block:ms"])
def test_bad_work_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_work(text)


def test_requests_are_counted_by_request_bytes_across_reads() -> None:
    work = Work("block", 0.001, request_bytes=64)
    # A read of part of a request completes none; the read that ends it, one;
    # a read holding the end of one request and two more, three.
    assert work.completed(0, 10) == 0
    assert work.completed(10, 54) == 1
    assert work.completed(64, 63) == 0
    assert work.completed(127, 129) == 3


def test_cpu_work_is_calibrated_near_its_target() -> None:
    record = calibrate(0.001)
    assert record["iterations"] > 0
    # A wide margin: the machine is shared, and the figure is recorded, not trusted.
    assert 200 <= record["measured_us"] <= 5000
    work = Work.from_options({"work": "cpu:1ms", "request_bytes": 64})
    assert work is not None and work.describe()["iterations"] == record["iterations"]


def serve_command(model: str, *params: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "iobench", "serve", model]
    for param in params:
        command += ["--param", param]
    return subprocess.run(command, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("model", "params", "says"), [
    ("epoll", ["work=cpu:-1us"], "work"),
    ("epoll", ["work=cpu:50furlongs"], "unit"),
    ("threads", ["work=block:1ms", "offload=pool"], "cannot offload"),
    ("fork", ["pool=4"], "cannot offload"),
    ("prefork", ["listener=roundrobin"], "listener"),
    ("asyncio", ["offload=sometimes"], "offload"),
    ("epoll", ["work=block:1ms", "offload=pool", "pool=0"], "pool"),
])
def test_serve_refuses_bad_values_with_one_line(model: str, params: list[str], says: str) -> None:
    result = serve_command(model, *params)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.stderr


def test_io_uring_offloads_only_in_multishot_style() -> None:
    cls = all_models()["io-uring"]
    with pytest.raises(ParamError, match="multishot"):
        cls.resolve_params({"style": "oneshot", "work": "block:1ms", "offload": "pool"})


def exchange(address: tuple[str, int], requests: int, size: int, chunks: int = 1) -> float:
    """``requests`` round trips on one connection, each request sent in ``chunks``
    writes; every response byte checked. Returns the seconds it took."""
    start = time.monotonic()
    with socket.create_connection(address, timeout=IO_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(requests):
            payload = bytes([97 + number % 26]) * size
            step = max(1, size // chunks)
            for offset in range(0, size, step):
                sock.sendall(payload[offset:offset + step])
                time.sleep(0.002 if chunks > 1 else 0)  # separate reads on the server
            received = b""
            while len(received) < size:
                chunk = sock.recv(size - len(received))
                assert chunk, "the server closed mid-response"
                received += chunk
            assert received == payload.upper()
    return time.monotonic() - start


def variants(model: str) -> list[dict[str, str]]:
    found = [{"work": "cpu:50us"}, {"work": "block:1ms"}]
    if model in OFFLOADING:
        found.append({"work": "block:1ms", "offload": "pool", "pool": "2"})
    return found


@pytest.mark.parametrize("model", MODELS)
def test_every_model_answers_the_same_bytes_with_work(model: str) -> None:
    for params in variants(model):
        with ServerProcess(model, {**params, "request_bytes": "100"}) as server:
            assert server.ready["work"]["kind"] == params["work"].partition(":")[0]
            exchange(server.address, requests=5, size=100)
            # A request split over several reads, and a pipelined pair in one write.
            exchange(server.address, requests=2, size=100, chunks=4)
            exchange(server.address, requests=1, size=200)


def parallel_seconds(address: tuple[str, int], connections: int) -> float:
    start = time.monotonic()
    threads = [threading.Thread(target=exchange, args=(address, 2, 64))
               for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(IO_TIMEOUT)
    return time.monotonic() - start


@pytest.mark.parametrize("model", ["epoll", "asyncio"])
def test_inline_blocking_work_serializes_the_loop_and_the_pool_overlaps_it(model: str) -> None:
    """Four connections, two requests each, 50 ms of blocking work per request:
    inline the loop waits 8 x 50 ms; a pool of four waits about 2 x 50 ms."""
    with ServerProcess(model, {"work": "block:50ms"}) as server:
        inline = parallel_seconds(server.address, 4)
    with ServerProcess(model, {"work": "block:50ms", "offload": "pool", "pool": "4"}) as server:
        pooled = parallel_seconds(server.address, 4)
    assert inline >= 8 * 0.050
    assert pooled < inline / 2


@pytest.mark.parametrize("listener", ["shared", "reuseport", "exclusive"])
def test_prefork_workers_report_every_accept(listener: str) -> None:
    with ServerProcess("prefork", {"listener": listener, "processes": "3"}) as server:
        for _ in range(30):
            exchange(server.address, requests=1, size=16)
        server.stop()
        accepts = server.worker_accepts()
    assert accepts is not None and len(accepts) == 3
    assert sum(accepts) == 30


def test_prefork_workers_do_the_work_too() -> None:
    with ServerProcess("prefork", {"work": "cpu:50us", "listener": "reuseport"}) as server:
        assert server.ready["work"]["iterations"] > 0
        exchange(server.address, requests=3, size=64)


def test_the_busiest_workers_share_is_the_balance_figure() -> None:
    assert busiest_share([30, 10]) == 0.75
    assert busiest_share([0, 0]) is None and busiest_share(None) is None
    report = server_report(None, [5, 5])
    assert report == {"worker_accepts": [5, 5], "busiest_worker_share": 0.5}
    assert server_report(None, None) is None
