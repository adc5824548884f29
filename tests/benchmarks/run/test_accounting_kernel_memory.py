"""The kernel's memory for a server's tree: it moves with what the tree holds, and is
null with its reason where no cgroup counts it.

The process below stands in for a server: it joins its cgroup(s) before it
runs, through the same exec wrapper as the launcher's servers, then on command accepts N connections
that this test (outside its cgroup, like the load generator) opens, or starts
N threads that wait. What the kernel holds for each lies in no process's
pages: only the cgroup sees it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from iobench.benchmarks.results.plausibility import KERNEL_STACK_BYTES, SOCKET_MIN_BYTES
from iobench.benchmarks.results.record import Metrics
from iobench.benchmarks.run import accounting
from iobench.benchmarks.run import metrics as m
from iobench.benchmarks.run.launcher import LocalLauncher, Placement
from iobench.benchmarks.run.sampler import ProcessTree, Sampler
from iobench.common.lifeline import spawn_command

SOCKETS = 300
THREADS = 100
# Moments for the kernel's deferred frees and per-CPU caches to settle.
SETTLE_S = 0.3

# Accepts COUNT connections on the listener it inherits (descriptor FD), or
# starts COUNT threads that wait, then says "held" and waits to be killed.
HOLDER = """
import socket, sys, threading, time
what, count, fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
listener = socket.socket(fileno=fd)
print("ready", flush=True)
sys.stdin.readline()
held = []
if what == "sockets":
    held = [listener.accept()[0] for _ in range(count)]
else:
    stop = threading.Event()
    held = [threading.Thread(target=stop.wait, daemon=True) for _ in range(count)]
    for thread in held:
        thread.start()
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def counted(cgroup: accounting.Cgroup) -> accounting.Cgroup:
    if cgroup.kernel is None:
        pytest.skip(f"nothing counts kernel memory here: {cgroup.kernel_note}")
    return cgroup


@contextmanager
def holder(cgroup: accounting.Cgroup, what: str, count: int
           ) -> Iterator[tuple[subprocess.Popen[str], socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=count)
    command = [sys.executable, "-c", HOLDER, what, str(count), str(listener.fileno())]
    proc = subprocess.Popen(spawn_command(command, cgroup_procs=cgroup.procs_files),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True, pass_fds=(listener.fileno(),))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc, listener
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def hold(proc: subprocess.Popen[str], listener: socket.socket, what: str, count: int,
         stack: ExitStack) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    if what == "sockets":
        port = listener.getsockname()[1]
        for _ in range(count):
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
    assert proc.stdout.readline() == "held\n"
    time.sleep(SETTLE_S)


@pytest.mark.parametrize(("what", "count", "least"), [
    ("sockets", SOCKETS, SOCKET_MIN_BYTES),
    ("threads", THREADS, KERNEL_STACK_BYTES),
])
def test_the_kernel_reading_moves_with_what_the_tree_holds(
        counted: accounting.Cgroup, what: str, count: int, least: int) -> None:
    with holder(counted, what, count) as (proc, listener), ExitStack() as stack:
        tree = ProcessTree(proc.pid, counted)
        time.sleep(SETTLE_S)
        before = tree.memory()
        hold(proc, listener, what, count, stack)
        after = tree.memory()
        assert before is not None and after is not None
        assert before.kernel_bytes is not None and after.kernel_bytes is not None
        per_item = (after.kernel_bytes - before.kernel_bytes) / count
        # At least what the kernel must hold for each (a socket's file and
        # inode; a thread's stack), and not absurdly more: measured here,
        # 3.6 KB a socket and 27 KB a thread.
        assert least <= per_item <= 8 * least + 32 * 1024, (what, per_item)
        # The same reading reaches a cell's metrics, per connection.
        metrics = Metrics()
        m.memory_metrics(metrics, after, before, count, {})
        assert metrics.kernel_bytes_per_connection == pytest.approx(per_item, abs=0.1)
        assert metrics.memory_per_connection_bytes is not None
        assert metrics.memory_per_connection_bytes > metrics.kernel_bytes_per_connection


def test_the_sampler_reads_it_with_the_trees_memory(counted: accounting.Cgroup) -> None:
    with holder(counted, "threads", 1) as (proc, _):
        sampler = Sampler()
        sampler.watch("server", proc.pid, cgroup=counted)
        memory = sampler.memory("server")
    assert memory is not None and memory.kernel_bytes is not None
    assert memory.kernel_bytes > 0 and memory.kernel_note is None


def test_the_launchers_server_joins_the_memory_cgroup_and_it_is_removed() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    launcher = LocalLauncher(Placement(cpus[:1], cpus[1:] or cpus[:1]))
    try:
        server = launcher.start_server("epoll", {})
        if server.cgroup is None or server.cgroup.kernel is None:
            pytest.skip(server.cgroup_note or (server.cgroup and server.cgroup.kernel_note)
                        or "no cgroup")
        kernel = server.cgroup.kernel
        pids = (kernel.path / "cgroup.procs").read_text().split()
        assert str(server.pid) in pids
        server.stop()
        assert not kernel.path.exists() and not server.cgroup.path.exists()
    finally:
        launcher.close()


def fake_v2(tmp_path: Path, stat: str | None) -> accounting.Cgroup:
    path = tmp_path / "iobench-1-0-fake"
    path.mkdir()
    if stat is not None:
        (path / "memory.stat").write_text(stat)
    return accounting.Cgroup(accounting.CGROUP2, path)


def test_a_missing_memory_controller_leaves_it_null_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A v2 hierarchy whose parent does not enable memory, and no v1 memory
    # hierarchy beside it.
    mounts = tmp_path / "mounts"
    mounts.write_text(f"cgroup2 {tmp_path} cgroup2 rw,relatime 0 0\n"
                      "cgroup /sys/fs/cgroup/cpuacct cgroup rw,cpuacct 0 0\n")
    monkeypatch.setattr(accounting, "MOUNTS", mounts)
    cgroup = fake_v2(tmp_path, stat=None)
    kernel, note = accounting.kernel_memory(cgroup)
    assert kernel is None and note is not None
    assert "memory controller is not enabled" in note
    assert "no memory hierarchy is mounted" in note
    assert "not implemented" not in note
    # What a cell then records: null, and why.
    tree = ProcessTree(os.getpid(), accounting.Cgroup(cgroup.kind, cgroup.path, None, note))
    monkeypatch.setattr(ProcessTree, "_members", lambda self: [self.root])
    memory = tree.memory()
    assert memory is not None and memory.kernel_bytes is None and memory.kernel_note == note
    metrics, notes = Metrics(), dict[str, str]()
    m.memory_metrics(metrics, memory, memory, 10, notes)
    assert metrics.kernel_bytes is None and metrics.kernel_bytes_per_connection is None
    assert metrics.memory_per_connection_bytes is None
    assert notes[m.KERNEL_MEMORY] == note


def test_a_kernel_booted_without_kmem_accounting_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=/dev/vda cgroup.memory=nokmem\n")
    monkeypatch.setattr(accounting, "KERNEL_CMDLINE", cmdline)
    kernel, note = accounting.kernel_memory(fake_v2(tmp_path, stat=None))
    assert kernel is None and "cgroup.memory=nokmem" in (note or "")


def test_a_tree_without_a_cgroup_says_why() -> None:
    tree = ProcessTree(os.getpid())
    assert tree.kernel_memory() == (None, "the server runs in no cgroup of its own "
                                          "(see cpu_accounting)")


def test_pure_v2_reads_kernel_and_sock_from_memory_stat(tmp_path: Path) -> None:
    # Linux 5.18+: "kernel" sums the accounted allocations; "sock" is apart.
    cgroup = fake_v2(tmp_path, "anon 900000\nkernel 400000\nkernel_stack 163840\n"
                               "slab 200000\nsock 12288\nfile 5\n")
    kernel, note = accounting.kernel_memory(cgroup)
    assert note is None and kernel is not None and not kernel.separate
    assert kernel.read() == 400000 + 12288
    assert accounting.Cgroup(cgroup.kind, cgroup.path, kernel).procs_files == \
        [cgroup.procs_file]  # the CPU cgroup is the memory one


def test_older_v2_sums_the_parts(tmp_path: Path) -> None:
    cgroup = fake_v2(tmp_path, "anon 900000\nkernel_stack 163840\npagetables 8192\n"
                               "percpu 1000\nslab_reclaimable 2000\nslab_unreclaimable 30000\n"
                               "slab 32000\nsock 4096\n")
    kernel, _ = accounting.kernel_memory(cgroup)
    assert kernel is not None
    assert kernel.read() == 163840 + 8192 + 1000 + 2000 + 30000 + 4096  # slab not twice


def test_v1_adds_the_tcp_counter_to_kmem(tmp_path: Path) -> None:
    (tmp_path / accounting.V1_KMEM).write_text("135168\n")
    (tmp_path / accounting.V1_TCP).write_text("12288\n")
    assert accounting.KernelMemory(accounting.CGROUP1, tmp_path, True).read() == 135168 + 12288
