"""What a run promises: finished cells are never lost and nothing is left running.

The runner is killed or hung up on in the middle of a cell, as SSH, the OOM
killer or a user would do it; every process it started must be gone within
STOP_BUDGET_S, its temporary folder removed, and ``--resume`` must complete
the run from the cells on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import psutil
import pytest

from iobench.benchmarks.results.store import RunStore, read_results
from iobench.benchmarks.run.matrix import Profile, check_spec, expand, load_profile
from iobench.benchmarks.run.rounds import with_rounds
from iobench.cli import main
from tests.benchmarks.run.runs_watched import command_line

# Acceptance: no process of a killed run after this long.
STOP_BUDGET_S = 3.0
START_BUDGET_S = 90.0


def descendants(pid: int) -> set[tuple[int, float]]:
    try:
        return {(p.pid, p.create_time()) for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def alive(processes: set[tuple[int, float]]) -> list[str]:
    """The processes among ``processes`` that still run (the same pid and start time)."""
    living = []
    for pid, created in processes:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                living.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return living


def start_run(tmp_path: Path, *options: str) -> subprocess.Popen[bytes]:
    """``iobench run`` in a session of its own, its temporary folders under tmp_path/tmp."""
    (tmp_path / "tmp").mkdir()
    return subprocess.Popen([sys.executable, "-m", "iobench", "run", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "CI": "true", "TMPDIR": str(tmp_path / "tmp")},
                            start_new_session=True)


def wait_mid_cell(runner: subprocess.Popen[bytes], results: Path, cells: int,
                  seen: set[tuple[int, float]]) -> None:
    """Wait until ``cells`` cells are on disk and the next cell's server is up."""
    deadline = time.monotonic() + START_BUDGET_S
    while time.monotonic() < deadline and runner.poll() is None:
        seen |= descendants(runner.pid)
        if results.exists() and len(json.loads(results.read_text())["cells"]) >= cells:
            break
        time.sleep(0.05)
    while time.monotonic() < deadline and runner.poll() is None:
        now = descendants(runner.pid)
        seen |= now
        if any("iobench.servers" in " ".join(command_line(proc))
               for proc in map(_process, now) if proc is not None):
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never reached a server after {cells} cells: "
                         f"{runner.poll()=}")


def _process(entry: tuple[int, float]) -> psutil.Process | None:
    try:
        return psutil.Process(entry[0])
    except psutil.NoSuchProcess:
        return None


def wait_gone(seen: set[tuple[int, float]], budget_s: float) -> list[str]:
    deadline = time.monotonic() + budget_s
    while (left := alive(seen)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def kill_group(runner: subprocess.Popen[bytes]) -> None:
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()


def test_sighup_mid_cell_keeps_the_cells_and_resume_completes_the_quick_profile(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = start_run(tmp_path, "--models", "select", "--out", str(out))
    seen: set[tuple[int, float]] = set()
    try:
        # Idle (2 cells) and the first closed cell; the open section is still to come.
        wait_mid_cell(runner, out / "results.json", 3, seen)
        runner.send_signal(signal.SIGHUP)
        _, err = runner.communicate(timeout=30)
    finally:
        kill_group(runner)
    assert runner.returncode == 130, err.decode()[-2000:]
    assert seen and not wait_gone(seen, STOP_BUDGET_S)
    assert not list((tmp_path / "tmp").iterdir())
    interrupted = read_results(out)
    assert interrupted["interrupted"] is True and interrupted["finished"] is None
    kept = {(c["key"], c["repetition"]): c["started"] for c in interrupted["cells"]}
    assert not any(key.startswith("open/") for key, _ in kept)

    assert main(["run", "--resume", str(out)]) == 0
    resumed = read_results(out)
    assert resumed["finished"] and resumed["interrupted"] is False
    cells = {(c["key"], c["repetition"]): c for c in resumed["cells"]}
    # Every cell of the plan once; a cell may fail on a busy machine (recorded
    # with its reason), the run is complete all the same.
    quick = load_profile("quick")
    planned = {cell.ident for cell in with_rounds(quick, expand(quick, ["select"]))}
    assert len(cells) == len(resumed["cells"]) and set(cells) == planned
    assert {k: cells[k]["started"] for k in kept} == kept
    assert any(key.startswith("open/") and cells[key, rep]["status"] == "ok"
               for key, rep in cells), [c["reason"] for c in resumed["cells"]]


PAUSING_PROFILE = """
[neighbour]
phases = ["idle"]
duration_s = 4.0
"""
LOAD_PROFILE = """
[loadgen]
workers = 2

[closed]
connections = [4]
duration_s = 4.0
warmup_s = 0.2
"""
# (profile, model, a process that must have been seen mid-cell)
KILLED_CELLS = {
    # the neighbour scenario holds the server stopped (SIGSTOP) half the time
    "paused server": (PAUSING_PROFILE, "busy-poll", "neighbour"),
    # server, load generator (two worker processes) and, where perf works, perf stat
    "under load": (LOAD_PROFILE, "fork", "worker_process"),
}


@pytest.mark.parametrize("case", list(KILLED_CELLS))
def test_sigkill_of_the_runner_leaves_no_process_and_no_folder(case: str,
                                                               tmp_path: Path) -> None:
    text, model, expected = KILLED_CELLS[case]
    profile = tmp_path / "profile.toml"
    profile.write_text(text)
    runner = start_run(tmp_path, "--profile", str(profile), "--models", model,
                       "--out", str(tmp_path / "run"))
    seen: set[tuple[int, float]] = set()
    try:
        wait_mid_cell(runner, tmp_path / "run" / "results.json", 0, seen)
        time.sleep(1.5)  # well into the cell
        seen |= descendants(runner.pid)
        assert any(expected in " ".join(command_line(p))
                   for p in map(_process, seen) if p is not None), f"no {expected} seen"
        os.kill(runner.pid, signal.SIGKILL)
        killed = time.monotonic()
        runner.wait(5)
        left = wait_gone(seen, STOP_BUDGET_S)
        gone_s = time.monotonic() - killed
    finally:
        kill_group(runner)
    assert not left, left
    deadline = time.monotonic() + STOP_BUDGET_S
    while list((tmp_path / "tmp").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list((tmp_path / "tmp").iterdir())
    print(f"{case}: {len(seen)} processes gone {gone_s:.2f} s after SIGKILL")


def test_the_reaper_kills_the_groups_and_removes_the_folder_only_when_the_lifeline_breaks(
        tmp_path: Path) -> None:
    from iobench.benchmarks.run.reaper import watch

    def sleeper() -> subprocess.Popen[bytes]:
        return subprocess.Popen(["sleep", "30"], process_group=0)

    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    kept.mkdir(), dropped.mkdir()
    clean, broken, ended = sleeper(), sleeper(), sleeper()
    try:
        os.kill(broken.pid, signal.SIGSTOP)  # a paused server is killed all the same
        assert not watch(iter([f"dir {kept}\n", f"group {clean.pid}\n", "done\n"]))
        assert clean.poll() is None and kept.exists()
        ended.kill()
        ended.wait()
        assert watch(iter([f"dir {dropped}\n", f"group {broken.pid}\n",
                           f"group {ended.pid}\n", f"ended {ended.pid}\n"]))
        assert broken.wait(STOP_BUDGET_S) == -signal.SIGKILL
        assert not dropped.exists()
    finally:
        for proc in (clean, broken, ended):
            proc.kill()
            proc.wait()


TINY_PROFILE = """
[idle]
connections = [0]
duration_s = 0.2
"""


def tiny_store(tmp_path: Path, **environment: object) -> RunStore:
    from iobench.benchmarks.run.environment import collect_environment

    spec = check_spec(tomllib.loads(TINY_PROFILE), "tiny")
    spec["models"] = ["select"]
    cpus = sorted(os.sched_getaffinity(0))
    env = collect_environment({"server_cpus": cpus[:1], "client_cpus": cpus[1:] or cpus[:1]})
    return RunStore.create(tmp_path / "run", run_id="tiny", profile="tiny",
                           environment={**env, **environment}, matrix=spec)


def test_a_second_writer_of_a_run_folder_is_refused_with_the_holders_pid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tiny_store(tmp_path)
    assert main(["run", "--resume", str(store.run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and err.count("\n") == 1, err
    assert main(["run", "--models", "select", "--out", str(store.run_dir)]) == 2
    assert store.lock is not None
    store.lock.close()  # as the holder's exit would
    assert main(["run", "--resume", str(store.run_dir)]) == 0


def test_resume_on_another_machine_is_refused_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tiny_store(tmp_path, cpu_model="A CPU this machine does not have", kernel="0.0.1")
    assert store.lock is not None
    store.lock.close()
    assert main(["run", "--resume", str(store.run_dir)]) == 2
    err = capsys.readouterr().err
    assert "cpu_model" in err and "kernel" in err and "--force" in err, err
    assert err.count("\n") == 1
    assert read_results(store.run_dir)["cells"] == []
    assert main(["run", "--resume", str(store.run_dir), "--force"]) == 0
    resumed = read_results(store.run_dir)
    assert len(resumed["cells"]) == 1 and resumed["finished"]
    (record,) = resumed["environment"]["resumed_on_other_machine"]
    assert any(d.startswith("kernel: '0.0.1' -> ") for d in record["differences"])


class BrokenStore(RunStore):
    def add(self, cell: object) -> None:
        raise OSError(28, "No space left on device")


def test_a_run_that_breaks_off_is_recorded_as_not_finished_with_its_error(
        tmp_path: Path) -> None:
    from iobench.benchmarks.run.launcher import LocalLauncher, Placement
    from iobench.benchmarks.run.runner import Runner, Settings

    store = tiny_store(tmp_path)
    store.__class__ = BrokenStore
    cpus = sorted(os.sched_getaffinity(0))
    launcher = LocalLauncher(Placement(cpus[:1], cpus[1:] or cpus[:1]))
    try:
        with pytest.raises(OSError, match="No space"):
            Runner(launcher, store, Settings()).run(
                expand(Profile("tiny", store.document["matrix"]), ["select"]))
    finally:
        launcher.close()
    document = read_results(store.run_dir)
    assert document["finished"] is None and document["interrupted"] is False
    assert document["error"] == "OSError: [Errno 28] No space left on device"


BAD_PROFILES = {
    "nan": ("[idle]\nduration_s = nan\n", "'idle.duration_s' must be a finite number"),
    "inf": ("[closed]\nduration_s = inf\n", "'closed.duration_s' must be a finite number"),
    "negative": ("[closed]\nwarmup_s = -1.0\n", "'closed.warmup_s' must be >= 0"),
    "absurd size": ("[closed]\nsizes_bytes = [1000000000000]\n",
                    "'closed.sizes_bytes'[0] must be >= 1 and <= 67108864"),
    "absurd rate": ("[open]\nrates_rps = [1e12]\n[closed]\n",
                    "'open.rates_rps'[0] must be > 0 and <= 1e+07"),
    "wrong type": ("[idle]\nconnections = [\"100\"]\n", "'idle.connections'[0] must be an integer"),
    "param type": ("[idle]\n[params]\nthreadpool = {workers = [1]}\n",
                   "'params.threadpool': parameter 'workers' must be an integer"),
    "param nan": ("[idle]\n[params]\npoll-sleep = {interval = nan}\n",
                  "parameter 'interval' must be a finite number"),
    "param absurd": ("[idle]\n[params]\nthreadpool = {workers = 100000000}\n",
                     "parameter 'workers' must be <= 10000"),
}


@pytest.mark.parametrize("name", list(BAD_PROFILES))
def test_a_bad_profile_value_is_one_line_naming_the_key(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, message = BAD_PROFILES[name]
    profile = tmp_path / "bad.toml"
    profile.write_text(text)
    assert main(["run", "--profile", str(profile), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--server-cpus", "0-100000000"], "is not a range of CPUs"),
    (["--client-cpus", "5-1"], "is not a range of CPUs"),
    (["--server-cpus", "x"], "expected CPU numbers"),
    (["--repeat", "1000000000"], "bad --repeat"),
])
def test_bad_run_options_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["run", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(("value", "message"), [
    ("nan", "must be a finite number"), ("inf", "must be a finite number"),
    ("-1", "must be >= 0"), ("1e8", "must be <= 1"), ("soon", "cannot parse"),
])
def test_bad_param_values_are_one_line(value: str, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "iobench.servers", "poll-sleep",
                           "--param", f"interval={value}"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr


QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run"
BAD_DOCUMENTS = {
    "environment a string": ('d["environment"] = "x"', "environment is 'x'"),
    "placement a string": ('d["environment"]["placement"] = "x"', "environment.placement"),
    "params a string": ('d["cells"][0]["params"] = "x"', "params is 'x'"),
    "model with $": ('d["cells"][0]["model"] = "a$b"', "model 'a$b' is not a model name"),
    "run_id a number": ('d["run_id"] = 5', "run_id is 5"),
    "matrix a string": ('d["matrix"] = "m"', "matrix is 'm'"),
}


@pytest.mark.parametrize("name", list(BAD_DOCUMENTS))
@pytest.mark.parametrize("command", ["report", "plot", "compare"])
def test_report_plot_and_compare_refuse_a_badly_typed_file_in_one_line(
        name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    change, message = BAD_DOCUMENTS[name]
    d = json.loads((QUICK_RUN / "results.json").read_text())
    exec(change)  # one assignment to the document d
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text(json.dumps(d))
    argv = [command, str(bad)] + ([str(QUICK_RUN)] if command == "compare" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_force_without_out_or_resume_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--force"]) == 2
    err = capsys.readouterr().err
    assert "--force applies to --resume, or to --out DIR" in err and err.count("\n") == 1, err


def test_a_run_into_a_folder_that_is_not_empty_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert main(["run", "--models", "select", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine\n"


def test_a_lock_planted_as_a_symlink_leaves_its_target_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tiny_store(tmp_path)
    assert store.lock is not None
    store.lock.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = store.run_dir / ".lock"
    lock.unlink()
    lock.symlink_to(victim)
    assert main(["run", "--resume", str(store.run_dir)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and err.count("\n") == 1, err
    assert victim.read_text() == "precious\n"


def test_files_written_into_a_run_folder_replace_planted_links_without_following_them(
        tmp_path: Path) -> None:
    from iobench.common.files import UnsafePathError, atomic_write, make_dir

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "REPORT.md").symlink_to(victim)
    atomic_write(run_dir / "REPORT.md", "# report\n")
    assert victim.read_text() == "precious\n"
    assert not (run_dir / "REPORT.md").is_symlink()
    assert (run_dir / "REPORT.md").read_text() == "# report\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "plots").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        make_dir(run_dir / "plots")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        atomic_write(run_dir / "plots" / "a.svg", "<svg/>", follow_dir=False)
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_a_profile_of_a_hundred_million_cells_is_refused_within_a_second(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = ", ".join(str(n) for n in range(1, 1001))
    profile = tmp_path / "huge.toml"
    profile.write_text(f"repeat = 100\n[closed]\nconnections = [{values}]\n"
                       f"sizes_bytes = [{values}]\n")
    started = time.monotonic()
    assert main(["run", "--profile", str(profile), "--models", "select",
                 "--out", str(tmp_path / "run")]) == 2
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert "100,000,000 cells" in err and "hours" in err and err.count("\n") == 1, err
    assert "limits are" in err
    assert elapsed < 1.0, elapsed
    assert not (tmp_path / "run").exists()
