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

The reaper has a session of its own, so a terminal's Ctrl-C or hang-up,
which is the runner's to handle, does not reach it.

``python -m iobench.benchmarks.run.reaper`` reads the lines on its stdin.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


class Reaper:
    """The launcher's end of the lifeline: tell the reaper what to clean up."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "iobench.benchmarks.run.reaper"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     start_new_session=True, text=True)
        self.pid = self.proc.pid

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


def watch(lines: IO[str]) -> bool:
    """Follow the lifeline until it ends; clean up unless it ended with ``done``.

    Returns True if it cleaned up.
    """
    groups: set[int] = set()
    dirs: list[Path] = []
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        if kind == "done":
            return False
        if kind == "group":
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
