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

What a launcher starts here is bound to a lease: every call about it, and
the runner's :func:`renew` every :data:`iobench.benchmarks.run.cluster.RENEW_S`,
extends it by :data:`LEASE_S`. A thread of this worker looks at the leases;
when one lapses (the runner was killed, lost its network, or hangs) it stops
everything of that launcher at once and removes its folder. Beside it, a
reaper process per launcher (:mod:`iobench.benchmarks.run.reaper`) holds the
same list of process groups and folders, and cleans up if this worker dies
or is stuck too long to renew the reaper's own lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from iobench.benchmarks.run import accounting
from iobench.benchmarks.run.accounting import Cgroup
from iobench.benchmarks.run.environment import host_environment
from iobench.benchmarks.run.launcher import STOP_TIMEOUT_S, LocalProcess, tail
from iobench.benchmarks.run.reaper import Reaper
from iobench.benchmarks.run.sampler import Sampler
from iobench.benchmarks.run.syscalls import SyscallCounter
from iobench.servers.process import ServerProcess, ServerStartError

IDLE_CONNECT_TIMEOUT_S = 5.0
# How often :func:`wait_exit` looks at its processes: the resolution of their exit times.
EXIT_POLL_S = 0.005
# A launcher's lease: a few of the runner's renewals long, so a late one or two
# (a loaded machine, a slow network) do not end a run, and short enough that a
# dead runner's processes stop within seconds.
LEASE_S = 4.0
# How often the leases are looked at (and the reapers' own leases renewed).
LEASE_CHECK_S = 0.25
# The reaper's lease, renewed by this worker's lease thread: it lapses only if
# the worker cannot run that thread this long (or at once if the worker dies).
REAPER_LEASE_S = 6.0
# The runner of a lapsed lease is gone: its processes get little time to exit.
LAPSED_STOP_TIMEOUT_S = 0.5

F = TypeVar("F", bound=Callable[..., Any])


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
    reaper: Reaper | None = None
    lease_until: float = 0.0  # this host's monotonic clock
    busy: int = 0  # calls about this launcher in progress: its lease cannot lapse meanwhile

    def token(self, kind: str) -> str:
        """A name unique across hosts, so one call can carry the tokens of several."""
        self.count += 1
        return f"{self.count:05d}-{kind}-{uuid.uuid4().hex[:12]}"

    @property
    def path(self) -> Path:
        return Path(self.workdir.name)


_OWNED: dict[str, Owned] = {}
# Guards _OWNED and the leases: calls run on the worker's event loop, the lease
# thread beside it.
_LOCK = threading.RLock()
_lease_thread: threading.Thread | None = None


def _owned(owner: str) -> Owned:
    with _LOCK:
        if owner not in _OWNED:
            owned = Owned(tempfile.TemporaryDirectory(prefix="iobench-remote-"))
            owned.reaper = Reaper(REAPER_LEASE_S)
            owned.reaper.own_dir(owned.path)
            owned.lease_until = time.monotonic() + LEASE_S
            _OWNED[owner] = owned
            _start_lease_thread()
        return _OWNED[owner]


def _begin(owner: str) -> Owned | None:
    with _LOCK:
        owned = _OWNED.get(owner)
        if owned is not None:
            owned.busy += 1
            owned.lease_until = time.monotonic() + LEASE_S
        return owned


def _end(owner: str, began: Owned | None) -> None:
    with _LOCK:
        owned = _OWNED.get(owner)
        if began is not None:
            began.busy -= 1
        if owned is not None:
            owned.lease_until = time.monotonic() + LEASE_S


def leased(function: F) -> F:
    """A call about ``owner``'s processes (its first argument): the runner is alive, so
    the lease is renewed, and it cannot lapse while the call runs (a server's start
    holds the worker's event loop for up to its ready time-out)."""
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def call_async(owner: str, *args: Any) -> Any:
            began = _begin(owner)
            try:
                return await function(owner, *args)
            finally:
                _end(owner, began)

        return cast(F, call_async)  # functools.wraps kept the wrapped function's signature

    @functools.wraps(function)
    def call(owner: str, *args: Any) -> Any:
        began = _begin(owner)
        try:
            return function(owner, *args)
        finally:
            _end(owner, began)

    return cast(F, call)  # functools.wraps kept the wrapped function's signature


def _start_lease_thread() -> None:
    global _lease_thread
    if _lease_thread is None or not _lease_thread.is_alive():
        _lease_thread = threading.Thread(target=_watch_leases, name="iobench-leases",
                                         daemon=True)
        _lease_thread.start()


def _watch_leases() -> None:
    """Stop and remove what every lapsed launcher left here; renew the reapers of the rest."""
    while True:
        time.sleep(LEASE_CHECK_S)
        lapsed = []
        with _LOCK:
            now = time.monotonic()
            for owner, owned in list(_OWNED.items()):
                if owned.busy == 0 and now > owned.lease_until:
                    lapsed.append(_OWNED.pop(owner))
                elif owned.reaper is not None:
                    owned.reaper.renew()
        for owned in lapsed:
            with contextlib.suppress(Exception):  # a thread that dies would watch no more
                _release(owned, LAPSED_STOP_TIMEOUT_S)


@leased
def renew(owner: str) -> float:
    """The runner is alive: extend its lease (made on the first call); the lease's end."""
    return _owned(owner).lease_until


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


@leased
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
    if owned.reaper is not None:
        owned.reaper.own_group(server.pid)
    if cgroup is not None:
        owned.cgroups[server.pid] = cgroup
    return {"token": token, "pid": server.pid, "host": server.host, "port": server.port,
            "cgroup_note": note, "work": server.ready.get("work")}


@leased
def start_load(owner: str, arguments: list[str], cpus: list[int]) -> dict[str, Any]:
    """Start ``python -m iobench.loadgen`` with ``arguments`` plus a JSON path of its own."""
    if (problem := _check_cpus(cpus)) is not None:
        return {"error": problem}
    owned = _owned(owner)
    token = owned.token("load")
    command = [sys.executable, "-m", "iobench.loadgen", *arguments,
               "--json", str(owned.path / f"{token}.json")]
    return _started(owned, token, LocalProcess(command, cpus, owned.path, token))


@leased
def start_neighbour(owner: str, duration_s: float, delay_s: float,
                    cpus: list[int]) -> dict[str, Any]:
    if (problem := _check_cpus(cpus)) is not None:
        return {"error": problem}
    owned = _owned(owner)
    token = owned.token("neighbour")
    command = [sys.executable, "-m", "iobench.benchmarks.run.neighbour",
               "--duration", str(duration_s), "--delay", str(delay_s)]
    return _started(owned, token, LocalProcess(command, cpus, owned.path, token))


def _started(owned: Owned, token: str, process: LocalProcess) -> dict[str, Any]:
    owned.processes[token] = process
    if owned.reaper is not None:
        owned.reaper.own_group(process.pid)  # the leader of its own group
    return {"token": token, "pid": process.pid}


@leased
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


@leased
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


@leased
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


@leased
def server_stderr(owner: str, token: str) -> str:
    owned = _OWNED.get(owner)
    if owned is None or token not in owned.servers:
        return ""
    return owned.servers[token][1].read_text(errors="replace")


@leased
def signal_server(owner: str, token: str, signum: int) -> None:
    """SIGSTOP/SIGCONT the server's whole process group (the neighbour scenario)."""
    owned = _OWNED.get(owner)
    if owned is not None and token in owned.servers:
        signal_server_process(owned.servers[token][0], signum)


@leased
def stop(owner: str, token: str) -> int | None:
    """Stop one process or server and everything it forked; its exit code."""
    owned = _OWNED.get(owner)
    return None if owned is None else _stop_one(owned, token, STOP_TIMEOUT_S)


def _stop_one(owned: Owned, token: str, timeout_s: float) -> int | None:
    code = None
    if token in owned.processes:
        process = owned.processes.pop(token)
        code = process.stop(timeout_s)
        pid = process.pid
    elif token in owned.servers:
        server, _ = owned.servers.pop(token)
        signal_server_process(server, signal.SIGCONT)  # a stopped server holds its SIGTERM
        code = server.stop(timeout_s)
        cgroup = owned.cgroups.pop(server.pid, None)
        if cgroup is not None:
            cgroup.remove()
        pid = server.pid
    else:
        return None
    if owned.reaper is not None:
        owned.reaper.release_group(pid)  # reaped: the number may be someone else's now
    return code


def signal_server_process(server: ServerProcess, signum: int) -> None:
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signum)


@leased
def stop_all(owner: str) -> int:
    """Stop everything ``owner`` started on this host; how many processes were stopped."""
    owned = _OWNED.get(owner)
    return 0 if owned is None else _stop_everything(owned, STOP_TIMEOUT_S)


def _stop_everything(owned: Owned, timeout_s: float) -> int:
    stopped = 0
    if owned.sampler is not None:
        owned.sampler.stop()
        owned.sampler = None
    for sockets in owned.idle.values():
        for sock in sockets:
            sock.close()
    owned.idle.clear()
    for counter in owned.counters.values():
        with contextlib.suppress(Exception):  # its figures are not wanted any more
            counter.stop()
    owned.counters.clear()
    for token in [*owned.processes, *owned.servers]:
        _stop_one(owned, token, timeout_s)
        stopped += 1
    return stopped


def _release(owned: Owned, timeout_s: float) -> None:
    """Stop everything of ``owned`` (no longer in _OWNED), remove its folder, end its reaper."""
    _stop_everything(owned, timeout_s)
    owned.workdir.cleanup()
    if owned.reaper is not None:
        owned.reaper.close()


@leased
def forget(owner: str) -> None:
    """Stop everything and remove the owner's files (the launcher is closing)."""
    with _LOCK:
        owned = _OWNED.pop(owner, None)
    if owned is not None:
        _release(owned, STOP_TIMEOUT_S)


@leased
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


@leased
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


@leased
def close_idle(owner: str, token: str) -> None:
    owned = _OWNED.get(owner)
    for sock in owned.idle.pop(token, []) if owned is not None else []:
        sock.close()


@leased
def syscalls_start(owner: str, pid: int) -> str:
    """Attach a system call counter to the tree of ``pid`` (the server) on this host."""
    owned = _owned(owner)
    token = owned.token("syscalls")
    # Its FIFOs and output in the launcher's folder, which goes with everything
    # else of it, also when the runner is killed (in /tmp, they had outlived it).
    owned.counters[token] = counter = SyscallCounter(pid, owned.path)
    counter.start()
    return token


@leased
def syscalls_switch(owner: str, token: str, on: bool) -> None:
    """Open (``on``) or close the counting window."""
    owned = _OWNED.get(owner)
    counter = owned.counters.get(token) if owned is not None else None
    if counter is not None:
        (counter.enable if on else counter.disable)()


@leased
def syscalls_stop(owner: str, token: str) -> dict[str, Any]:
    """What the counter counted, as the fields of a SyscallCounts."""
    owned = _OWNED.get(owner)
    counter = owned.counters.pop(token, None) if owned is not None else None
    if counter is None:
        return {"reason": f"no system call counter {token} on host {socket.gethostname()}"}
    return dataclasses.asdict(counter.stop())


@leased
def sampler_start(owner: str) -> float:
    """Start sampling on this host; its monotonic clock now."""
    owned = _owned(owner)
    if owned.sampler is not None:
        owned.sampler.stop()
    owned.sampler = Sampler().start()
    return time.monotonic()


@leased
def sampler_watch(owner: str, name: str, pid: int, exact: bool = True) -> str | None:
    """Watch the tree of ``pid`` (in its cgroup, for a server started here); how its CPU
    is counted ("cgroup2", "cgroup1", "psutil"), or None if it is gone."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    owned.sampler.watch(name, pid, cgroup=owned.cgroups.get(pid), exact=exact)
    return owned.sampler.accounting(name)


@leased
def sampler_sample(owner: str) -> None:
    owned = _OWNED.get(owner)
    if owned is not None and owned.sampler is not None:
        owned.sampler.sample()


@leased
def sampler_edge(owner: str, cpu_only: bool = False) -> dict[str, Any] | None:
    """An edge reading on this host (:meth:`Sampler.edge`), as plain values."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    edge = owned.sampler.edge(cpu_only)
    return {"t_s": edge.t_s, "cpu_times": edge.cpu_times,
            "trees": {name: dataclasses.asdict(r) for name, r in edge.trees.items()}}


@leased
def sampler_memory(owner: str, name: str) -> dict[str, Any] | None:
    """The PSS, USS and RSS of a watched tree on this host now."""
    owned = _OWNED.get(owner)
    if owned is None or owned.sampler is None:
        return None
    memory = owned.sampler.memory(name)
    return dataclasses.asdict(memory) if memory is not None else None


@leased
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
