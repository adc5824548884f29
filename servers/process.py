"""Start a server model in a child process and stop it again.

Used by the tests and by the benchmark runner's local launcher. The child
runs in its own process group, so stopping it reaches every process it forked.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

from iobench.common.lifeline import spawn_command
from iobench.common.processes import STOP_TIMEOUT_S, stop_group
from iobench.common.spawn import SETUP_FAILED

READY_TIMEOUT = 10.0
# How long stop() reads the lines a stopped server printed after its ready
# line; by then its whole process group is gone, so this is only a bound.
REPORT_READ_TIMEOUT = 1.0


class ServerStartError(RuntimeError):
    """The server exited, or printed no ready line in time."""


class ChildSetupError(subprocess.SubprocessError):
    """The child could not make its own settings (join the cgroup, pin) before it ran."""


class ServerProcess:
    """A running ``python -m iobench.servers MODEL``; use as a context manager.

    ``cpus``, if given, pins the server (and anything it forks) to those CPUs;
    ``fd_limit``, if given, is its limit on open descriptors (soft and hard),
    to see how it behaves when it runs out. ``cgroup_procs``, if given, is a
    cgroup's ``cgroup.procs`` file (or one per hierarchy) the server joins before it execs, so the
    kernel accounts for everything it forks.
    """

    def __init__(self, model: str, params: dict[str, Any] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, cpus: Iterable[int] | None = None,
                 stderr: IO[bytes] | int | None = subprocess.PIPE,
                 ready_timeout: float = READY_TIMEOUT, fd_limit: int | None = None,
                 cgroup_procs: str | Sequence[str] | None = None) -> None:
        command = [sys.executable, "-m", "iobench.servers",
                   model, "--host", host, "--port", str(port)]
        for name, value in (params or {}).items():
            command += ["--param", f"{name}={value}"]
        self.model = model
        # JSON lines printed after the ready line (prefork's workers' accepts),
        # read when the server stops.
        self.reports: list[dict[str, Any]] = []
        self._after_ready = b""
        # Its own session, yet tied to this process: it dies when this one does.
        self.proc = subprocess.Popen(spawn_command(command, cpus, fd_limit, cgroup_procs),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr, start_new_session=True)
        try:
            self.ready = self._await_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.host: str = self.ready["host"]
        self.port: int = self.ready["port"]
        self.pid: int = self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _await_ready(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buffered = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not readable:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                code = self.proc.wait()
                if code == SETUP_FAILED:
                    raise ChildSetupError(f"{self.model} could not be set up: "
                                          f"{self.stderr_text().strip()}")
                raise ServerStartError(f"{self.model} exited with code {code} before it was "
                                       f"ready: {self.stderr_text().strip()}")
            buffered += chunk
            line, sep, rest = buffered.partition(b"\n")
            if sep:
                ready = json.loads(line)
                if ready.get("event") == "ready":
                    self._after_ready = rest
                    return ready
        raise ServerStartError(f"{self.model} printed no ready line within {timeout:.0f} s")

    def stderr_text(self) -> str:
        """What the server wrote to stderr (only once it has exited, else empty)."""
        if self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the server; SIGKILL its whole process group if it lingers.

        Then read the JSON lines it printed after its ready line into :attr:`reports`.
        """
        code = stop_group(self.proc, timeout)
        if self.proc.stdout and not self.proc.stdout.closed:
            self._read_reports()
            self.proc.stdout.close()
        return code

    def _read_reports(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        output = self._after_ready
        deadline = time.monotonic() + REPORT_READ_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([fd], [], [], left)
            if not readable or not (chunk := os.read(fd, 65536)):
                break
            output += chunk
        for line in output.splitlines():
            try:
                report = json.loads(line)
            except ValueError:  # not ours (a model's stray print): skip it
                continue
            if isinstance(report, dict):
                self.reports.append(report)

    def worker_accepts(self) -> list[int] | None:
        """Connections each worker process accepted, busiest first; None if none reported.

        Known only once the server has stopped (prefork's workers print them then).
        """
        accepts = [report["accepted"] for report in self.reports
                   if report.get("event") == "worker" and isinstance(report.get("accepted"), int)]
        return sorted(accepts, reverse=True) or None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.proc.stderr:
            self.proc.stderr.close()




def busiest_share(accepts: list[int] | None) -> float | None:
    """The busiest worker's share of all accepts (1/N is perfect balance); None if none."""
    if not accepts or sum(accepts) == 0:
        return None
    return max(accepts) / sum(accepts)


def server_report(work: dict[str, Any] | None,
                  accepts: list[int] | None) -> dict[str, Any] | None:
    """What a server said about itself, as a cell stores it; None if it said nothing.

    ``work``: its ready line's work calibration. ``accepts``: each worker's
    accepts, busiest first (prefork), with the busiest worker's share.
    """
    report: dict[str, Any] = {}
    if work is not None:
        report["work"] = work
    if accepts is not None:
        report["worker_accepts"] = accepts
        report["busiest_worker_share"] = busiest_share(accepts)
    return report or None
