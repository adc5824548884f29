"""Exact CPU accounting for a server's whole process tree, by a cgroup of its own.

The kernel charges every task's CPU time to its cgroup as it runs, and keeps
it there after the task exits, however short-lived it was and whoever reaped
it (or whether anyone did: a parent that ignores SIGCHLD leaves no
``children_user`` behind for psutil to find). One file read gives the whole
tree's user and system time, so a fork-per-connection server with a thousand
children is read as cheaply and as exactly as a single process.

The runner's launcher creates one cgroup per server, the server joins it
before it execs (so nothing it forks escapes), and the cgroup is removed
when the server has stopped. cgroup v2 is the first choice, v1's cpuacct
controller the second; where neither can be created (no permission, no
cgroup file system, a container that hides it) :func:`create` says why and
the sampler falls back to walking the tree with psutil.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP2 = "cgroup2"
CGROUP1 = "cgroup1"
PSUTIL = "psutil"
# Tasks leave a cgroup when they exit; a killed server's last children may
# take a moment to, and the cgroup cannot be removed before.
REMOVE_TIMEOUT_S = 2.0
MOUNTS = Path("/proc/self/mounts")
OWN_CGROUPS = Path("/proc/self/cgroup")

_names = itertools.count()
# Every cgroup this module makes is named iobench-<runner pid>-<n>-<label>.
PREFIX = "iobench-"


class CgroupUnavailable(Exception):
    """No cgroup could be created here; the message says why."""


@dataclass(frozen=True)
class Cgroup:
    """One cgroup this process created: its kind, folder and how to read its CPU."""

    kind: str  # CGROUP2 or CGROUP1
    path: Path

    @property
    def procs_file(self) -> str:
        """The file a process writes its pid to, to join."""
        return str(self.path / "cgroup.procs")

    def cpu_s(self) -> tuple[float, float]:
        """(user, system) seconds used by every task that was ever in the cgroup."""
        if self.kind == CGROUP2:
            stat = dict(line.split() for line in
                        (self.path / "cpu.stat").read_text().splitlines() if line.strip())
            return int(stat["user_usec"]) / 1e6, int(stat["system_usec"]) / 1e6
        user = int((self.path / "cpuacct.usage_user").read_text()) / 1e9
        system = int((self.path / "cpuacct.usage_sys").read_text()) / 1e9
        return user, system

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> bool:
        """Remove the cgroup once its tasks are gone; False if it could not be.

        Called after the server was stopped by process group. Anything left in
        the cgroup escaped that group (a child that called setsid): cgroup v2
        can kill it by cgroup, which is exactly the set the server made.
        """
        deadline = time.monotonic() + timeout_s
        killed = False
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
            if not killed and self.kind == CGROUP2 and (self.path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    if self.pids():
                        (self.path / "cgroup.kill").write_text("1")
                        killed = True
            time.sleep(0.02)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, options) of every cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in MOUNTS.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                found.append((parts[1].replace("\\040", " "), parts[2], set(parts[3].split(","))))
    return found


def _own_path(kind: str) -> str:
    """This process's cgroup path in the v2 hierarchy, or in v1's cpuacct one."""
    with contextlib.suppress(OSError):
        for line in OWN_CGROUPS.read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if kind == CGROUP2 and number == "0" and controllers == "":
                return path
            if kind == CGROUP1 and "cpuacct" in controllers.split(","):
                return path
    return "/"


def _candidates() -> list[tuple[str, Path]]:
    """Where a cgroup could be made, best first: v2, then v1 cpuacct."""
    mounts = _mounts()
    found = [(CGROUP2, Path(point) / _own_path(CGROUP2).lstrip("/"))
             for point, fs, _ in mounts if fs == "cgroup2"]
    found += [(CGROUP1, Path(point) / _own_path(CGROUP1).lstrip("/"))
              for point, fs, options in mounts if fs == "cgroup" and "cpuacct" in options]
    return found


def create(label: str = "server") -> Cgroup:
    """A new, empty cgroup for one server; CgroupUnavailable says why there is none."""
    candidates = _candidates()
    if not candidates:
        raise CgroupUnavailable("no cgroup2 or cgroup v1 cpuacct file system is mounted")
    reasons = []
    for kind, parent in candidates:
        sweep(parent)
        path = parent / f"{PREFIX}{os.getpid()}-{next(_names)}-{label}"
        try:
            path.mkdir()
        except OSError as exc:
            reasons.append(f"{kind}: cannot create {path}: {exc.strerror or exc}")
            continue
        cgroup = Cgroup(kind, path)
        try:
            cgroup.cpu_s()
        except (OSError, KeyError, ValueError) as exc:
            cgroup.remove(0.0)
            reasons.append(f"{kind}: {path} has no CPU statistics ({exc})")
            continue
        return cgroup
    raise CgroupUnavailable("; ".join(reasons))


def create_or_note(label: str = "server") -> tuple[Cgroup | None, str | None]:
    """A cgroup as :func:`create` makes one, or None and the note a cell records: its
    CPU is then counted with psutil."""
    try:
        return create(label), None
    except CgroupUnavailable as exc:
        return None, f"no cgroup for exact accounting ({exc}); CPU counted with psutil"


def sweep(parent: Path) -> list[Path]:
    """Remove the empty cgroups left by runners that died without cleaning up.

    A runner killed with SIGKILL cannot remove its server's cgroup. Its name
    carries the runner's pid; once that pid is gone and the cgroup is empty
    (its server was stopped by the lifeline or the reaper), it is removed.
    The kernel refuses to remove a cgroup that still holds a task, so a
    live server's cgroup is never touched.
    """
    removed = []
    with contextlib.suppress(OSError):
        for path in parent.glob(f"{PREFIX}*"):
            owner = path.name[len(PREFIX):].split("-", 1)[0]
            if not owner.isdigit() or Path(f"/proc/{owner}").exists():
                continue
            with contextlib.suppress(OSError):
                path.rmdir()
                removed.append(path)
    return removed


def join(procs_file: str) -> None:
    """Move the calling process into the cgroup (run in the child, before exec)."""
    with open(procs_file, "w") as out:
        out.write(str(os.getpid()))
