"""Child processes that die with their parent, however the parent dies.

A process the benchmark starts (a server, a load generator and its workers,
the neighbour job) must not outlive the process that started it: a server
left behind keeps its port, a busy-poll server keeps burning a core, and a
paused one stays stopped forever. The parent's own clean-up does not run
when it is killed with SIGKILL or by the OOM killer, so the kernel is asked
to do it: ``PR_SET_PDEATHSIG`` sends the child SIGKILL when its parent exits.

The signal follows the *thread* that forked the child, so children must be
started from a thread that lives as long as they should (the main thread).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from collections.abc import Callable, Iterable, Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Loaded once in the parent: a child between fork() and exec() should not
# have to load a library.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent exits.

    ``parent_pid`` is the parent as the caller knew it before fork(): if it
    already died, before prctl() took effect, this process exits at once.
    """
    if _libc is None:
        return
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent_pid:
        os._exit(1)


def child_setup(cpus: Iterable[int] | None = None,
                fd_limit: int | None = None,
                cgroup_procs: str | Sequence[str] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` for subprocess: die with this process, and run on ``cpus``.

    ``fd_limit`` sets the child's descriptor limit (soft and hard), for tests
    of what a server does when it runs out. ``cgroup_procs``: a cgroup's
    ``cgroup.procs`` file (or several, one per hierarchy) the child joins
    before it execs, so everything it will fork is accounted for there.
    """
    parent = os.getpid()
    cpu_set = set(cpus) if cpus is not None else None
    procs_files = [cgroup_procs] if isinstance(cgroup_procs, str) else list(cgroup_procs or [])

    def setup() -> None:
        die_with_parent(parent)
        for procs_file in procs_files:
            with open(procs_file, "w") as procs:
                procs.write(str(os.getpid()))
        if cpu_set:
            os.sched_setaffinity(0, cpu_set)
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    return setup
