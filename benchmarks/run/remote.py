"""What a Dask worker does for the cluster launcher, on its own host.

:class:`iobench.benchmarks.run.cluster.DaskLauncher` calls these functions on
a worker with ``Client.run``, outside Dask's task queue: starting, polling and
stopping a process are control operations that must not wait behind a
running task, and a worker started with ``--nthreads 1`` runs one task at a
time. Each function does a short piece of work and returns plain values.

A worker keeps what it started for one launcher (its *owner* token) in
:data:`_OWNED`, so :func:`stop_all` can stop every process and close every
socket of that launcher, whatever the state of the cell; the processes are
started exactly as the local launcher starts them (their own process group,
pinned), so stopping them reaches everything they forked. Expected failures
(a server that cannot bind, a CPU the host does not have) come back as
``{"error": reason}``, not as exceptions, so the worker does not log them as
crashes and the runner records the reason as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench.benchmarks.run import accounting
from iobench.benchmarks.run.accounting import Cgroup
from iobench.benchmarks.run.environment import host_environment
from iobench.benchmarks.run.launcher import STOP_TIMEOUT_S, LocalProcess, tail
from iobench.benchmarks.run.sampler import Sampler
from iobench.benchmarks.run.syscalls import SyscallCounter
from iobench.servers.process import ServerProcess, ServerStartError

IDLE_CONNECT_TIMEOUT_S = 5.0
# How often :func:`wait_exit` looks at its processes: the resolution of their exit times.
EXIT_POLL_S = 0.005


@dataclass
class Owned:
    """What one launcher started on this host."""

    workdir: tempfile.TemporaryDirectory[str]
    processes: dict[str, LocalProcess] = field(default_factory=dict)
    servers: dict[str, tuple[ServerProcess, Path]] = field(default_factory=dict)
    idle: dict[str, list[socket.socket]] = field(default_factory=dict)
    sampler: Sampler | None = None
    counters: dict[str, SyscallCounter] = field(default_factory=dict)
    cgroups: dict[int, Cgroup] = field(default_factory=dict)  # server pid -> its cgroup
    count: int = 0

    def token(self, kind: str) -> str:
        """A name unique across hosts, so one call can carry the tokens of several."""
        self.count += 1
        return f"{self.count:05d}-{kind}-{uuid.uuid4().hex[:12]}"

    @property
    def path(self) -> Path:
        return Path(self.workdir.name)


_OWNED: dict[str, Owned] = {}


def _owned(owner: str) -> Owned:
    if owner not in _OWNED:
        _OWNED[owner] = Owned(tempfile.TemporaryDirectory(prefix="iobench-remote-"))
    return _OWNED[owner]


def _check_cpus(cpus: list[int]) -> str | None:
    usable = os.sched_getaffinity(0)
    missing = sorted(set(cpus) - usable)
    if missing:
        return (f"CPU(s) {','.join(map(str, missing))} not usable on host {socket.gethostname()} "
                f"(usable: {','.join(map(str, sorted(usable)))})")
    return None


def describe_host() -> dict[str, Any]:
    """This host's environment (CPU, kernel, Python, package versions)."""
    return {"environment": host_environment()}


def monotonic() -> float:
    return time.monotonic()


def start_server(owner: str, model: str, params: dict[str, Any], host: str,
                 cpus: list[int]) -> dict[str, Any]:
    """Start ``model`` bound to ``host`` and wait for its ready line."""
    if (problem := _check_cpus(cpus)) is not None:
        return {"error": problem}
    owned = _owned(owner)
    token = owned.token("server")
    stderr_path = owned.path / f"{token}.stderr"
    # A cgroup of its own for exact CPU accounting, as the local launcher makes one.
    cgroup, note = accounting.create_or_note(model)
    with open(stderr_path, "wb") as stderr:
        try:
            server = ServerProcess(model, params, host=host, cpus=cpus, stderr=stderr,
                                   cgroup_procs=cgroup.procs_files if cgroup else None)
        except (ServerStartError, subprocess.SubprocessError) as exc:
            if cgroup is not None:
                cgroup.remove()
            return {"error": f"{exc} {tail(stderr_path.read_text(errors='replace'))}".strip()}
    owned.servers[token] = (server, stderr_path)
    if cgroup is not None:
        owned.cgroups[server.pid] = cgroup
    return {"token": token, "pid": server.pid, "host": server.host, "port": server.port,
            "cgroup_note": note}


def start_load(owner: str, arguments: list[str], cpus: list[int]) -> dict[str, Any]:
    """Start ``python -m iobench.loadgen`` with ``arguments`` plus a JSON path of its own."""
    if (problem := _check_cpus(cpus)) is not None:
        return {"error": problem}
    owned = _owned(owner)
    token = owned.token("load")
    command = [sys.executable, "-m", "iobench.loadgen", *arguments,
               "--json", str(owned.path / f"{token}.json")]
    owned.processes[token] = LocalProcess(command, cpus, owned.path, token)
    return {"token": token, "pid": owned.processes[token].pid}


def start_neighbour(owner: str, duration_s: float, delay_s: float,
                    cpus: list[int]) -> dict[str, Any]:
    if (problem := _check_cpus(cpus)) is not None:
        return {"error": problem}
    owned = _owned(owner)
    token = owned.token("neighbour")
    command = [sys.executable, "-m", "iobench.benchmarks.run.neighbour",
               "--duration", str(duration_s), "--delay", str(delay_s)]
    owned.processes[token] = LocalProcess(command, cpus, owned.path, token)
    return {"token": token, "pid": owned.processes[token].pid}


def poll(owner: str, tokens: list[str]) -> dict[str, int | None]:
    """Exit codes (None: running) of processes and servers; -1000 for one not known here."""
    owned = _OWNED.get(owner)
    codes: dict[str, int | None] = {}
    for token in tokens:
        if owned is not None and token in owned.processes:
            codes[token] = owned.processes[token].poll()
        elif owned is not None and token in owned.servers:
            codes[token] = owned.servers[token][0].proc.poll()
        else:
            codes[token] = UNKNOWN_PROCESS
    return codes


# The exit code :func:`poll` gives a token this host does not know: the worker
# was restarted and lost what it had started.
UNKNOWN_PROCESS = -1000


async def wait_exit(owner: str, tokens: list[str], timeout_s: float
                    ) -> dict[str, tuple[int | None, float | None]]:
    """Wait up to ``timeout_s`` for those of the processes started here to exit.

    Their exit codes (None: still running) and exit times, this host's
    monotonic clock when the exit was first seen (within :data:`EXIT_POLL_S`,
    or when this call began). Tokens of other hosts are left out, so one call
    can wait on every host at once. A coroutine, so the worker's event loop
    keeps serving other calls while it waits.
    """
    owned = _OWNED.get(owner)
    tokens = [t for t in tokens if owned is not None and t in owned.processes]
    deadline = time.monotonic() + timeout_s
    exits: dict[str, tuple[int | None, float | None]] = {}
    while True:
        now = time.monotonic()
        for token, code in poll(owner, tokens).items():
            if code is not None and token not in exits:
                exits[token] = (code, now)
        if len(exits) == len(tokens) or now >= deadline:
            return {token: exits.get(token, (None, None)) for token in tokens}
        await asyncio.sleep(EXIT_POLL_S)


def output(owner: str, token: str) -> dict[str, Any]:
    """A process's exit code, stdout, stderr and JSON report (if it wrote one)."""
    owned = _OWNED.get(owner)
    if owned is None or token not in owned.processes:
        return {"error": f"no process {token} on host {socket.gethostname()} (worker restarted?)"}
    process = owned.processes[token]
    report = None
    json_path = owned.path / f"{token}.json"
    if json_path.exists():
        with contextlib.suppress(ValueError, OSError):
            report = json.loads(json_path.read_text())
    return {"returncode": process.poll(), "stdout": process.stdout_text(),
            "stderr": process.stderr_text(), "report": report}


def server_stderr(owner: str, token: str) -> str:
    owned = _OWNED.get(owner)
    if owned is None or token not in owned.servers:
        return ""
    return owned.servers[token][1].read_text(errors="replace")


def signal_server(owner: str, token: str, signum: int) -> None:
    """SIGSTOP/SIGCONT the server's whole process group (the neighbour scenario)."""
    owned = _OWNED.get(owner)
    if owned is not None and token in owned.servers:
        signal_server_process(owned.servers[token][0], signum)


def stop(owner: str, token: str) -> int | None:
    """Stop one process or server and everything it forked; its exit code."""
    owned = _OWNED.get(owner)
    if owned is None:
        return None
    if token in owned.processes:
        return owned.processes.pop(token).stop(STOP_TIMEOUT_S)
    if token in owned.servers:
        server, _ = owned.servers.pop(token)
        signal_server_process(server, signal.SIGCONT)  # a stopped server holds its SIGTERM
        code = server.stop()
        cgroup = owned.cgroups.pop(server.pid, None)
        if cgroup is not None:
            cgroup.remove()
        return code
    return None


def signal_server_process(server: ServerProcess, signum: int) -> None:
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signum)


def stop_all(owner: str) -> int:
    """Stop everything ``owner`` started on this host; how many processes were stopped."""
    owned = _OWNED.get(owner)
    if owned is None:
        return 0
    stopped = 0
    if owned.sampler is not None:
        owned.sampler.stop()
        owned.sampler = None
    for token in list(owned.idle):
        close_idle(owner, token)
    for token in list(owned.counters):
        syscalls_stop(owner, token)
    for token in [*owned.processes, *owned.servers]:
        stop(owner, token)
        stopped += 1
    return stopped


def forget(owner: str) -> None:
    """Stop everything and remove the owner's files (the launcher is closing)."""
    stop_all(owner)
    owned = _OWNED.pop(owner, None)
    if owned is not None:
        owned.workdir.cleanup()


def open_idle(owner: str, host: str, port: int, count: int) -> dict[str, Any]:
    """Open ``count`` connections that send nothing, and keep them here."""
    owned = _owned(owner)
    token = owned.token("idle")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection((host, port), timeout=IDLE_CONNECT_TIMEOUT_S))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        return {"error": exc.strerror or str(exc), "errno": exc.errno}
    owned.idle[token] = sockets
    return {"token": token}


def idle_closed(owner: str, token: str) -> int:
    """How many of the idle connections the server has closed (or reset)."""
    owned = _OWNED.get(owner)
    sockets = owned.idle.get(token, []) if owned is not None else []
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def close_idle(owner: str, token: str) -> None:
    owned = _OWNED.get(owner)
    for sock in owned.idle.pop(token, []) if owned is not None else []:
        sock.close()


def syscalls_start(owner: str, pid: int) -> str:
    """Attach a system call counter to the tree of ``pid`` (the server) on this host."""
    owned = _owned(owner)
    token = owned.token("syscalls")
    owned.counters[token] = counter = SyscallCounter(pid)
    counter.start()
    return token


def syscalls_switch(owner: str, token: str, on: bool) -> None:
    """Open (``on``) or close the counting window."""
    owned = _OWNED.get(owner)
    counter = owned.counters.get(token) if owned is not None else None
    if counter is not None:
        (counter.enable if on else counter.disable)()


def syscalls_stop(owner: str, token: str) -> dict[str, Any]:
    """What the counter counted, as the fields of a SyscallCounts."""
    owned = _OWNED.get(owner)
    counter = owned.counters.pop(token, None) if owned is not None else None
    if counter is None:
        return {"reason": f"no system call counter {token} on host {socket.gethostname()}"}
    return dataclasses.asdict(counter.stop())


def sampler_start(owner: str) -> float:
    """Start sampling on this host; its monotonic clock now."""
    owned = _owned(owner)
    if owned.sampler is not None:
        owned.sampler.stop()
    owned.sampler = Sampler().start()
    return time.monotonic()


def sampler_watch(owner: str, name: str, pid: int, exact: bool = True) -> str | None:
    """Watch the tree of ``pid`` (in its cgroup, for a server started here); how its CPU
    is counted ("cgroup2", "cgroup1", "psutil"), or None if it is gone."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    owned.sampler.watch(name, pid, cgroup=owned.cgroups.get(pid), exact=exact)
    return owned.sampler.accounting(name)


def sampler_sample(owner: str) -> None:
    owned = _OWNED.get(owner)
    if owned is not None and owned.sampler is not None:
        owned.sampler.sample()


def sampler_edge(owner: str, cpu_only: bool = False) -> dict[str, Any] | None:
    """An edge reading on this host (:meth:`Sampler.edge`), as plain values."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    edge = owned.sampler.edge(cpu_only)
    return {"t_s": edge.t_s, "cpu_times": edge.cpu_times,
            "trees": {name: dataclasses.asdict(r) for name, r in edge.trees.items()}}


def sampler_memory(owner: str, name: str) -> dict[str, Any] | None:
    """The PSS, USS and RSS of a watched tree on this host now."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    memory = owned.sampler.memory(name)
    return dataclasses.asdict(memory) if memory is not None else None


def sampler_stop(owner: str) -> dict[str, Any] | None:
    """Stop sampling; every reading, as plain values, with this host's clock now."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    sampler, owned.sampler = owned.sampler, None
    sampler.stop()
    return {
        "series": {name: [dataclasses.asdict(r) for r in series.readings]
                   for name, series in sampler.series.items()},
        "system_t_s": sampler.system_t_s,
        "system_cpu_percent": sampler.system_cpu_percent,
        "interval_s": sampler.interval_s,
        "thread_cpu_s": sampler.thread_cpu_s,
        "thread_elapsed_s": sampler.thread_elapsed_s,
        "monotonic_s": time.monotonic(),
    }
