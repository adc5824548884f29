"""Edge readings while the load runs: CPU-only readings, the window they are picked in,
the crowd of a scale cell, and context switches counted over every thread."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.run import accounting
from iobench.benchmarks.run import metrics as m
from iobench.benchmarks.run.matrix import Cell
from iobench.benchmarks.run.sampler import (
    Edge,
    Memory,
    ProcessTree,
    Sampler,
    Series,
    TreeReading,
    window_stats,
)
from iobench.benchmarks.run.window import Crowd, Watched, measured_window, watch_load
from iobench.common.lifeline import spawn_command
from iobench.loadgen.report import LoadReport

THREADS, NAPS = 4, 300
LIVE_SWITCHER = f"""
import threading, time
ready = threading.Barrier({THREADS} + 1)
def nap():
    ready.wait()
    for _ in range({NAPS}):
        time.sleep(0.001)
    time.sleep(60)
workers = [threading.Thread(target=nap, daemon=True) for _ in range({THREADS})]
for w in workers: w.start()
ready.wait()
time.sleep({NAPS} * 0.003)
print("done", flush=True)
time.sleep(60)
"""


def test_a_threaded_server_reads_the_switches_of_its_live_threads() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LIVE_SWITCHER], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "done\n"
        reading = ProcessTree(proc.pid).read()
        main_only = psutil.Process(proc.pid).num_ctx_switches().voluntary
        assert reading.switches
        assert reading.ctx_voluntary >= 0.9 * THREADS * NAPS, reading
        assert main_only < 0.25 * THREADS * NAPS  # what /proc/PID/status alone would say
    finally:
        proc.kill()
        proc.wait()


def test_past_the_thread_limit_switches_are_not_claimed() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LIVE_SWITCHER], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "done\n"
        tree = ProcessTree(proc.pid, max_threads_switches=2)
        reading = tree.read()
        assert not reading.switches
        later = tree.read()
        assert window_stats(reading, later).switches_per_s() is None
    finally:
        proc.kill()
        proc.wait()


def test_cpu_only_edges_read_the_cgroup_and_stay_out_of_the_series(
        cgroup: accounting.Cgroup) -> None:
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"
    server = subprocess.Popen(spawn_command([sys.executable, "-c", spin],
                                            cgroup_procs=cgroup.procs_file),
                              start_new_session=True)
    client = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                              start_new_session=True)
    try:
        sampler = Sampler()
        sampler.watch("server", server.pid, cgroup=cgroup)
        sampler.watch("client", client.pid, exact=False)
        kept = len(sampler.series["server"].readings)
        first = sampler.edge(cpu_only=True)
        time.sleep(0.3)
        last = sampler.edge(cpu_only=True)
        assert set(first.trees) == {"server"}  # the client's CPU is not a figure
        assert not first.trees["server"].full and not first.trees["server"].switches
        assert len(sampler.series["server"].readings) == kept
        used = last.trees["server"].cpu_s - first.trees["server"].cpu_s
        assert 0.15 < used <= 1.05 * (last.t_s - first.t_s), used
        full = sampler.edge()
        assert full.trees["server"].full and "client" in full.trees
        assert len(sampler.series["server"].readings) == kept + 1
    finally:
        for proc in (server, client):
            proc.kill()
            proc.wait()


def load_report(measured_s: float, window: list[float],
                teardown_s: float | None = None) -> LoadReport:
    return LoadReport.from_json({"params": {}, "measured_s": measured_s, "client": {
        "teardown_s": teardown_s, "window_monotonic_s": window}})


def test_the_window_is_the_load_generators_own_on_this_host() -> None:
    report = load_report(0.5, [100.0, 100.5], teardown_s=0.4)
    assert measured_window(report, 103.0, local=True) == (100.0, 100.5)
    # Elsewhere: back from the moment it exited, by its teardown.
    assert measured_window(report, 103.0, local=False) == pytest.approx((102.1, 102.6))
    assert measured_window(LoadReport.from_json({"params": {}}), 103.0, local=False) is None


def server_reading(t_s: float, cpu_s: float, fds: int = 20, full: bool = True,
                   switches: int = 0, counted: bool | None = None) -> TreeReading:
    return TreeReading(t_s=t_s, user_s=cpu_s, system_s=0.0, ctx_voluntary=switches,
                       ctx_involuntary=0, rss_bytes=1, threads=1, fds=fds, processes=1,
                       exact=True, full=full, switches=full if counted is None else counted)


def server_edge(t_s: float, cpu_s: float, fds: int = 20, full: bool = True) -> Edge:
    return Edge(t_s, {"server": server_reading(t_s, cpu_s, fds, full)}, [])


def test_between_cpu_only_edges_the_switches_come_from_readings_that_counted_them() -> None:
    record = CellRecord(key="closed/threads/c16/s64", scenario="closed", model="threads",
                        mode="closed", connections=16)
    series = Series([server_reading(10.0, 1.0, switches=100),
                     server_reading(10.1, 1.1, switches=0, counted=False),  # sampling thread
                     server_reading(10.3, 1.3, switches=300),
                     server_reading(10.4, 1.4, switches=0, counted=False)])
    edges = (server_edge(10.05, 1.0, full=False), server_edge(10.45, 1.4, full=False))
    stats = m.server_metrics(record, series, edges)
    assert stats is not None and record.metrics.server_cpu_percent == pytest.approx(100.0)
    assert record.metrics.ctx_voluntary_per_s is None  # one counted reading inside
    series.readings.insert(1, server_reading(10.06, 1.06, switches=120))
    m.server_metrics(record, series, edges)
    assert record.metrics.ctx_voluntary_per_s == pytest.approx(180 / 0.24)


def scale_cell(idle: int = 0, warmup_s: float = 0.2) -> Cell:
    return Cell(f"scale/epoll/i{idle}", "scale", "epoll", {}, "closed", 16,
                size_bytes=64, idle=idle, warmup_s=warmup_s)


def test_the_edges_are_the_first_and_last_readings_inside_the_window() -> None:
    # A forking server still starting children after the window, then closing them.
    watched = Watched([server_edge(t, t) for t in (9.9, 10.05, 10.2, 10.4, 10.55, 10.7)],
                      [(9.8, Memory(1, 1, 1, 1)), (10.3, Memory(2, 2, 2, 3)),
                       (10.65, Memory(5, 5, 5, 6)), (10.9, Memory(3, 3, 3, 4))],
                      exited_s=11.0)
    picked = watched.pick(load_report(0.5, [10.0, 10.5]), local=True)
    assert picked.edges is not None
    assert [edge.t_s for edge in picked.edges] == [10.05, 10.4]
    assert picked.memory == Memory(5, 5, 5, 6)  # the most it took while the load ran


def test_the_kernels_memory_is_its_highest_reading_not_the_highest_pss_ones() -> None:
    # prefork: once the load generator closes its connections the kernel frees
    # their sockets, while the workers' heaps keep their pages.
    held = Memory(30, 30, 30, 3, kernel_bytes=39_000_000)
    closing = Memory(31, 31, 31, 3, kernel_bytes=1_200_000)
    watched = Watched([server_edge(t, t) for t in (10.05, 10.4)],
                      [(10.3, held), (10.9, closing)], exited_s=11.0)
    picked = watched.pick(load_report(0.5, [10.0, 10.5]), local=True)
    assert picked.memory is not None
    assert picked.memory.pss_bytes == 31 and picked.memory.kernel_bytes == 39_000_000


def test_too_few_readings_inside_the_window_leave_the_cpu_unmeasured_with_why() -> None:
    watched = Watched([server_edge(9.9, 1.0), server_edge(10.2, 1.2), server_edge(10.7, 2.0)],
                      [], exited_s=11.0)
    picked = watched.pick(load_report(0.5, [10.0, 10.5]), local=True)
    assert picked.edges is None
    assert picked.note is not None and picked.note.startswith("1 of the runner's 3")


class FakeSampler:
    """A server whose crowd of idle connections is all there after ``crowd_at_s``."""

    def __init__(self, crowd: int, crowd_at_s: float) -> None:
        self.began = time.monotonic()
        self.crowd, self.crowd_at_s = crowd, crowd_at_s
        self.full_reads = self.cpu_reads = 0  # once the crowd is held
        self.memory_at: list[float] = []
        self.series: dict[str, Series] = {}

    def edge(self, cpu_only: bool = False) -> Edge:
        now = time.monotonic()
        held = now - self.began >= self.crowd_at_s
        if cpu_only:
            self.cpu_reads += held
        else:
            self.full_reads += held
            time.sleep(0.02)  # a tree of thousands of descriptors takes a while
        fds = self.crowd if held else 100
        return server_edge(now, now - self.began, fds=fds, full=not cpu_only)

    def memory(self, name: str) -> Memory:
        self.memory_at.append(time.monotonic() - self.began)
        return Memory(10, 10, 10, 1)

    def paused(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


class FakeLoad:
    pid = 1
    tells_window = False

    def window(self) -> tuple[float, float] | None:
        return None

    def __init__(self, runs_s: float) -> None:
        self.until = time.monotonic() + runs_s

    def wait(self, timeout_s: float) -> int | None:
        left = self.until - time.monotonic()
        if left <= 0:
            return 0
        time.sleep(min(timeout_s, left))
        return None if time.monotonic() < self.until else 0


def test_a_crowd_that_comes_early_moves_the_window_and_the_memory_reading() -> None:
    """10,000 idle connections are estimated to take 2 s; here they take 0.3 s, and the
    load generator is done after 2 s: the memory is read once the crowd is held."""
    sampler = FakeSampler(crowd=10016 + 8, crowd_at_s=0.3)
    marks: list[float] = []
    watched = watch_load(scale_cell(idle=10000), sampler,  # type: ignore[arg-type]
                         FakeLoad(2.0), time.monotonic(),  # type: ignore[arg-type]
                         [(0.1, lambda: marks.append(time.monotonic() - sampler.began))])
    assert sampler.memory_at and 0.3 <= sampler.memory_at[0] < 0.6, sampler.memory_at
    assert len(watched.memories) == len(sampler.memory_at)
    # The mark is due a warm-up (0.2 s) and 0.1 s after the crowd, not after the estimate.
    assert marks and 0.6 <= marks[0] < 0.9, marks
    # Once the crowd is there (the window comes), most readings are CPU alone.
    assert sampler.cpu_reads > sampler.full_reads >= 2
    assert len(watched.edges) > sampler.cpu_reads + sampler.full_reads



def test_a_mark_that_takes_its_time_holds_up_no_reading() -> None:
    """perf took up to 0.31 s to answer an enable or a disable of its counters on a
    threaded server: done in the reading loop, that left a 0.3 s window one reading."""
    sampler = FakeSampler(crowd=0, crowd_at_s=0.0)
    done: list[str] = []

    def slow(word: str) -> None:
        time.sleep(0.35)
        done.append(word)

    cell = Cell("closed/epoll/c16/s64", "closed", "epoll", {}, "closed", 16, size_bytes=64,
                duration_s=1.0, warmup_s=0.0)
    watched = watch_load(cell, sampler, FakeLoad(1.2), time.monotonic(),  # type: ignore[arg-type]
                         [(0.1, lambda: slow("enable")), (0.6, lambda: slow("disable"))])
    assert done == ["enable", "disable"]  # in order, and finished before it returns
    times = [edge.t_s for edge in watched.edges]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 8 and max(gaps) < 0.3, gaps


def test_the_crowd_is_a_descriptor_each_or_a_child_each_over_the_server_alone() -> None:
    """epoll starts with 8 descriptors; fork with one process, and each child inherits a
    few descriptors besides its connection, so its descriptors would count it held early."""
    epoll = Crowd(connections=1000, base=8, per_process=False)
    assert not epoll.held_by(server_reading(1.0, 0.0, fds=1000))
    assert epoll.held_by(server_reading(1.0, 0.0, fds=1008))
    assert not epoll.held_by(server_reading(1.0, 0.0, fds=5000, full=False))  # not counted
    fork = Crowd(connections=1000, base=1, per_process=True)
    quarter = replace(server_reading(1.0, 0.0, fds=1004), processes=251)
    assert not fork.held_by(quarter)
    assert fork.held_by(replace(quarter, processes=1001, fds=4004))


def test_the_crowd_is_counted_from_the_server_before_its_first_connection() -> None:
    sampler = FakeSampler(crowd=0, crowd_at_s=0.0)
    sampler.series["server"] = Series([replace(server_reading(0.0, 0.0, fds=21), processes=3)])
    crowd = Crowd.of(scale_cell(idle=100), sampler)  # type: ignore[arg-type]
    assert crowd == Crowd(connections=116, base=21, per_process=False)
    forked = Cell("closed/fork/c16/s64", "closed", "fork", {}, "closed", 16, size_bytes=64)
    crowd = Crowd.of(forked, sampler)  # type: ignore[arg-type]
    assert crowd == Crowd(connections=16, base=3, per_process=True)
