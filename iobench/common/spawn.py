"""A child's own set-up, made after exec: die with the parent, join a cgroup, pin, limit.

``subprocess``'s ``preexec_fn`` runs Python between fork() and exec() in the
child of a multi-threaded process (the runner samples in a thread; a Dask
worker is full of threads), where a lock another thread held at fork() time
is never released: Python documents that it can deadlock. So nothing runs
there any more: :func:`iobench.common.lifeline.spawn_command` puts this small
program in front of the command, subprocess forks and execs it at once (in C,
with ``process_group=``/``start_new_session=`` where asked), and this program,
a fresh single-threaded process, makes the settings and execs the command in
its own place, keeping its pid.

    python PATH/spawn.py [--parent PID] [--cpus 0,2] [--fd-limit N]
                         [--cgroup-procs FILE]... -- COMMAND [ARG...]

``--cgroup-procs`` may be given once per cgroup hierarchy to join (a CPU
cgroup and, on a machine with cgroup v1's memory controller, a memory one).

Only the standard library, and nothing of iobench, is imported, so it starts
in a few milliseconds. A set-up that fails exits with :data:`SETUP_FAILED`
and one line on stderr, without running the command.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The exit code of a set-up that failed (not one a command of ours uses), so
# a launcher can tell it from the command's own failure.
SETUP_FAILED = 121


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent exits.

    The flag survives exec (of a program that is not set-user-ID). If the
    parent already died before prctl() took effect, exit at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent_pid:
        os._exit(1)


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """The options before ``--``, and the command after it.

    Repeated ``--cgroup-procs`` files are kept in order, one a line.
    """
    if "--" not in argv:
        raise ValueError("usage: spawn.py [--parent PID] [--cpus LIST] [--fd-limit N] "
                         "[--cgroup-procs FILE] -- COMMAND...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    if len(options) % 2 or not command:
        raise ValueError(f"bad arguments: {' '.join(argv)}")
    names = ("--parent", "--cpus", "--fd-limit", "--cgroup-procs")
    settings: dict[str, str] = {}
    for name, value in zip(options[::2], options[1::2], strict=True):
        settings[name] = (f"{settings[name]}\n{value}" if name == "--cgroup-procs"
                          and name in settings else value)
    unknown = [name for name in settings if name not in names]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]}")
    return settings, command


def set_up(settings: dict[str, str]) -> None:
    """Make the settings, in the order the preexec function made them."""
    if "--parent" in settings:
        die_with_parent(int(settings["--parent"]))
    for procs_file in settings.get("--cgroup-procs", "").splitlines():
        # Before exec, so everything the command forks is accounted for there.
        with open(procs_file, "w") as procs:
            procs.write(str(os.getpid()))
    if "--cpus" in settings:
        os.sched_setaffinity(0, {int(cpu) for cpu in settings["--cpus"].split(",")})
    if "--fd-limit" in settings:
        limit = int(settings["--fd-limit"])
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def main(argv: list[str]) -> int:
    try:
        settings, command = parse(argv)
        set_up(settings)
    except (OSError, ValueError) as exc:
        print(f"iobench spawn: cannot set up {' '.join(argv[-1:])}: {exc}", file=sys.stderr)
        return SETUP_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"iobench spawn: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
    return SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
