"""System calls by kind, counted by the kernel on a server's process tree.

What a model does per request is the clearest account of why it costs what
it costs: busy-poll's recv() calls that find nothing, select's wake-ups,
io_uring's lack of recv and send calls. psutil cannot count them (its
``io_counters()`` leaves socket calls out), so the kernel's tracepoints do:
``perf stat -e syscalls:sys_enter_<name>`` attached to the server's
processes, with counters inherited by every thread and child they start
later (a thread or a process per connection), and switched on and off
through perf's control FIFO at the edges of the window measured.

Where perf cannot count, ``strace -c -f`` can (:class:`StraceCounter`), but
it stops the server at every call, so it runs only in cells of its own at a
low offered rate (the ``syscalls`` scenario), whose figures say how many
calls a request costs and nothing about time.

Needs ``perf`` (Debian: ``apt-get install linux-perf``), tracefs (mounted at
/sys/kernel/tracing, or under /sys/kernel/debug) and the right to trace
another process (root, or ``kernel.perf_event_paranoid`` <= 1 for one's own
processes). Where any is missing, the counter says why and counts nothing:
the cell's figures are null with that reason, never 0.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from iobench.common.lifeline import spawn_command

# The calls the models make to wait, read, write, accept and close, by the
# name of their tracepoint. Everything else is counted as "other" (the
# total comes from raw_syscalls:sys_enter).
KINDS = (
    "recvfrom", "sendto", "read", "write", "recvmsg", "sendmsg", "readv", "writev",
    "select", "pselect6", "poll", "ppoll",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
    "io_uring_enter",
    "accept", "accept4", "close", "shutdown", "setsockopt", "fcntl",
    "rt_sigtimedwait", "rt_sigreturn", "futex", "sched_yield",
    "clock_nanosleep", "nanosleep", "clone", "clone3", "wait4", "getpid",
)
TOTAL_EVENT = "raw_syscalls:sys_enter"
TRACEFS_PLACES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
# How long perf may take to attach and answer its first control command.
READY_TIMEOUT_S = 10.0
ATTACH_ATTEMPTS = 3
STOP_TIMEOUT_S = 5.0
# perf prints its counts this often, so that they can be read without waiting
# for it to exit (see SyscallCounter.stop).
PRINT_INTERVAL_MS = 100
INSTALL_HINT = "apt-get install linux-perf"
STRACE_INSTALL_HINT = "apt-get install strace"
# How long strace may take to attach to every thread of the tree.
STRACE_ATTACH_S = 5.0


def tracefs() -> Path | None:
    """Where the syscall tracepoints are, or None if tracefs is not mounted."""
    for place in TRACEFS_PLACES:
        if (place / "events" / "syscalls").is_dir():
            return place
    return None


def unavailable_reason() -> str | None:
    """Why the kernel cannot count system calls for us here, or None if it can."""
    if shutil.which("perf") is None:
        return (f"perf is not installed ({INSTALL_HINT}; or add a [syscalls] section to the "
                "profile to count with strace in low-rate cells of their own)")
    if tracefs() is None:
        return "tracefs is not mounted (as root: mount -t tracefs nodev /sys/kernel/tracing)"
    try:
        paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        paranoid = 2
    if os.geteuid() != 0 and paranoid > 1:
        return f"kernel.perf_event_paranoid is {paranoid}: counting needs root or <= 1"
    return None


def available_kinds() -> list[str]:
    place = tracefs()
    if place is None:
        return []
    return [kind for kind in KINDS
            if (place / "events" / "syscalls" / f"sys_enter_{kind}").is_dir()]


@dataclass
class SyscallCounts:
    """What one window counted: calls by kind, their total, and the window's length.

    ``reason`` says why nothing was counted; then every figure is None.
    """

    tool: str = "perf"
    elapsed_s: float | None = None
    total: int | None = None
    by_kind: dict[str, int] = field(default_factory=dict)
    reason: str | None = None

    def inside(self, window: tuple[float, float],
               counted: tuple[float, float] | None) -> SyscallCounts:
        """These counts if they were ``counted`` inside the measured ``window`` (both on
        this host's monotonic clock), else none, with why: what was counted
        before or after it is not the window's load (closing 16 connections
        after it made epoll's 2.04 calls a request read 1.50)."""
        if self.reason is not None or counted is None:
            return self
        start, end = window
        if start <= counted[0] and counted[1] <= end:
            return self
        return SyscallCounts(tool=self.tool, reason=(
            f"counted from {counted[0] - start:+.3f} s to {counted[1] - start:+.3f} s of "
            f"a {end - start:.3f} s window, not inside it"))

    def per_request(self, throughput_rps: float | None) -> dict[str, Any]:
        """The record's ``syscalls`` field: counts divided by the requests in the window."""
        record: dict[str, Any] = {"tool": self.tool, "reason": self.reason,
                                  "elapsed_s": self.elapsed_s, "total": self.total,
                                  "by_kind": dict(self.by_kind),
                                  "per_request": None, "by_kind_per_request": None}
        if self.reason is None and self.total is not None and self.elapsed_s:
            if throughput_rps:
                requests = throughput_rps * self.elapsed_s
                record["per_request"] = round(self.total / requests, 3)
                record["by_kind_per_request"] = {
                    kind: round(count / requests, 3) for kind, count in self.by_kind.items()}
            elif throughput_rps is not None:
                record["reason"] = "no requests were served in the window"
        return record


class SyscallCounter:
    """``perf stat`` attached to a process tree, counting only between enable and disable."""

    def __init__(self, pid: int, workdir: Path | None = None,
                 cpus: list[int] | None = None) -> None:
        self.pid = pid
        # Where perf runs: the server's CPUs, so that switching its counters (0.12 s
        # for threadpool's 256 threads, at a real-time priority) takes the time of
        # the process it counts, not the load generator's or the runner's readings.
        self.cpus = cpus
        # Where its temporary folder goes: the launcher's, which its reaper
        # removes should the runner die without cleaning up (None: the default).
        self.workdir = workdir
        self.reason = unavailable_reason()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._control: int | None = None
        self._ack: int | None = None
        self._enabled_at: float | None = None
        self._stamps_at_disable: set[str] = set()
        # When counting may have begun and ended, at the widest: from the first
        # enable asked to the last disable answered (time.monotonic()).
        self.counted_s: tuple[float, float] | None = None
        self._events = 0
        self.elapsed_s = 0.0
        self.kinds: list[str] = []

    def start(self) -> None:
        """Attach to the tree as it is now; threads and children started later inherit.

        A process forked after the tree was listed but before perf attached
        would be missed (a forking model starts its workers right after its
        ready line), so the tree is listed again once perf has attached, and
        perf is attached afresh until the two lists agree.
        """
        if self.reason is not None:
            return
        self.kinds = available_kinds()
        for _ in range(ATTACH_ATTEMPTS):
            pids = self._tree()
            if pids is None:
                return
            if not self._attach(pids):
                return
            now = self._tree()
            if now is None or set(now) <= set(pids):
                return
            self._teardown()
        self.reason = "the server kept starting processes while perf attached"

    def _tree(self) -> list[int] | None:
        try:
            root = psutil.Process(self.pid)
            return [self.pid, *(child.pid for child in root.children(recursive=True))]
        except psutil.Error:
            self.reason = "the server exited before counting began"
            self._teardown()
            return None

    def _attach(self, pids: list[int]) -> bool:
        events = [TOTAL_EVENT, *(f"syscalls:sys_enter_{kind}" for kind in self.kinds)]
        self._dir = tempfile.TemporaryDirectory(prefix="iobench-perf-", dir=self.workdir)
        folder = Path(self._dir.name)
        control, ack = folder / "control", folder / "ack"
        os.mkfifo(control)
        os.mkfifo(ack)
        self._output = folder / "counts.csv"
        self._events = len(events)
        command = ["perf", "stat", "-x", ",", "--no-big-num", "-e", ",".join(events),
                   "-p", ",".join(map(str, pids)), "--delay", "-1",
                   "--interval-print", str(PRINT_INTERVAL_MS),
                   "--control", f"fifo:{control},{ack}", "-o", str(self._output)]
        self._proc = subprocess.Popen(spawn_command(command, self.cpus),  # dies with the runner
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        # perf switches its counters on and off when it gets the CPU: on a
        # machine the server and the load generator saturate, 0.1-0.5 s after
        # the command, and a 0.3 s window counted next to nothing (epoll 0.9
        # calls a request, where a request takes a recv and a send). At a
        # real-time priority it answers within milliseconds; it takes under
        # a millisecond each PRINT_INTERVAL_MS. Root only: elsewhere it waits.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(self._proc.pid, os.SCHED_FIFO, os.sched_param(1))
        # O_RDWR: opening a FIFO so never waits for the other end, and each
        # answer is awaited with a timeout, so a perf that dies cannot hang the run.
        self._control = os.open(control, os.O_RDWR)
        self._ack = os.open(ack, os.O_RDWR)
        if not self._command("disable", READY_TIMEOUT_S):  # answered once perf has attached
            self.reason = f"perf stat could not attach: {self._stderr()}"
            self._teardown()
            return False
        return True

    def enable(self) -> None:
        asked = time.monotonic()
        if self._control is not None and self._enabled_at is None and self._command("enable"):
            self._enabled_at = time.monotonic()
            if self.counted_s is None:
                self.counted_s = (asked, self._enabled_at)

    def disable(self) -> None:
        if self._enabled_at is not None and self._command("disable"):
            answered = time.monotonic()
            self.elapsed_s += answered - self._enabled_at
            self._enabled_at = None
            self._stamps_at_disable = set(print_stamps(self._read_output(), self._events))
            if self.counted_s is not None:
                self.counted_s = (self.counted_s[0], answered)

    def stop(self) -> SyscallCounts:
        """Read what perf counted while enabled, and let it go.

        perf prints what its counters counted every PRINT_INTERVAL_MS; what
        they counted up to the disable is in the first print after it. The
        counts are read from there: perf's exit closes every tracepoint
        counter, each after an RCU grace period, ~1 s for ~30 counters
        (with 12 ms of CPU), so it exits in the background
        (:func:`release`) while the run goes on.
        """
        if self.reason is not None:
            return SyscallCounts(reason=self.reason)
        self.disable()
        if self._proc is None:
            return SyscallCounts(reason="perf stat was not running")
        if self.elapsed_s <= 0:
            self._teardown()
            return SyscallCounts(reason="the counting window never opened")
        printed = self._printed_after_disable()
        messages = self._stderr()
        self._teardown()
        if printed is None:
            return SyscallCounts(reason=f"perf stat printed no counts after the window: "
                                        f"{messages}")
        counts = parse_perf_csv(printed)
        if TOTAL_EVENT not in counts:
            first = next((line for line in printed.splitlines()
                          if line.strip() and not line.lstrip().startswith("#")), "")
            return SyscallCounts(reason=f"perf stat counted nothing ({first or 'no output'}): "
                                        f"{messages}")
        by_kind = {kind: counts.get(f"syscalls:sys_enter_{kind}", 0) for kind in self.kinds}
        by_kind = {kind: n for kind, n in by_kind.items() if n}
        total = counts[TOTAL_EVENT]
        other = total - sum(by_kind.values())
        if other > 0:
            by_kind["other"] = other
        return SyscallCounts(elapsed_s=round(self.elapsed_s, 3), total=total, by_kind=by_kind)

    def _printed_after_disable(self) -> str | None:
        """perf's output once it holds a whole print made after the last disable.

        A print is a line per event, all with one time stamp (seconds since
        perf started); its stamps at the disable are kept (:meth:`disable`).
        None if no new print comes within STOP_TIMEOUT_S.
        """
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self._read_output()
            if set(print_stamps(text, self._events)) - self._stamps_at_disable:
                return text
            if self._proc is None or self._proc.poll() is not None:
                return None
            time.sleep(PRINT_INTERVAL_MS / 4000)
        return None

    def _read_output(self) -> str:
        try:
            return self._output.read_text()
        except OSError:
            return ""

    def _command(self, word: str, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Send perf a control command and wait (bounded) for its "ack"."""
        assert self._control is not None and self._ack is not None
        try:
            os.write(self._control, (word + "\n").encode())
            answer = b""
            deadline = time.monotonic() + timeout_s
            while b"\n" not in answer:  # perf 6.1 answers b"ack\n\0"
                left = deadline - time.monotonic()
                if left <= 0 or (self._proc is not None and self._proc.poll() is not None):
                    return False
                ready, _, _ = select.select([self._ack], [], [], min(left, 0.1))
                if ready:
                    answer += os.read(self._ack, 64)
            return answer.split(b"\n")[0].strip() == b"ack"
        except OSError:
            return False

    def _stderr(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return ""
        if self._proc.poll() is None:
            return "perf is still running"
        text = self._proc.stderr.read().decode(errors="replace")
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-300:]

    def _teardown(self) -> None:
        for fd in (self._control, self._ack):
            if fd is not None:
                os.close(fd)
        self._control = self._ack = None
        release(self._proc, self._dir)
        self._proc, self._dir = None, None


# Every perf let go of and not yet reaped, with the folder of its FIFOs and output.
_releasing: list[threading.Thread] = []


def release(proc: subprocess.Popen[bytes] | None,
            folder: tempfile.TemporaryDirectory[str] | None) -> None:
    """Stop perf and remove its folder in the background: see :meth:`SyscallCounter.stop`.

    perf is interrupted (a perf that lingers past STOP_TIMEOUT_S is killed);
    :func:`wait_released` waits for every one, so nothing is left running.
    """
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)

    def reap() -> None:
        if proc is not None:
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        if folder is not None:
            folder.cleanup()

    thread = threading.Thread(target=reap, name="iobench-perf-exit", daemon=True)
    thread.start()
    _releasing[:] = [*(t for t in _releasing if t.is_alive()), thread]


def wait_released(timeout_s: float = STOP_TIMEOUT_S + 1.0) -> None:
    """Wait until every perf let go of has exited and its folder is gone."""
    deadline = time.monotonic() + timeout_s
    for thread in list(_releasing):
        thread.join(max(0.0, deadline - time.monotonic()))
    _releasing[:] = [thread for thread in _releasing if thread.is_alive()]


class UnavailableCounter(SyscallCounter):
    """A counter that counts nothing, for a launcher that cannot count where its server runs."""

    def __init__(self, pid: int, reason: str) -> None:
        super().__init__(pid)
        self.reason = reason


def perf_rows(text: str) -> list[tuple[str | None, str, str]]:
    """(time stamp or None, value, event) of each row of ``perf stat -x ,`` output.

    A row is value,unit,event,...; with ``--interval-print`` it begins with
    the seconds since perf started. The events counted here are all
    tracepoints, named group:name.
    """
    rows: list[tuple[str | None, str, str]] = []
    for line in text.splitlines():
        fields = line.strip().split(",")
        if len(fields) < 3 or line.startswith("#"):
            continue
        if ":" in fields[2]:
            rows.append((None, fields[0], fields[2]))
        elif len(fields) > 3 and ":" in fields[3]:
            rows.append((fields[0], fields[1], fields[3]))
    return rows


def parse_perf_csv(text: str) -> dict[str, int]:
    """Event name -> count from ``perf stat -x ,`` output, its prints summed;
    "<not counted>" rows (a print while counting was off) are left out."""
    counts: dict[str, int] = {}
    for _, value, event in perf_rows(text):
        try:
            counts[event] = counts.get(event, 0) + int(float(value))
        except ValueError:
            continue
    return counts


def print_stamps(text: str, events: int) -> list[str]:
    """The time stamps of the whole prints in ``perf stat --interval-print`` output."""
    rows: dict[str, int] = {}
    for stamp, _, _ in perf_rows(text):
        if stamp is not None:
            rows[stamp] = rows.get(stamp, 0) + 1
    return [stamp for stamp, count in rows.items() if count >= events]


def strace_unavailable_reason() -> str | None:
    """Why ``strace -c`` cannot count here, or None if it can."""
    if shutil.which("strace") is None:
        return f"strace is not installed ({STRACE_INSTALL_HINT})"
    try:
        scope = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):
        scope = 0
    if scope >= 3 or (scope >= 1 and os.geteuid() != 0):
        return f"kernel.yama.ptrace_scope is {scope}: strace cannot attach to the server"
    return None


class StraceCounter(SyscallCounter):
    """``strace -c -f`` attached to the tree between enable and disable.

    strace stops the traced process at every call, so the server's CPU and
    latency in its cell mean nothing; only the counts do.
    """

    def __init__(self, pid: int, workdir: Path | None = None) -> None:
        super().__init__(pid, workdir)
        self.reason = strace_unavailable_reason()

    def start(self) -> None:
        """Nothing to do until the window opens: strace attaches in :meth:`enable`."""

    def enable(self) -> None:
        if self.reason is not None or self._proc is not None:
            return
        pids = self._tree()
        if pids is None:
            return
        self._dir = tempfile.TemporaryDirectory(prefix="iobench-strace-", dir=self.workdir)
        self._output = Path(self._dir.name) / "summary.txt"
        command = ["strace", "-c", "-f", "-o", str(self._output)]
        for pid in pids:
            command += ["-p", str(pid)]
        self._proc = subprocess.Popen(spawn_command(command),  # dies with the runner
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        # strace says "Process N attached" on stderr for each process once it
        # is traced; counting starts when the first has been.
        assert self._proc.stderr is not None
        ready, _, _ = select.select([self._proc.stderr], [], [], STRACE_ATTACH_S)
        if not ready or self._proc.poll() is not None:
            self.reason = f"strace could not attach: {self._stderr()}"
            self._teardown()
            return
        self._enabled_at = time.monotonic()

    def disable(self) -> None:
        if self._enabled_at is None or self._proc is None:
            return
        self._proc.send_signal(signal.SIGINT)  # detaches, and writes the summary
        self.elapsed_s += time.monotonic() - self._enabled_at
        self._enabled_at = None

    def stop(self) -> SyscallCounts:
        if self.reason is not None:
            return SyscallCounts(tool="strace", reason=self.reason)
        self.disable()
        proc = self._proc
        if proc is None:
            return SyscallCounts(tool="strace", reason="the counting window never opened")
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._teardown()
            return SyscallCounts(tool="strace", reason="strace did not exit after SIGINT")
        try:
            text = self._output.read_text()
        except OSError:
            text = ""
        self._teardown()
        calls = parse_strace_summary(text)
        if not calls:
            return SyscallCounts(tool="strace", reason="strace counted nothing")
        total = sum(calls.values())
        by_kind = {kind: n for kind, n in calls.items() if kind in KINDS}
        other = total - sum(by_kind.values())
        if other > 0:
            by_kind["other"] = other
        return SyscallCounts(tool="strace", elapsed_s=round(self.elapsed_s, 3), total=total,
                             by_kind=by_kind)


def parse_strace_summary(text: str) -> dict[str, int]:
    """Call name -> calls from ``strace -c``'s table (the total row left out)."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total" or not fields[0][0].isdigit():
            continue
        try:
            # % time, seconds, usecs/call, calls, [errors,] syscall
            calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
        except ValueError:
            continue
    return calls
