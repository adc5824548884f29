"""``iobench system``: one line and one verdict per state of the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from iobench.benchmarks.run import system_state
from iobench.cli import main

QUIET = system_state.Sample(busy=[], busy_error=None, steal_percent=0.0)


def test_every_check_gives_one_judged_state() -> None:
    states = system_state.collect([0], seconds=0.05)
    assert len(states) == len(system_state.CHECKS)
    assert len({s.name for s in states}) == len(states)
    assert all(s.verdict in (system_state.OK, system_state.NOTE, system_state.WARN)
               for s in states)


def test_command_prints_one_line_per_state_and_exits_0(capsys: pytest.CaptureFixture[str]) \
        -> None:
    assert main(["system", "--seconds", "0.05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(system_state.CHECKS) + 1
    assert all(line.split()[0] in ("ok", "note", "warn") for line in lines[:-1])


def test_bad_seconds_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["system", "--seconds", "-1"]) == 2
    assert "bad --seconds" in capsys.readouterr().err


def test_a_power_saving_governor_and_huge_pages_always_are_warnings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu0" / "cpufreq").mkdir(parents=True)
    (tmp_path / "cpu0" / "cpufreq" / "scaling_governor").write_text("powersave\n")
    thp = tmp_path / "thp"
    thp.write_text("[always] madvise never\n")
    monkeypatch.setattr(system_state, "SYS_CPU", tmp_path)
    monkeypatch.setattr(system_state, "THP_ENABLED", thp)
    assert system_state.governor([0], QUIET).verdict == system_state.WARN
    assert system_state.huge_pages([0], QUIET).verdict == system_state.WARN
    (tmp_path / "cpu0" / "cpufreq" / "scaling_governor").write_text("performance\n")
    thp.write_text("always [madvise] never\n")
    assert system_state.governor([0], QUIET).verdict == system_state.OK
    assert system_state.huge_pages([0], QUIET).verdict == system_state.OK


def test_busy_processes_and_steal_are_named() -> None:
    sample = system_state.Sample(busy=[("spin", 42, 95.0)], busy_error=None, steal_percent=7.5)
    busy = system_state.busy_processes([0], sample)
    assert busy.verdict == system_state.WARN and "spin (pid 42) 95%" in busy.value
    assert system_state.steal([0], sample).verdict == system_state.WARN
    assert system_state.steal([0], QUIET).verdict == system_state.OK


def test_a_run_records_every_state_and_warns_about_the_noisy_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from iobench.benchmarks.results.store import RunStore, read_results
    from iobench.benchmarks.run.cli import record_system_state

    thp = tmp_path / "thp"
    thp.write_text("[always] madvise never\n")
    monkeypatch.setattr(system_state, "THP_ENABLED", thp)
    monkeypatch.setattr(system_state, "RUN_SAMPLE_S", 0.05)
    store = RunStore.create(tmp_path / "run", run_id="r", profile="p", environment={},
                            matrix={})
    record_system_state(store, [0], resumed=False)
    recorded = read_results(tmp_path / "run")["environment"]["system"]
    assert len(recorded) == len(system_state.CHECKS)
    assert {"name": "transparent huge pages", "value": "always", "verdict": "warn",
            "why": "khugepaged collapses pages behind the processes' backs: set madvise"} \
        in recorded
    assert "warning: transparent huge pages: always" in capsys.readouterr().err


def test_a_high_load_average_on_idle_cpus_is_a_note_and_on_busy_ones_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After a quick run the load average read 90-290 for minutes on 2 idle CPUs (the
    threads of a stopped server, woken each time it is resumed): that is no competing
    work. The same load average with the CPUs busy is."""
    monkeypatch.setattr(system_state.os, "getloadavg", lambda: (92.6, 77.6, 30.0))
    idle = system_state.Sample(busy=[], busy_error=None, steal_percent=0.0,
                               cpus_busy_percent=1.5)
    state = system_state.load_average([0], idle)
    assert state.verdict == system_state.NOTE and "2% busy" in state.why
    busy = system_state.Sample(busy=[], busy_error=None, steal_percent=0.0,
                               cpus_busy_percent=85.0)
    assert system_state.load_average([0], busy).verdict == system_state.WARN
    unread = system_state.Sample(busy=[], busy_error=None, steal_percent=None)
    assert system_state.load_average([0], unread).verdict == system_state.WARN
    monkeypatch.setattr(system_state.os, "getloadavg", lambda: (0.2, 0.1, 0.1))
    assert system_state.load_average([0], busy).verdict == system_state.OK


def test_the_sample_reads_how_busy_the_measured_cpus_were() -> None:
    sample = system_state.Sample.take([0], 0.1, exclude=set())
    assert sample.cpus_busy_percent is not None and 0.0 <= sample.cpus_busy_percent <= 100.0
