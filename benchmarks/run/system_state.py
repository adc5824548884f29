"""The machine's state that makes figures noisy, read and judged (``iobench system``).

As pyperf's ``system show`` does: one small function per state, each adding a
:class:`State` with what was read and a verdict. ``warn`` is a state that
makes figures vary from round to round (a power-saving governor, turbo boost,
other busy processes or steal on the measured CPUs, transparent huge pages
always on); ``note`` one that moves every figure alike and so matters only
when runs of different machines are put side by side (the kernel's
mitigations, a virtual machine, ASLR); ``ok`` is nothing to fix. ``iobench
run`` prints a line for every ``warn`` at its start and records every state
in results.json's environment (``system``), and the report lists the warnings.
Nothing here changes the machine: it reads ``/proc`` and ``/sys`` only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OK, NOTE, WARN = "ok", "note", "warn"
SYS_CPU = Path("/sys/devices/system/cpu")
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
# Another process using more than this share of one core during the sample
# takes CPU time the server or the load generator would otherwise have.
BUSY_PROCESS_PERCENT = 10.0
# Steal above this share of the measured CPUs' time: the hypervisor runs
# something else on them, and figures jump with its load.
STEAL_PERCENT = 2.0
# A load average above this fraction of the CPUs means other work competes,
# unless the measured CPUs were at most this busy during the sample.
LOAD_PER_CPU = 0.5
IDLE_CPUS_PERCENT = 10.0
# How long busy processes and steal are watched: long enough to see a
# process that wakes ten times a second, short enough for a run's start.
SAMPLE_S = 0.5
# At a run's start: shorter, since nothing else waits on it.
RUN_SAMPLE_S = 0.3
# How many busy processes a line names.
NAMED_PROCESSES = 4


@dataclass(frozen=True)
class State:
    """One state of the machine: its name, what was read, a verdict and why."""

    name: str
    value: str
    verdict: str
    why: str = ""

    def line(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"{self.verdict:<4}  {self.name}: {self.value}{why}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def governor(cpus: list[int], _sample: Sample) -> State:
    found = {cpu: _read(SYS_CPU / f"cpu{cpu}" / "cpufreq" / "scaling_governor") for cpu in cpus}
    values = sorted({v for v in found.values() if v})
    if not values:
        return State("CPU frequency governor", "none exposed", OK,
                     "no cpufreq driver: the frequency is not scaled by this kernel")
    noisy = [v for v in values if v != "performance"]
    return State("CPU frequency governor", ", ".join(values), WARN if noisy else OK,
                 "the frequency follows the load: set 'performance'" if noisy else "")


def boost(_cpus: list[int], _sample: Sample) -> State:
    no_turbo = _read(SYS_CPU / "intel_pstate" / "no_turbo")
    if no_turbo is not None:
        enabled = no_turbo == "0"
    else:
        value = _read(SYS_CPU / "cpufreq" / "boost")
        if value is None:
            return State("turbo boost", "not exposed", OK, "no boost control in this kernel")
        enabled = value == "1"
    return State("turbo boost", "on" if enabled else "off", WARN if enabled else OK,
                 "the clock rises and falls with temperature and other cores' load"
                 if enabled else "")


def isolation(cpus: list[int], _sample: Sample) -> State:
    isolated = _read(SYS_CPU / "isolated") or ""
    return State("isolated CPUs", isolated or "none", NOTE if not isolated else OK,
                 "the scheduler may place any process on the measured CPUs"
                 if not isolated else "")


def load_average(cpus: list[int], sample: Sample) -> State:
    """High, with the measured CPUs busy during the sample: other work competes. High
    with them idle: a note. The load average also counts tasks asleep in the kernel
    (uninterruptible), and every thread of a stopped server each time it is resumed;
    after a quick run (a 10,000-thread server stopped and resumed in its rounds) it
    read 90-290 for minutes on 2 idle CPUs."""
    one, five, _ = os.getloadavg()
    count = os.cpu_count() or 1
    value = f"{one:.2f} (1 min), {five:.2f} (5 min) on {count} CPUs"
    if one <= LOAD_PER_CPU * count:
        return State("load average", value, OK, "")
    used = sample.cpus_busy_percent
    if used is not None and used <= IDLE_CPUS_PERCENT:
        return State("load average", value, NOTE,
                     f"yet the measured CPUs were {used:.0f}% busy during the sample: it counts "
                     "tasks asleep in the kernel and the threads of a resumed server too")
    return State("load average", value, WARN, "other work competes for the CPUs")


def busy_processes(cpus: list[int], sample: Sample) -> State:
    busy = sample.busy
    if sample.busy_error:
        return State("other busy processes", "unknown", NOTE, sample.busy_error)
    if not busy:
        return State("other busy processes", "none", OK,
                     f"no other process above {BUSY_PROCESS_PERCENT:g}% of a core")
    named = ", ".join(f"{name} (pid {pid}) {percent:.0f}%"
                      for name, pid, percent in busy[:NAMED_PROCESSES])
    more = f" and {len(busy) - NAMED_PROCESSES} more" if len(busy) > NAMED_PROCESSES else ""
    where = ",".join(map(str, cpus))
    return State("other busy processes", f"{len(busy)} on CPUs {where}: {named}{more}", WARN,
                 "they take CPU time from the server or the load generator")


def steal(cpus: list[int], sample: Sample) -> State:
    percent = sample.steal_percent
    if percent is None:
        return State("steal time", "unknown", NOTE, "/proc/stat could not be read")
    noisy = percent > STEAL_PERCENT
    return State("steal time", f"{percent:.1f}% of CPUs {','.join(map(str, cpus))}",
                 WARN if noisy else OK,
                 "the hypervisor runs other guests on these CPUs" if noisy else "")


def huge_pages(_cpus: list[int], _sample: Sample) -> State:
    text = _read(THP_ENABLED)
    if text is None:
        return State("transparent huge pages", "not exposed", OK)
    chosen = text[text.find("[") + 1:text.find("]")] if "[" in text else text
    noisy = chosen == "always"
    return State("transparent huge pages", chosen, WARN if noisy else OK,
                 "khugepaged collapses pages behind the processes' backs: set madvise"
                 if noisy else "")


def aslr(_cpus: list[int], _sample: Sample) -> State:
    value = _read(Path("/proc/sys/kernel/randomize_va_space"))
    names = {"0": "off", "1": "partial", "2": "full"}
    return State("ASLR", names.get(value or "", value or "unknown"), NOTE,
                 "memory layout differs between processes; rounds in fresh processes "
                 "sample that variation instead of fixing one layout")


def mitigations(_cpus: list[int], _sample: Sample) -> State:
    folder = SYS_CPU / "vulnerabilities"
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return State("CPU vulnerability mitigations", "not exposed", OK)
    mitigated = [p.name for p in entries if (_read(p) or "").startswith("Mitigation")]
    value = ", ".join(mitigated) if mitigated else "none active"
    return State("CPU vulnerability mitigations", value, NOTE if mitigated else OK,
                 "they slow every system call alike: compare runs of one kernel and "
                 "command line only" if mitigated else "")


def _detect_virt(option: str) -> str | None:
    """systemd-detect-virt's answer for ``--vm`` or ``--container`` (None when unknown)."""
    if not shutil.which("systemd-detect-virt"):
        return None
    try:
        done = subprocess.run(["systemd-detect-virt", option], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def virtualisation(_cpus: list[int], _sample: Sample) -> State:
    machine = _detect_virt("--vm")
    if machine in (None, "none") and " hypervisor" in (_read(Path("/proc/cpuinfo")) or ""):
        machine = "a hypervisor (cpuinfo flag)"
    container = _detect_virt("--container")
    parts = [f"virtual machine: {machine or 'none'}"]
    if container not in (None, "none"):
        parts.append(f"container: {container}")
    virtual = machine not in (None, "none")
    return State("virtualisation", ", ".join(parts), NOTE if virtual else OK,
                 "the hypervisor may take the CPUs (steal is watched in every cell), and "
                 "its timer and interrupt paths cost more than bare metal's" if virtual else "")


@dataclass
class Sample:
    """Busy processes and steal on the measured CPUs, watched once for all checks."""

    busy: list[tuple[str, int, float]]
    busy_error: str | None
    steal_percent: float | None
    # The measured CPUs' time neither idle nor stolen during the sample, if read.
    cpus_busy_percent: float | None = None

    @classmethod
    def take(cls, cpus: list[int], seconds: float, exclude: set[int]) -> Sample:
        before_stat = _cpu_stat(cpus)
        before, error = _process_times(exclude)
        time.sleep(seconds)
        after, error_after = _process_times(exclude)
        after_stat = _cpu_stat(cpus)
        busy = []
        for pid, (name, cpu_s, cpu_num) in after.items():
            if pid in before and cpu_num in cpus:
                percent = 100 * (cpu_s - before[pid][1]) / seconds
                if percent > BUSY_PROCESS_PERCENT:
                    busy.append((name, pid, percent))
        busy.sort(key=lambda item: -item[2])
        steal_percent = used_percent = None
        if before_stat is not None and after_stat is not None:
            total, stolen, idle = (after - before for after, before
                                   in zip(after_stat, before_stat, strict=True))
            steal_percent = 100 * stolen / total if total > 0 else 0.0
            used_percent = 100 * (total - stolen - idle) / total if total > 0 else 0.0
        return cls(busy, error or error_after, steal_percent, used_percent)


def _cpu_stat(cpus: list[int]) -> tuple[int, int, int] | None:
    """Total, steal and idle (with iowait) jiffies of ``cpus`` from /proc/stat."""
    text = _read(Path("/proc/stat"))
    if text is None:
        return None
    total = stolen = idle = 0
    names = {f"cpu{cpu}" for cpu in cpus}
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in names:
            numbers = [int(x) for x in fields[1:]]
            # user nice system idle iowait irq softirq steal guest guest_nice:
            # guest time is already inside user and nice.
            total += sum(numbers[:8])
            stolen += numbers[7] if len(numbers) > 7 else 0
            idle += sum(numbers[3:5])
    return total, stolen, idle


def _process_times(exclude: set[int]
                   ) -> tuple[dict[int, tuple[str, float, int | None]], str | None]:
    try:
        import psutil
    except ImportError:
        return {}, "psutil is not installed"
    # pid -> (name, user + system CPU seconds, the CPU it last ran on, or None if unknown)
    found: dict[int, tuple[str, float, int | None]] = {}
    for process in psutil.process_iter(["name", "cpu_times", "cpu_num"]):
        info = process.info
        if process.pid in exclude or info.get("cpu_times") is None:
            continue
        times = info["cpu_times"]
        found[process.pid] = (info.get("name") or "?", times.user + times.system,
                              info.get("cpu_num"))
    return found, None


CHECKS: tuple[Callable[[list[int], Sample], State], ...] = (
    governor, boost, isolation, load_average, busy_processes, steal, huge_pages, aslr,
    mitigations, virtualisation)


def collect(cpus: list[int], seconds: float = SAMPLE_S) -> list[State]:
    """Every state of the machine, with ``cpus`` the ones the run measures on."""
    me = os.getpid()
    exclude = {me}
    try:
        import psutil

        exclude |= {child.pid for child in psutil.Process(me).children(recursive=True)}
    except Exception:  # psutil missing or the tree changing: exclude this process only
        pass
    sample = Sample.take(cpus, seconds, exclude)
    return [check(cpus, sample) for check in CHECKS]


def noisy(states: list[State]) -> list[State]:
    return [s for s in states if s.verdict == WARN]


def add_system_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpus", metavar="LIST", default=None,
                        help="the CPUs to judge busy processes and steal on, like 0 or 0-1 "
                             "(default: every usable CPU)")
    parser.add_argument("--seconds", type=float, default=SAMPLE_S, metavar="S",
                        help=f"how long to watch other processes and steal "
                             f"(default {SAMPLE_S:g})")


def cmd_system(args: Any) -> int:
    from iobench.common.errors import UsageError

    if not 0 < args.seconds <= 60:
        raise UsageError(f"bad --seconds {args.seconds:g}: must be > 0 and <= 60")
    if args.cpus:
        from iobench.benchmarks.run.cli import parse_cpu_list

        cpus = parse_cpu_list(args.cpus, "--cpus")
    else:
        cpus = sorted(os.sched_getaffinity(0))
    states = collect(cpus, args.seconds)
    for state in states:
        print(state.line())
    count = len(noisy(states))
    print(f"{count} state(s) make figures noisier" if count else
          "nothing here makes figures noisier")
    return 0
