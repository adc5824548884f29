"""Exact CPU accounting of a forking server: every child counted, however short-lived.

The children below ignore nothing and are waited for by nobody: their parent
sets SIGCHLD to SIG_IGN, so the kernel reaps them at once and no parent's
``children_user`` ever holds their time. Only the cgroup sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iobench.benchmarks.run import accounting
from iobench.benchmarks.run.launcher import LocalLauncher, Placement
from iobench.benchmarks.run.sampler import ProcessTree, Sampler, window_stats
from iobench.common.lifeline import spawn_command

CHILDREN = 12
CHILD_CPU_S = 0.06
KNOWN_WORK_S = CHILDREN * CHILD_CPU_S

# Forks CHILDREN children one after another, each burning CHILD_CPU_S of CPU time
# (thread_time, so a busy machine delays the work but does not change it), then
# says "done" and waits to be killed.
FORKER = """
import os, signal, sys, time
children, cpu_s = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(children):
    if os.fork() == 0:
        end = time.thread_time() + cpu_s
        while time.thread_time() < end:
            pass
        os._exit(0)
    try:
        os.wait()  # with SIGCHLD ignored: returns (ECHILD) once the child is gone
    except ChildProcessError:
        pass
print("done", flush=True)
time.sleep(60)
"""


@contextmanager
def forker(procs_file: str | None) -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-c", FORKER, str(CHILDREN), str(CHILD_CPU_S)]
    proc = subprocess.Popen(spawn_command(command, cgroup_procs=procs_file),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def run_children(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "done\n"


def test_short_lived_children_are_counted_within_ten_percent(
        cgroup: accounting.Cgroup) -> None:
    with forker(cgroup.procs_file) as proc:
        sampler = Sampler()
        sampler.watch("server", proc.pid, cgroup=cgroup)
        psutil_only = ProcessTree(proc.pid)
        before, before_psutil = sampler.edge(), psutil_only.read()
        run_children(proc)
        after, after_psutil = sampler.edge(), psutil_only.read()
    counted = window_stats(before.trees["server"], after.trees["server"]).cpu_s
    assert sampler.accounting("server") == cgroup.kind
    assert abs(counted - KNOWN_WORK_S) <= 0.10 * KNOWN_WORK_S, (counted, KNOWN_WORK_S)
    # Walking the tree cannot see them: no one reaped them into a parent's total.
    missed = window_stats(before_psutil, after_psutil).cpu_s
    assert missed < 0.5 * KNOWN_WORK_S, missed


def test_a_cgroup_is_read_after_its_processes_are_gone(cgroup: accounting.Cgroup) -> None:
    with forker(cgroup.procs_file) as proc:
        user0, system0 = cgroup.cpu_s()
        run_children(proc)
    deadline = time.monotonic() + 5
    while cgroup.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    user1, system1 = cgroup.cpu_s()
    assert (user1 + system1) - (user0 + system0) >= 0.9 * KNOWN_WORK_S
    assert cgroup.pids() == []


def test_the_launcher_puts_each_server_in_a_cgroup_and_removes_it() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    launcher = LocalLauncher(Placement(cpus[:1], cpus[1:] or cpus[:1]))
    try:
        server = launcher.start_server("fork", {})
        if server.cgroup is None:
            pytest.skip(server.cgroup_note or "no cgroup")
        assert server.pid in server.cgroup.pids()
        path = server.cgroup.path
        server.stop()
        assert not path.exists()
    finally:
        launcher.close()


def test_without_a_cgroup_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounting, "MOUNTS", accounting.Path("/nonexistent/mounts"))
    with pytest.raises(accounting.CgroupUnavailable, match="no cgroup2 or cgroup v1"):
        accounting.create("test")
    cpus = sorted(os.sched_getaffinity(0))
    launcher = LocalLauncher(Placement(cpus[:1], cpus[1:] or cpus[:1]))
    try:
        server = launcher.start_server("select", {})
        assert server.cgroup is None and "psutil" in (server.cgroup_note or "")
        sampler = Sampler()
        sampler.watch("server", server.pid, cgroup=server.cgroup)
        assert sampler.accounting("server") == "psutil"
    finally:
        launcher.close()


def test_the_sampling_thread_costs_at_most_one_percent_of_a_core() -> None:
    # One single-process server watched at 10 Hz, as the runner does: its
    # thread's own CPU time (thread_time), which other load cannot inflate.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    made = None
    try:
        try:
            made = accounting.create("cost")
            procs = [made.procs_file]
        except accounting.CgroupUnavailable:
            procs = []
        for path in procs:
            with open(path, "w") as out:
                out.write(str(proc.pid))
        with Sampler() as sampler:
            sampler.watch("server", proc.pid, cgroup=made)
            time.sleep(4.0)
        cost = sampler.thread_cpu_percent
        assert cost is not None and cost <= 1.0, f"sampler thread used {cost:.2f}% of a core"
    finally:
        proc.kill()
        proc.wait()
        if made is not None:
            assert made.remove()


def test_cgroups_of_dead_runners_are_swept(cgroup: accounting.Cgroup) -> None:
    # A cgroup named for a runner that is gone (a pid above pid_max), and one
    # named for this live process: only the first is removed.
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    stale = cgroup.path.parent / f"{accounting.PREFIX}{pid_max + 1}-0-test"
    stale.mkdir()
    try:
        accounting.sweep(cgroup.path.parent)
        assert not stale.exists()
        assert cgroup.path.exists()  # its runner (this test) is alive
    finally:
        if stale.exists():
            stale.rmdir()
