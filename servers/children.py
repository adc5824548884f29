"""Child processes of the forking models (fork, prefork): start, reap, stop.

The rules that keep a forking server from leaving processes behind live here
once: a child dies with its parent (``PR_SET_PDEATHSIG``), and stopping waits
for every child, killing the ones that outstay ``STOP_TIMEOUT``.
"""

from __future__ import annotations

import os
import select
import signal
import time
import traceback
from collections.abc import Callable

from iobench.common.lifeline import die_with_parent

# How long stop() lets the children exit on SIGTERM before it sends SIGKILL.
STOP_TIMEOUT = 1.0
# Signals a child must not handle with the parent's handlers.
PARENT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


class Children:
    """The live child processes of one server, by pid."""

    def __init__(self) -> None:
        self.pids: set[int] = set()

    def spawn(self, run: Callable[[], None]) -> int:
        """Fork a child that calls ``run()`` and exits; return its pid.

        The parent's signals are blocked across fork(), so a SIGTERM can
        neither reach the child's copy of the parent's handlers nor find the
        parent before it has recorded the new pid.
        """
        parent = os.getpid()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._run_child(run, parent)
            self.pids.add(pid)
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    @staticmethod
    def _run_child(run: Callable[[], None], parent: int) -> None:
        code = 0
        try:
            for signum in PARENT_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            die_with_parent(parent)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
            run()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            # Never return into the parent's code (its finally blocks, its exit).
            os._exit(code)

    def reap(self) -> None:
        """Collect every child that has exited, without blocking."""
        while self.pids:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.pids.clear()
                return
            if pid == 0:
                return
            self.pids.discard(pid)

    def signal_all(self, signum: int) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every child and wait for it; SIGKILL the ones still alive at ``timeout``."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in list(self.pids):
            if not self._wait_exit(pid, deadline):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            self.pids.discard(pid)

    @staticmethod
    def _wait_exit(pid: int, deadline: float) -> bool:
        """Reap ``pid`` if it exits before ``deadline``; False if it is still running."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # already reaped
            return True
        try:
            # A pidfd becomes readable when the process exits: no polling.
            select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return True
            return reaped != 0
        finally:
            os.close(pidfd)
