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

The same cgroup, or one beside it, counts the kernel's memory for the tree
(:class:`KernelMemory`): sockets, their buffers, kernel stacks, epoll and
io_uring state, page tables. The load generator runs outside it, so its side
of every connection never counts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Sequence
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
KERNEL_CMDLINE = Path("/proc/cmdline")
# cgroup v2 memory.stat: what the kernel holds for the cgroup outside its
# processes' pages. ``kernel`` (Linux 5.18+) sums every __GFP_ACCOUNT
# allocation (slab, kernel stacks, page tables, per-CPU, vmalloc); before it,
# its parts are summed. Socket buffers are charged apart, as ``sock``.
V2_KERNEL = "kernel"
V2_KERNEL_PARTS = ("kernel_stack", "pagetables", "sec_pagetables", "percpu",
                   "slab_reclaimable", "slab_unreclaimable", "vmalloc")
V2_SOCK = "sock"
# cgroup v1: kmem counts the same allocations as v2's ``kernel``; socket
# buffers have a counter of their own (not in kmem, nor in usage_in_bytes),
# which counts only once a TCP limit was written to the cgroup. Writing the
# largest limit turns it on without limiting anything, and also makes accept()
# charge the accepted socket's own object to the cgroup (else an idle
# connection reads about 1.2 KB instead of 3.6 KB: its file and inode alone).
V1_KMEM = "memory.kmem.usage_in_bytes"
V1_TCP = "memory.kmem.tcp.usage_in_bytes"
V1_TCP_LIMIT = "memory.kmem.tcp.limit_in_bytes"
V1_UNLIMITED = "-1"

_names = itertools.count()
# Every cgroup this module makes is named iobench-<runner pid>-<n>-<label>.
PREFIX = "iobench-"


class CgroupUnavailable(Exception):
    """No cgroup could be created here; the message says why."""


@dataclass(frozen=True)
class KernelMemory:
    """Where the kernel counts a cgroup's own memory, and how to read it.

    ``separate``: a cgroup of its own beside the CPU one (v1's memory
    hierarchy), which the tree joins too and which is removed with it.
    """

    kind: str  # CGROUP2 (memory.stat) or CGROUP1 (memory.kmem.*)
    path: Path
    separate: bool = False

    def read(self) -> int:
        """Bytes the kernel holds for the cgroup's tasks now (OSError if it cannot say)."""
        if self.kind == CGROUP2:
            stat = {name: int(value) for name, value in
                    (line.split() for line in
                     (self.path / "memory.stat").read_text().splitlines() if line.strip())}
            kernel = stat[V2_KERNEL] if V2_KERNEL in stat else \
                sum(stat.get(name, 0) for name in V2_KERNEL_PARTS)
            return kernel + stat.get(V2_SOCK, 0)
        return (int((self.path / V1_KMEM).read_text())
                + int((self.path / V1_TCP).read_text()))


@dataclass(frozen=True)
class Cgroup:
    """One cgroup this process created: its kind, folder and how to read its CPU.

    ``kernel``: where its kernel memory is counted, or None and
    ``kernel_note`` saying why it is not.
    """

    kind: str  # CGROUP2 or CGROUP1
    path: Path
    kernel: KernelMemory | None = None
    kernel_note: str | None = None

    @property
    def procs_file(self) -> str:
        """The file a process writes its pid to, to join (the CPU cgroup's)."""
        return str(self.path / "cgroup.procs")

    @property
    def procs_files(self) -> list[str]:
        """Every file a process of the tree joins through: the CPU cgroup's, and the
        memory cgroup's where that is another one."""
        files = [self.procs_file]
        if self.kernel is not None and self.kernel.separate:
            files.append(str(self.kernel.path / "cgroup.procs"))
        return files

    def kernel_bytes(self) -> int | None:
        """Kernel memory held for the tree now; None where it is not counted."""
        if self.kernel is None:
            return None
        try:
            return self.kernel.read()
        except (OSError, KeyError, ValueError):
            return None

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
        removed = _rmdir(self.path, timeout_s, self.kind)
        if self.kernel is not None and self.kernel.separate:
            removed = _rmdir(self.kernel.path, timeout_s, self.kernel.kind) and removed
        return removed


def _rmdir(path: Path, timeout_s: float, kind: str) -> bool:
    """Remove one cgroup folder once its tasks are gone (see :meth:`Cgroup.remove`)."""
    deadline = time.monotonic() + timeout_s
    killed = False
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
        if not killed and kind == CGROUP2 and (path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                if (path / "cgroup.procs").read_text().split():
                    (path / "cgroup.kill").write_text("1")
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


def _own_path(kind: str, controller: str = "cpuacct") -> str:
    """This process's cgroup path in the v2 hierarchy, or in v1's ``controller`` one."""
    with contextlib.suppress(OSError):
        for line in OWN_CGROUPS.read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if kind == CGROUP2 and number == "0" and controllers == "":
                return path
            if kind == CGROUP1 and controller in controllers.split(","):
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
        kernel, note = kernel_memory(cgroup, label)
        return Cgroup(kind, path, kernel, note)
    raise CgroupUnavailable("; ".join(reasons))


def kernel_memory(cgroup: Cgroup, label: str = "server") -> tuple[KernelMemory | None, str | None]:
    """Where the kernel will count ``cgroup``'s own memory, chosen once; or None and why.

    The CPU cgroup itself when it is a v2 one with the memory controller
    (pure v2 machines); else a cgroup of its own in v1's memory hierarchy
    (this kind of machine mounts v1 controllers beside a v2 hierarchy that
    has only some of them), with its TCP accounting turned on.
    """
    reasons = []
    if cgroup.kind == CGROUP2:
        if (cgroup.path / "memory.stat").exists():
            probe = KernelMemory(CGROUP2, cgroup.path)
            try:
                probe.read()
                return probe, None
            except (OSError, KeyError, ValueError) as exc:
                reasons.append(f"cgroup2: {cgroup.path}/memory.stat cannot be read ({exc})")
        else:
            reasons.append(f"cgroup2: the memory controller is not enabled for "
                           f"{cgroup.path.parent} (its cgroup.subtree_control)")
    if "cgroup.memory=nokmem" in _cmdline():
        reasons.append("cgroup1: the kernel was booted with cgroup.memory=nokmem")
        return None, _kernel_note(reasons)
    points = [point for point, fs, options in _mounts() if fs == "cgroup" and "memory" in options]
    if not points:
        reasons.append("cgroup1: no memory hierarchy is mounted")
        return None, _kernel_note(reasons)
    parent = Path(points[0]) / _own_path(CGROUP1, "memory").lstrip("/")
    sweep(parent)
    path = parent / f"{PREFIX}{os.getpid()}-{next(_names)}-{label}"
    try:
        path.mkdir()
    except OSError as exc:
        reasons.append(f"cgroup1: cannot create {path}: {exc.strerror or exc}")
        return None, _kernel_note(reasons)
    made = KernelMemory(CGROUP1, path, separate=True)
    try:
        made.read()
    except (OSError, ValueError) as exc:
        _rmdir(path, 0.0, CGROUP1)
        reasons.append(f"cgroup1: {path} has no kernel memory counters ({exc})")
        return None, _kernel_note(reasons)
    try:
        (path / V1_TCP_LIMIT).write_text(V1_UNLIMITED)
    except OSError as exc:
        # kmem still counts stacks, files, epoll items; not socket buffers.
        return made, f"socket buffers not counted: cannot turn on TCP accounting ({exc})"
    return made, None


def _kernel_note(reasons: list[str]) -> str:
    return f"no cgroup counts the server's kernel memory ({'; '.join(reasons)})"


def _cmdline() -> str:
    try:
        return KERNEL_CMDLINE.read_text()
    except OSError:
        return ""


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


def join(procs_files: str | Sequence[str]) -> None:
    """Move the calling process into the cgroup(s) (run in the child, before exec)."""
    for procs_file in [procs_files] if isinstance(procs_files, str) else procs_files:
        with open(procs_file, "w") as out:
            out.write(str(os.getpid()))
