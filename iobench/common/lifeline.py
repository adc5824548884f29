"""Child processes that die with their parent, however the parent dies.

A process the benchmark starts (a server, a load generator and its workers,
the neighbour job) must not outlive the process that started it: a server
left behind keeps its port, a busy-poll server keeps burning a core, and a
paused one stays stopped forever. The parent's own clean-up does not run
when it is killed with SIGKILL or by the OOM killer, so the kernel is asked
to do it: ``PR_SET_PDEATHSIG`` sends the child SIGKILL when its parent exits.

The signal follows the *thread* that forked the child, so children must be
started from a thread that lives as long as they should (the main thread).
A child started with :func:`spawn_command` sets the flag itself, after exec.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterable, Sequence

from iobench.common import spawn

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Loaded once in the parent: a forked child (a forking server's) should not
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


def spawn_command(command: list[str], cpus: Iterable[int] | None = None,
                  fd_limit: int | None = None,
                  cgroup_procs: str | Sequence[str] | None = None) -> list[str]:
    """``command`` behind the exec wrapper (:mod:`iobench.common.spawn`): it dies with
    this process, and runs on ``cpus``.

    ``fd_limit`` sets the child's descriptor limit (soft and hard), for tests
    of what a server does when it runs out. ``cgroup_procs``: a cgroup's
    ``cgroup.procs`` file (or several, one per hierarchy) the child joins
    before it execs the command, so everything it will fork is accounted for
    there. The wrapper makes
    these settings itself after exec, so nothing runs in Python between fork
    and exec (no ``preexec_fn``: unsafe in a threaded process); a set-up that
    fails exits with :data:`iobench.common.spawn.SETUP_FAILED`.
    """
    # -S: the wrapper needs the standard library only, and starts in a third of the time.
    wrapper = [sys.executable, "-S", spawn.__file__, "--parent", str(os.getpid())]
    if cpus:
        wrapper += ["--cpus", ",".join(str(cpu) for cpu in sorted(set(cpus)))]
    if fd_limit is not None:
        wrapper += ["--fd-limit", str(fd_limit)]
    for procs_file in [cgroup_procs] if isinstance(cgroup_procs, str) else cgroup_procs or []:
        wrapper += ["--cgroup-procs", procs_file]
    return [*wrapper, "--", *command]
