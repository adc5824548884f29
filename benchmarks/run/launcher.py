"""Where processes run: the one seam between the matrix logic and the machine.

The runner asks a launcher to start a server, a load generator and the
neighbour job, to open idle connections, and for a sampler of the processes
it started; it never starts, signals or waits for a process itself. It only
reads the pids the launcher's handles carry, to watch them with the sampler
and count their system calls (``None`` for a process on another host). :class:`LocalLauncher`
runs everything on this machine, pinned to the CPUs of its
:class:`Placement`. A launcher that places processes on other hosts
implements the same methods.

Every process is started in its own process group (which holds everything
it forks, and which a Ctrl-C on the terminal does not reach: only the
runner's does), and is stopped by process group: SIGTERM, then SIGKILL after
a timeout. The server gets a session of its own too; the load generator and
the neighbour job stay in the runner's session, see :class:`LocalProcess`.
The launcher remembers what it started, and :meth:`Launcher.stop_all` is the
safety net the runner calls on the way out, whatever happened. Should the
runner die without it (SIGKILL, the OOM killer), every process it started
dies with it (``PR_SET_PDEATHSIG``, see ``iobench.common.lifeline``), and
the local launcher's reaper removes the temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from iobench.benchmarks.run import accounting
from iobench.benchmarks.run.accounting import Cgroup
from iobench.benchmarks.run.reaper import Reaper
from iobench.benchmarks.run.sampler import Sampler
from iobench.benchmarks.run.syscalls import StraceCounter, SyscallCounter, UnavailableCounter
from iobench.common.lifeline import spawn_command
from iobench.common.processes import stop_group
from iobench.loadgen.report import LoadReport
from iobench.servers.process import ServerProcess, ServerStartError, server_report

STOP_TIMEOUT_S = 3.0
# How much of a process's stderr a failure reason quotes.
STDERR_TAIL_CHARS = 600
# How often the runner looks for a round's report (or its load generator's
# readiness) while it waits for one.
ROUND_POLL_S = 0.005


@dataclass(frozen=True)
class Placement:
    """The CPUs the server side (server, neighbour) and the client side run on.

    On a cluster also the hosts: the Dask worker names of the server's host
    and of the client hosts, and each host's address. The CPU lists then
    apply on every host of their side. A local run leaves the host fields
    out, so its record is what it always was.
    """

    server_cpus: list[int]
    client_cpus: list[int]
    cluster: str | None = None  # "local" (a LocalCluster) or the scheduler's address
    server_host: str | None = None
    client_hosts: list[str] | None = None
    addresses: dict[str, str] | None = None  # host name -> its IP address

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    def describe(self) -> str:
        """Where each side ran, in one line."""
        cpus = f"CPUs {self.server_cpus}"
        if self.server_host is None:
            return f"server on {cpus}, load generator on CPUs {self.client_cpus} (one host)"
        addresses = self.addresses or {}
        clients = ", ".join(f"{host} ({addresses.get(host, '?')})"
                            for host in self.client_hosts or [])
        return (f"server on host {self.server_host} ({addresses.get(self.server_host, '?')}) "
                f"{cpus}; load generator on {clients} CPUs {self.client_cpus}; "
                f"Dask cluster {self.cluster}")


@dataclass(frozen=True)
class LoadSpec:
    """One run of the load generator: the ``python -m iobench.loadgen`` options."""

    target: str
    mode: str  # closed | open
    connections: int
    duration_s: float
    warmup_s: float
    size_bytes: int
    rate_rps: float | None = None
    workers: int = 1
    timeout_s: float = 5.0
    idle: int = 0  # silent connections beside the active ones (scale scenario)
    requests_per_connection: int | None = None  # churn: K requests, then a new connection

    def arguments(self, json_path: Path | None, schedule_path: Path | None = None) -> list[str]:
        """The options; ``--json`` only with a path (a remote host picks its own), and
        ``--schedule`` on this host (whose monotonic clock the window is told on)."""
        args = ["--target", self.target, "--connections", str(self.connections),
                "--duration", str(self.duration_s), "--warmup", str(self.warmup_s),
                "--size", str(self.size_bytes), "--mode", self.mode,
                "--workers", str(self.workers), "--timeout", str(self.timeout_s)]
        if json_path is not None:
            args += ["--json", str(json_path)]
        if schedule_path is not None:
            args += ["--schedule", str(schedule_path)]
        if self.rate_rps is not None:
            args += ["--rate", f"{self.rate_rps:g}"]
        if self.idle:
            args += ["--idle", str(self.idle)]
        if self.requests_per_connection is not None:
            args += ["--requests-per-connection", str(self.requests_per_connection)]
        return args


@dataclass
class LoadResult:
    """How a load generator run ended: its exit code, its JSON (if any) and its stderr."""

    returncode: int | None  # None: it did not finish in time and was killed
    report: LoadReport | None
    stderr: str
    # When it exited, on the runner's monotonic clock, if known more precisely
    # than "now" (a load generator on another host is noticed a round trip late).
    ended_s: float | None = None


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The end of ``text`` on one line, for a failure reason."""
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


class Process(ABC):
    """A started process: its pid, whether it still runs, and how to stop it."""

    pid: int
    stopped: bool = False
    # A server's cgroup, when its launcher made one for exact CPU accounting
    # (see ServerHandle); otherwise why not, or None where none was tried.
    cgroup: Cgroup | None = None
    cgroup_note: str | None = None

    @abstractmethod
    def poll(self) -> int | None:
        """The exit code, or None while it runs."""

    @abstractmethod
    def stop(self) -> int | None:
        """Stop it and everything it forked; return its exit code."""

    @abstractmethod
    def stderr_text(self) -> str:
        """What it wrote to stderr so far."""


class Launcher(ABC):
    """Starts the processes of a cell where they belong, and stops them."""

    placement: Placement
    # Whether :meth:`start_load_rounds` gives a load generator that measures rounds
    # in place (a point's servers and load generators kept between its rounds).
    rounds_in_place: bool = False

    @abstractmethod
    def start_server(self, model: str, params: dict[str, Any]) -> RunningServer:
        """Start ``model`` and wait for its ready line (ServerStartError if none)."""

    @abstractmethod
    def start_load(self, spec: LoadSpec) -> RunningLoad:
        """Start the load generator; collect it with :meth:`RunningLoad.result`."""

    def start_load_rounds(self, spec: LoadSpec, rounds: int) -> LoadRounds | None:
        """A load generator that measures ``rounds`` windows on one set of connections,
        each when told (:class:`LoadRounds`); None where this launcher cannot (the
        runner then starts a load generator for every round)."""
        return None

    @abstractmethod
    def start_neighbour(self, duration_s: float, delay_s: float = 0.0) -> NeighbourHandle:
        """Start the reference job on the server's CPUs."""

    @abstractmethod
    def idle_connections(self, host: str, port: int, count: int
                         ) -> contextlib.AbstractContextManager[Sequence[IdleSocket]]:
        """Open ``count`` connections that send nothing, from the client side."""

    @abstractmethod
    def sampler(self) -> Sampler:
        """A sampler that can read the processes this launcher starts."""

    def syscall_counter(self, pid: int) -> SyscallCounter:
        """A counter of the system calls of the server tree rooted at ``pid``.

        It must run on the server's host, as the sampler does: a launcher that
        places the server elsewhere and cannot count there keeps this default,
        and its cells record why the counts are missing.
        """
        return UnavailableCounter(pid, f"{type(self).__name__} does not count system calls "
                                       "on the server's host")

    def strace_counter(self, pid: int) -> SyscallCounter:
        """A counter by ``strace -c -f``, for the low-rate ``syscalls`` cells; as above."""
        return UnavailableCounter(pid, f"{type(self).__name__} does not run strace on the "
                                       "server's host")

    @abstractmethod
    def stop_all(self, keep: Collection[int] = ()) -> None:
        """Stop every process started and not yet stopped, but those in ``keep`` (pids)."""


class LocalProcess(Process):
    """A local subprocess in its own process group, pinned, with stdout/stderr in files.

    It stays in the runner's session on purpose. With the kernel's autogroup
    scheduling, each session is one scheduling group, and groups share a CPU
    fairly whatever the priority of the threads inside them: a load generator
    in a session of its own would have to share its CPU evenly with the
    runner's sampler, which delayed its requests by milliseconds. In one
    session, the sampler's SCHED_IDLE policy makes it yield at once.
    """

    def __init__(self, command: list[str], cpus: list[int], workdir: Path, name: str, *,
                 stdin: int = subprocess.DEVNULL) -> None:
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(spawn_command(command, cpus), stdin=stdin,
                                         stdout=out, stderr=err, process_group=0)
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        if not self.stopped:
            self.stopped = True
            stop_group(self.proc, timeout_s)
        return self.proc.returncode

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class ServerHandle(Process):
    """A running server model: where it listens, and its stderr (for failure reasons).

    ``cgroup`` is the cgroup it runs in when one could be made (exact CPU
    accounting for its whole tree); otherwise ``cgroup_note`` says why not.
    """

    def __init__(self, server: ServerProcess, stderr_path: Path,
                 cgroup: Cgroup | None = None, cgroup_note: str | None = None) -> None:
        self.server = server
        self.cgroup, self.cgroup_note = cgroup, cgroup_note
        self.pid = server.pid
        self.host, self.port = server.address
        self.stderr_path = stderr_path
        self.exit_code: int | None = None

    def poll(self) -> int | None:
        return self.server.proc.poll()

    def pause(self) -> None:
        """Stop the whole server (SIGSTOP to its group): it holds no CPU until resumed."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    def stop(self) -> int | None:
        if not self.stopped:
            self.stopped = True
            self.resume()  # a stopped process would hold its SIGTERM until SIGKILL
            self.exit_code = self.server.stop()
            if self.cgroup is not None:
                self.cgroup.remove()
        return self.exit_code

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def reported(self) -> dict[str, Any] | None:
        """What the server said about itself: its work calibration and, once it
        has stopped, each prefork worker's accepts (see ``server_report``)."""
        accepts = self.server.worker_accepts() if self.stopped else None
        return server_report(self.server.ready.get("work"), accepts)


def told_window(path: Path) -> tuple[float, float] | None:
    """The window a load generator wrote to ``path`` (``--schedule``), on this host's
    monotonic clock; None until it has (the file is replaced whole, never half)."""
    try:
        start, end = json.loads(path.read_text())["window_monotonic_s"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(start), float(end)


class LoadHandle:
    """A running load generator; :meth:`result` waits for it (bounded) and reads its JSON."""

    def __init__(self, process: LocalProcess, json_path: Path,
                 schedule_path: Path | None = None) -> None:
        self.process = process
        self.pid = process.pid
        self.json_path = json_path
        self.schedule_path = schedule_path

    @property
    def tells_window(self) -> bool:
        return self.schedule_path is not None

    def window(self) -> tuple[float, float] | None:
        """The measured window on this host's monotonic clock, once the load generator
        has set it (before it opens), else None."""
        return None if self.schedule_path is None else told_window(self.schedule_path)

    def wait(self, timeout_s: float) -> int | None:
        """Its exit code, or None if it is still running after ``timeout_s``."""
        return self.process.wait(timeout_s)

    def result(self, timeout_s: float) -> LoadResult:
        code = self.process.wait(timeout_s)
        if code is None:
            self.process.stop()
        report = None
        if code is not None and self.json_path.exists():
            with contextlib.suppress(ValueError, OSError):
                report = LoadReport.from_json(json.loads(self.json_path.read_text()))
        return LoadResult(code, report, self.process.stderr_text())

    def stop(self) -> None:
        self.process.stop()


class LoadRounds:
    """A load generator that measures one window each time it is told (``--rounds``).

    It connects once; :meth:`ready` waits for that, :meth:`go` starts the next
    round and returns it as a :class:`RoundHandle`, which the runner watches
    and reads as it would a load generator of its own.
    """

    def __init__(self, process: LocalProcess, json_path: Path, schedule_path: Path) -> None:
        self.process = process
        self.pid = process.pid
        self.json_path = json_path
        self.schedule_path = schedule_path
        self.started = 0

    def ready(self, timeout_s: float) -> dict[str, Any] | None:
        """What it says once every connection is up and served once; None if it exited
        or kept silent for ``timeout_s``."""
        path = Path(f"{self.json_path}.ready")
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError, ValueError):
                told: dict[str, Any] = json.loads(path.read_text())
                return told
            if self.process.poll() is not None or time.monotonic() >= deadline:
                return None
            time.sleep(ROUND_POLL_S)

    def go(self) -> RoundHandle:
        """Start the next round."""
        index, self.started = self.started, self.started + 1
        stdin = self.process.proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):  # one that died says so in its round's result
            stdin.write(b"go\n")
            stdin.flush()
        return RoundHandle(self, index)

    def release(self) -> None:
        """No more rounds: EOF on its stdin, and it closes its connections and exits."""
        stdin = self.process.proc.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()

    def finish(self) -> None:
        """End it: :meth:`release`, a moment to exit, then stop what is left."""
        self.release()
        self.process.wait(1.0)
        self.process.stop()


class RoundHandle:
    """One round of a :class:`LoadRounds`, as the runner sees a load generator: it is
    done once its report is written (or the process has exited)."""

    def __init__(self, rounds: LoadRounds, index: int) -> None:
        self.rounds = rounds
        self.pid = rounds.pid
        self.report_path = Path(f"{rounds.json_path}.{index}")
        self.schedule_path = Path(f"{rounds.schedule_path}.{index}")

    tells_window = True

    def window(self) -> tuple[float, float] | None:
        return told_window(self.schedule_path)

    def wait(self, timeout_s: float) -> int | None:
        """0 once the round's report is there, the exit code of a load generator that
        exited without it, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.report_path.exists():
                return 0
            code = self.rounds.process.poll()
            if code is not None:
                return code if not self.report_path.exists() else 0
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(ROUND_POLL_S, left))

    def result(self, timeout_s: float) -> LoadResult:
        code = self.wait(timeout_s)
        if code is None:
            self.rounds.process.stop()  # stuck: its later rounds fail with its exit
        report = None
        if code == 0:
            with contextlib.suppress(ValueError, OSError):
                report = LoadReport.from_json(json.loads(self.report_path.read_text()))
        if report is None and code == 0:
            code = self.rounds.process.poll()
        return LoadResult(code, report, self.rounds.process.stderr_text())

    def stop(self) -> None:
        self.rounds.process.stop()


class RunningServer(Protocol):
    """A started server model: here (ServerHandle) or on another host. What the runner
    asks of it; ``cgroup`` is None where the cgroup lives on the server's own host."""

    @property
    def pid(self) -> int: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def cgroup(self) -> Cgroup | None: ...
    @property
    def cgroup_note(self) -> str | None: ...
    def poll(self) -> int | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> int | None: ...
    def stderr_text(self) -> str: ...
    def reported(self) -> dict[str, Any] | None: ...


class IdleSocket(Protocol):
    """An idle connection as the runner holds it: a socket here, or one on a client host
    that answers for it. The runner only asks whether the server closed it."""

    def setblocking(self, flag: bool, /) -> None: ...
    def recv(self, size: int, /) -> bytes: ...


class RunningLoad(Protocol):
    """The load generator while it runs: one process here (LoadHandle) or shards on
    other hosts. ``pid`` is None when no process of it is on this host to sample."""

    @property
    def pid(self) -> int | None: ...
    @property
    def tells_window(self) -> bool: ...  # whether window() will say, on this host's clock
    def wait(self, timeout_s: float) -> int | None: ...
    def window(self) -> tuple[float, float] | None: ...
    def result(self, timeout_s: float) -> LoadResult: ...
    def stop(self) -> None: ...


class Finishing(Protocol):
    """A process the runner waits for and reads when it ends, on this host or another."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout_s: float) -> int | None: ...
    def stop(self) -> int | None: ...
    def stdout_text(self) -> str: ...
    def stderr_text(self) -> str: ...


class NeighbourHandle:
    """The running reference job; :meth:`report` waits for its one JSON line."""

    def __init__(self, process: Finishing) -> None:
        self.process = process
        self.pid = process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def report(self, timeout_s: float) -> dict[str, Any]:
        """What :func:`iobench.benchmarks.run.neighbour.work_for` returned; RuntimeError
        if it failed."""
        code = self.process.wait(timeout_s)
        if code is None:
            self.process.stop()
            raise RuntimeError(f"neighbour job did not finish within {timeout_s:.0f} s")
        if code != 0:
            raise RuntimeError(f"neighbour job exited with code {code}: "
                               f"{tail(self.process.stderr_text())}")
        return json.loads(self.process.stdout_text())

    def stop(self) -> None:
        self.process.stop()


class LocalLauncher(Launcher):
    """Runs every process on this machine, each pinned to its side's CPUs."""

    rounds_in_place = True

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self._tmp = tempfile.TemporaryDirectory(prefix="iobench-run-")
        self.workdir = Path(self._tmp.name)
        self._started: list[Process] = []
        self._count = 0
        # Stops what is left and removes the folder should this process die
        # without its clean-up; see iobench.benchmarks.run.reaper.
        self.reaper = Reaper()
        self.reaper.own_dir(self.workdir)

    def _track(self, process: Process) -> None:
        """Remember ``process`` (the leader of its own group) until it is stopped."""
        self._started.append(process)
        self.reaper.own_group(process.pid)

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{self._count:05d}-{kind}"

    def start_server(self, model: str, params: dict[str, Any]) -> ServerHandle:
        stderr_path = self.workdir / f"{self._name('server')}.stderr"
        cgroup, note = accounting.create_or_note(model)
        with open(stderr_path, "wb") as stderr:
            try:
                server = ServerProcess(model, params, cpus=self.placement.server_cpus,
                                       stderr=stderr,
                                       cgroup_procs=cgroup.procs_files if cgroup else None)
            except ServerStartError as exc:
                if cgroup is not None:
                    cgroup.remove()
                detail = tail(stderr_path.read_text(errors="replace"))
                raise ServerStartError(f"{exc} {detail}".strip()) from None
            except subprocess.SubprocessError as exc:  # could not join the cgroup
                if cgroup is None:
                    raise
                cgroup.remove()
                cgroup, note = None, f"cannot join a cgroup ({exc}); CPU counted with psutil"
                server = ServerProcess(model, params, cpus=self.placement.server_cpus,
                                       stderr=stderr)
        handle = ServerHandle(server, stderr_path, cgroup, note)
        self._track(handle)
        return handle

    def start_load(self, spec: LoadSpec) -> LoadHandle:
        name = self._name("load")
        json_path = self.workdir / f"{name}.json"
        schedule_path = self.workdir / f"{name}.schedule.json"
        command = [sys.executable, "-m", "iobench.loadgen",
                   *spec.arguments(json_path, schedule_path)]
        process = LocalProcess(command, self.placement.client_cpus, self.workdir, name)
        self._track(process)
        return LoadHandle(process, json_path, schedule_path)

    def start_load_rounds(self, spec: LoadSpec, rounds: int) -> LoadRounds:
        name = self._name("load")
        json_path = self.workdir / f"{name}.json"
        schedule_path = self.workdir / f"{name}.schedule.json"
        command = [sys.executable, "-m", "iobench.loadgen",
                   *spec.arguments(json_path, schedule_path), "--rounds", str(rounds)]
        process = LocalProcess(command, self.placement.client_cpus, self.workdir, name,
                               stdin=subprocess.PIPE)
        self._track(process)
        return LoadRounds(process, json_path, schedule_path)

    def start_neighbour(self, duration_s: float, delay_s: float = 0.0) -> NeighbourHandle:
        command = [sys.executable, "-m", "iobench.benchmarks.run.neighbour",
                   "--duration", str(duration_s), "--delay", str(delay_s)]
        process = LocalProcess(command, self.placement.server_cpus, self.workdir,
                               self._name("neighbour"))
        self._track(process)
        return NeighbourHandle(process)

    @contextlib.contextmanager
    def idle_connections(self, host: str, port: int, count: int) -> Iterator[list[socket.socket]]:
        # Idle sockets cost no CPU, so the runner can hold them itself.
        sockets: list[socket.socket] = []
        try:
            for _ in range(count):
                sockets.append(socket.create_connection((host, port), timeout=5.0))
            yield sockets
        finally:
            for sock in sockets:
                sock.close()

    def sampler(self) -> Sampler:
        return Sampler()

    def syscall_counter(self, pid: int) -> SyscallCounter:
        return SyscallCounter(pid, self.workdir, self.placement.server_cpus)

    def strace_counter(self, pid: int) -> SyscallCounter:
        return StraceCounter(pid, self.workdir)

    def stop_all(self, keep: Collection[int] = ()) -> None:
        for started in reversed(self._started):
            if started.pid not in keep:
                started.stop()
                self.reaper.release_group(started.pid)
        self._started = [started for started in self._started if started.pid in keep]

    def close(self) -> None:
        self.stop_all()
        self._tmp.cleanup()
        self.reaper.close()


__all__ = ["Launcher", "LoadResult", "LoadSpec", "LocalLauncher", "Placement", "ServerStartError",
           "tail"]
