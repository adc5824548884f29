"""Process plumbing every layer needs: descriptor limits, CPU pinning, stopping, signals.

Written once here so that a server, a load generator and the matrix runner
raise their limits, pin themselves and stop their children the same way.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from iobench.common.errors import UsageError

# How long a process gets to exit after SIGTERM before its group is killed.
STOP_TIMEOUT_S = 3.0


def raise_fd_limit(needed: int | None = None) -> int:
    """Raise the soft limit to the hard one, and the hard one to ``needed`` if allowed.

    Thousands of connections need more than the usual 1024 descriptors. A
    privileged process (CAP_SYS_RESOURCE) may raise its hard limit too, up to
    ``fs.nr_open``; children inherit both limits, so the runner raising its
    own raises those of every server and load generator it starts.

    Returns the soft limit now in effect. Never lowers anything, and never
    fails: a limit that stays too low is for the caller to report, with the
    number it needs (see :func:`fd_limit_error`).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed is not None and needed > hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (OSError, ValueError):
            pass  # not privileged, or past fs.nr_open: the hard limit is what there is
    if soft < hard or hard == resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return soft


def fd_limit_error(needed: int, what: str, hint: str = "") -> UsageError | None:
    """A one-line error naming ``ulimit -n`` when ``needed`` descriptors are out of reach.

    Raises the limit first (:func:`raise_fd_limit`); returns None when it is
    now high enough.
    """
    limit = raise_fd_limit(needed)
    if limit == resource.RLIM_INFINITY or limit >= needed:
        return None
    return UsageError(f"{what} needs {needed} open files in one process, but `ulimit -n` "
                      f"allows {limit}: raise it to at least {needed} (ulimit -n {needed}){hint}")


@contextlib.contextmanager
def pinned(cpus: Iterable[int] | None) -> Iterator[None]:
    """Run this process on ``cpus`` for the duration of the block (None: leave it).

    Children started inside the block inherit the affinity, which is how the
    runner places a process without a ``preexec_fn`` (unsafe with threads).
    """
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def stop_group(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the process; then SIGKILL whatever is left of its process group.

    The process must lead its own group (``start_new_session=True``). The group
    is killed even when the leader exited in time: children it forked (a
    forking model's) must not outlive it.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


@contextlib.contextmanager
def interrupts_raise(signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
                     ) -> Iterator[None]:
    """While in the block, the given signals raise KeyboardInterrupt once; later ones are
    ignored.

    A stop signal then unwinds like Ctrl-C, through the cleanup that stops child
    processes; ignoring a second one keeps it from breaking off that cleanup.
    Outside the main thread signal handlers cannot be set, and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[..., Any] | int | None] = {}

    def handler(signum: int, frame: object) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)
