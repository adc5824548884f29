"""The reaper: what is left of a run is stopped and removed when the runner dies.

PR_SET_PDEATHSIG (``iobench.common.lifeline``) kills the processes the
runner started when it dies, but nothing in the kernel removes its temporary
folder, and a grandchild that did not set the flag would live on. So a
launcher starts one small watcher process beside the run and holds the write
end of a pipe to it (the lifeline). The launcher writes what it owns, one
line each: ``dir PATH``, ``group PGID`` when it starts a process group,
``ended PGID`` once it has stopped and reaped it (the number may then be
reused by someone else), and ``done`` on a clean close. When the pipe ends
without ``done`` (the runner died: SIGKILL, the OOM killer, a crash), the
reaper resumes and kills every group still owned and removes the folders.

On a host of a cluster the lifeline also carries a lease: ``lease S``
means "clean up unless another line comes within S seconds", and the
worker that started the reaper writes ``renew`` while the run's own lease
is alive (see :mod:`iobench.benchmarks.run.remote`). So the reaper also
cleans up when the worker is alive but stuck, not only when it dies.

The reaper has a session of its own, so a terminal's Ctrl-C or hang-up,
which is the runner's to handle, does not reach it.

``python -m iobench.benchmarks.run.reaper`` reads the lines on its stdin.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO


class Reaper:
    """The launcher's end of the lifeline: tell the reaper what to clean up."""

    def __init__(self, lease_s: float | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "iobench.benchmarks.run.reaper"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        self.pid = self.proc.pid
        if lease_s is not None:
            self._send(f"lease {lease_s:g}")

    def renew(self) -> None:
        """The lease goes on (only meaningful after ``lease_s``)."""
        self._send("renew")

    def _send(self, line: str) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.write(line + "\n")
                stdin.flush()

    def own_dir(self, path: Path) -> None:
        self._send(f"dir {path}")

    def own_group(self, pgid: int) -> None:
        self._send(f"group {pgid}")

    def release_group(self, pgid: int) -> None:
        self._send(f"ended {pgid}")

    def close(self) -> None:
        """A clean end: the launcher has stopped everything itself."""
        self._send("done")
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait()


def lines_until_silent(stream: IO[str] | Iterable[str],
                       silence_s: list[float | None]) -> Iterator[str]:
    """The lines of ``stream`` until it ends, or until no line came for ``silence_s[0]``
    seconds (None: wait for ever); the caller may change ``silence_s[0]`` as it reads.
    Lines already in memory (any iterable of them, as in the tests) are just given."""
    if not hasattr(stream, "fileno"):
        yield from stream
        return
    fd = stream.fileno()
    buffered = b""
    deadline = None if silence_s[0] is None else time.monotonic() + silence_s[0]
    while True:
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return  # the lease lapsed
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        buffered += chunk
        *complete, buffered = buffered.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace")
        deadline = None if silence_s[0] is None else time.monotonic() + silence_s[0]


def watch(lines: IO[str] | Iterable[str]) -> bool:
    """Follow the lifeline until it ends (or its lease lapses); clean up unless it
    ended with ``done``.

    Returns True if it cleaned up.
    """
    groups: set[int] = set()
    dirs: list[Path] = []
    lease: list[float | None] = [None]
    for line in lines_until_silent(lines, lease):
        kind, _, value = line.strip().partition(" ")
        if kind == "done":
            return False
        if kind == "lease":
            lease[0] = float(value)
        elif kind == "group":
            groups.add(int(value))
        elif kind == "ended":
            groups.discard(int(value))
        elif kind == "dir":
            dirs.append(Path(value))
    for pgid in groups:
        # SIGCONT first is not needed for SIGKILL, which also ends a stopped
        # process; it is sent so a process that catches nothing still wakes.
        for signum in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
    return True


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    watch(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
