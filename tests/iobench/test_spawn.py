"""The exec wrapper: a child's settings made after exec, and no preexec_fn anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from iobench.common import spawn
from iobench.common.lifeline import spawn_command
from iobench.common.spawn import SETUP_FAILED

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 5.0


def test_the_child_runs_pinned_with_its_limit_and_keeps_the_wrappers_pid() -> None:
    cpu = max(os.sched_getaffinity(0))
    report = "import os, resource; print(os.getpid(), sorted(os.sched_getaffinity(0)), " \
             "resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    proc = subprocess.Popen(spawn_command([sys.executable, "-c", report], cpus=[cpu],
                                          fd_limit=512),
                            stdout=subprocess.PIPE, text=True, process_group=0)
    out, _ = proc.communicate(timeout=30)
    pid, cpus, limit = out.split(" ", 1)[0], out[out.index("["):out.index("]") + 1], out.split()[-1]
    assert int(pid) == proc.pid  # exec in place: the launcher's pid is the command's
    assert cpus == f"[{cpu}]"
    assert int(limit) == 512


def test_the_child_dies_with_its_parent_even_after_sigkill() -> None:
    parent_code = ("import subprocess, sys, time\n"
                   "from iobench.common.lifeline import spawn_command\n"
                   "child = subprocess.Popen(spawn_command([sys.executable, '-c', "
                   "'import time; time.sleep(60)']))\n"
                   "print(child.pid, flush=True)\n"
                   "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    deadline = time.monotonic() + GONE_WITHIN_S
    while "spawn.py" in " ".join(child.cmdline()) and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the wrapper has exec'd the command
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    _, alive = psutil.wait_procs([child], timeout=GONE_WITHIN_S)
    for process in alive:
        process.kill()
    assert not alive


def test_a_set_up_that_fails_exits_with_its_own_code_and_one_line() -> None:
    proc = subprocess.run(spawn_command(["true"], cgroup_procs="/nonexistent/cgroup.procs"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == SETUP_FAILED
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "cgroup.procs" in proc.stderr


def test_no_python_runs_between_fork_and_exec() -> None:
    sources = [path for folder in ("benchmarks", "iobench", "loadgen", "servers", "tests")
               for path in (ROOT / folder).rglob("*.py") if path != Path(__file__).resolve()]
    users = [str(path.relative_to(ROOT)) for path in sources
             if "preexec_fn=" in path.read_text()]
    assert users == []


def test_a_child_may_join_a_cgroup_in_each_hierarchy() -> None:
    # A CPU cgroup and, where v1's memory controller is mounted, a memory one.
    command = spawn_command(["true"], cgroup_procs=["/a/cgroup.procs", "/b/cgroup.procs"])
    settings, rest = spawn.parse(command[command.index(spawn.__file__) + 1:])
    assert settings["--cgroup-procs"].splitlines() == ["/a/cgroup.procs", "/b/cgroup.procs"]
    assert rest == ["true"]
