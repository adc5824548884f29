"""The scale scenario's run side: cells, limits met with reasons, and a run end to end."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from iobench.benchmarks.results.store import read_results
from iobench.benchmarks.run import scale
from iobench.benchmarks.run.launcher import LocalLauncher, Placement
from iobench.benchmarks.run.matrix import Cell, Profile, ProfileError, check_spec, expand
from iobench.cli import main
from iobench.servers.registry import get_model

GIB = 1024**3


def scale_cell(model: str, idle: int, params: dict | None = None) -> Cell:
    return Cell(f"scale/{model}/i{idle}", "scale", model, params or {}, "closed", 16,
                size_bytes=64, idle=idle)


def test_scale_cells_go_from_few_idle_connections_to_many() -> None:
    spec = check_spec({"scale": {"idle_connections": [10000, 0], "rates_rps": [200.0]}}, "t")
    cells = expand(Profile("t", spec), ["epoll", "poll"])
    assert [c.key for c in cells] == [
        "scale/epoll/i0/c16/s64", "scale/epoll/i0/r200/c16/s64",
        "scale/epoll/i10000/c16/s64", "scale/epoll/i10000/r200/c16/s64",
        "scale/poll/i0/c16/s64", "scale/poll/i0/r200/c16/s64",
        "scale/poll/i10000/c16/s64", "scale/poll/i10000/r200/c16/s64",
    ]
    assert [c.idle for c in cells[:4]] == [0, 0, 10000, 10000]
    assert {c.mode for c in cells} == {"closed", "open"}
    assert cells[1].rate_rps == 200.0 and cells[0].rate_rps is None


def test_scale_without_rates_has_closed_cells_only() -> None:
    spec = check_spec({"scale": {"idle_connections": [0, 10]}}, "t")
    assert [c.mode for c in expand(Profile("t", spec), ["epoll"])] == ["closed", "closed"]


@pytest.mark.parametrize("section, named", [
    ({"idle_connections": [-1]}, "scale.idle_connections"),
    ({"rates_rps": 5}, "scale.rates_rps"),
    ({"idle": [0]}, "scale.idle"),
])
def test_bad_scale_keys_are_named(section: dict, named: str) -> None:
    with pytest.raises(ProfileError, match=named.replace(".", r"\.")):
        check_spec({"scale": section}, "t")


def test_select_past_fd_setsize_fails_with_the_reason() -> None:
    reason = scale.limit_problem(scale_cell("select", 10000), get_model("select"))
    assert reason is not None and "FD_SETSIZE (1024)" in reason and "10016" in reason
    assert scale.limit_problem(scale_cell("select", 500), get_model("select")) is None
    assert scale.limit_problem(scale_cell("epoll", 10000), get_model("epoll")) is None


def test_too_few_descriptors_names_ulimit_and_the_number() -> None:
    # Past fs.nr_open: no process can raise its limit that far.
    reason = scale.limit_problem(scale_cell("epoll", 2_000_000), get_model("epoll"))
    assert reason is not None
    assert "`ulimit -n`" in reason and str(2_000_000 + 16 + scale.FD_HEADROOM) in reason


def test_threadpool_is_starved_once_idle_connections_hold_every_worker() -> None:
    threadpool = get_model("threadpool")
    assert threadpool.starved_by({"workers": 8}, 7) is None
    reason = threadpool.starved_by({"workers": 8}, 8)
    assert reason is not None and "all 8 pool threads" in reason
    assert get_model("epoll").starved_by({}, 10000) is None
    cell = scale_cell("threadpool", 100, {"workers": 8})
    worded = scale.starvation(threadpool, cell, "16 errors (timeout=16)")
    assert worded is not None and worded.startswith("starved: ") and "timeout=16" in worded


def test_a_projection_past_half_of_memory_skips_with_the_figures() -> None:
    available = psutil.virtual_memory().available
    per_connection = available / 10_000  # 10,016 connections: all of it
    probe = scale.Probe(base_bytes=20_000_000, per_connection_bytes=per_connection,
                        accepts_per_s=1e6)
    reason = scale.memory_problem(probe, scale_cell("fork", 10000))
    assert reason is not None and reason.startswith("skipped: fork would need about")
    assert f"{per_connection / 1024**2:.2f} MiB PSS each" in reason
    assert scale.memory_problem(probe, scale_cell("fork", 1000)) is None  # a tenth: fits


def test_a_projection_of_minutes_of_forking_skips_too() -> None:
    probe = scale.Probe(base_bytes=20_000_000, per_connection_bytes=1000, accepts_per_s=100.0)
    reason = scale.memory_problem(probe, scale_cell("fork", 10000))
    assert reason is not None and "to start a process for each of 10016" in reason
    assert scale.memory_problem(probe, scale_cell("fork", 1000)) is None  # 30 s: allowed


def test_fork_is_probed_before_thousands_of_processes() -> None:
    assert get_model("fork").process_per_connection
    assert not get_model("threads").process_per_connection


SCALE_PROFILE = """
[params]
threadpool = {workers = 32}

[scale]
idle_connections = [0, 1200]
duration_s = 0.5
warmup_s = 0.2
"""


def test_a_scale_run_records_results_and_reasons_and_leaves_nothing(tmp_path: Path) -> None:
    """epoll holds 1200 idle connections; select and threadpool fail with their reasons."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    path = tmp_path / "profile.toml"
    path.write_text(SCALE_PROFILE)
    out = tmp_path / "run"
    assert main(["run", "--profile", str(path), "--models", "epoll,select,threadpool",
                 "--out", str(out)]) == 0
    cells = {cell["key"]: cell for cell in read_results(out)["cells"]}
    epoll = cells["scale/epoll/i1200/c16/s64"]
    assert epoll["status"] == "ok", epoll["reason"]
    assert epoll["idle_connections"] == 1200
    assert epoll["load"]["client"]["idle_open"] == 1200
    assert epoll["metrics"]["throughput_rps"] > 0
    assert epoll["metrics"]["peak_fds"] >= 1200
    # Its CPU and memory were read while it held the crowd.
    assert epoll["metrics"]["server_cpu_percent"] is not None, epoll["notes"]
    assert epoll["metrics"]["pss_bytes"] is not None
    assert epoll["metrics"]["pss_per_connection_bytes"] is not None
    select = cells["scale/select/i1200/c16/s64"]
    assert select["status"] == "failed" and "FD_SETSIZE" in select["reason"]
    assert cells["scale/select/i0/c16/s64"]["status"] == "ok"
    starved = cells["scale/threadpool(workers=32)/i1200/c16/s64"]
    assert starved["status"] == "failed" and starved["reason"].startswith("starved: all 32")
    assert cells["scale/threadpool(workers=32)/i0/c16/s64"]["status"] == "ok"
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"still running: {left}"
    assert os.path.exists(out / "results.csv")


# -- the report's section: verdicts computed from the run -------------------------


def test_a_thread_per_connection_past_the_kernels_task_room_fails_with_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "kernel_task_room",
                        lambda: (30_000, "kernel.pid_max 32768, kernel.threads-max 192731, "
                                         "2768 in use"))
    reason = scale.task_problem(scale_cell("threads", 50000), get_model("threads"))
    assert reason is not None and "would start 50016 threads" in reason
    assert "kernel.pid_max 32768" in reason
    assert scale.task_problem(scale_cell("threads", 10000), get_model("threads")) is None
    fork = scale.task_problem(scale_cell("fork", 50000), get_model("fork"))
    assert fork is not None and "50016 processes" in fork
    assert scale.task_problem(scale_cell("epoll", 50000), get_model("epoll")) is None


def test_the_kernels_task_room_is_read_from_proc() -> None:
    room, source = scale.kernel_task_room()
    assert 0 < room < int(Path("/proc/sys/kernel/pid_max").read_text())
    assert "kernel.pid_max" in source and "in use" in source


def test_the_fork_probe_measures_a_process_per_connection_and_stops_it() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    launcher = LocalLauncher(Placement(cpus[:1], cpus[1:] or cpus[:1]))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        found = scale.probe(launcher, scale_cell("fork", 10000))
    finally:
        launcher.close()
    # A forked Python child adds its own pages: far more than a socket, far less
    # than the whole interpreter it shares copy-on-write.
    assert 50 * 1024 < found.per_connection_bytes < 20 * 1024**2, found
    assert found.base_bytes > 1024**2 and found.accepts_per_s > 0
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
