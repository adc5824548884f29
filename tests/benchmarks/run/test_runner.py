"""The runner end to end, with real servers and the real load generator.

Short custom profiles keep each test to seconds. The claims are the article's
(acceptance 2); the margins are wide because the machine is shared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from iobench.benchmarks.report.claims import MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL
from iobench.benchmarks.results.store import RunStore, read_results
from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.launcher import (
    LoadHandle,
    LoadRounds,
    LoadSpec,
    LocalLauncher,
    Placement,
    RoundHandle,
    ServerHandle,
)
from iobench.benchmarks.run.matrix import Profile, check_spec, expand
from iobench.benchmarks.run.rounds import interleave, with_rounds
from iobench.benchmarks.run.runner import Runner, Settings
from iobench.cli import main

CPUS = sorted(os.sched_getaffinity(0))
PLACEMENT = Placement(CPUS[:1], CPUS[1:] or CPUS[:1])

# The claims' scenarios, each a profile section: an attempt runs the ones its
# unsettled claims need.
CLAIM_SECTIONS = {
    "idle": """
[idle]
connections = [0]
duration_s = 1.0
""",
    "interval": """
[interval]
values = [0.01]
references = ["select"]
rate_rps = 100.0
connections = 2
duration_s = 1.0
warmup_s = 0.2
""",
    "neighbour": """
[neighbour]
phases = ["solo", "idle"]
duration_s = 1.5
""",
}


def run_cli(tmp_path: Path, profile: str, models: str) -> dict[str, Any]:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "profile.toml"
    path.write_text(profile)
    out = tmp_path / "run"
    assert main(["run", "--profile", str(path), "--models", models, "--out", str(out)]) == 0
    return read_results(out)


def by_key(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cell["key"]: cell for cell in document["cells"]}


Cells = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Claim:
    """One of the article's claims, on the figures of some cells of CLAIM_SECTIONS."""

    text: str
    keys: tuple[str, ...]
    holds: Callable[[Cells], bool]

    def figures(self, cells: Cells) -> str:
        """The cells' figures and the share of their CPU other processes took."""
        return "; ".join(
            f"{key}: {CLAIM_METRICS[key]} {cells[key]['metrics'][CLAIM_METRICS[key]]}, "
            f"others {cells[key]['metrics']['server_cpus_other_percent']}% of its CPU, "
            f"steal {cells[key]['metrics']['steal_server_percent']}%"
            for key in self.keys)

    def models(self) -> set[str]:
        return {key.split("/")[1].split("(")[0] for key in self.keys}

    def scenarios(self) -> set[str]:
        return {key.split("/")[0] for key in self.keys}


def value(cells: Cells, key: str) -> float:
    return cells[key]["metrics"][CLAIM_METRICS[key]]


CLAIM_METRICS = {
    "idle/busy-poll/c0": "server_cpu_percent",
    "idle/select/c0": "server_cpu_percent",
    "idle/threads/c0": "server_cpu_percent",
    "interval/poll-sleep(interval=0.01)/r100/c2/s64": "p50_us",
    "interval/select/r100/c2/s64": "p50_us",
    "neighbour/busy-poll/idle": "neighbour_ratio",
    "neighbour/select/idle": "neighbour_ratio",
}
CLAIMS = (
    Claim("busy-poll burns >= 80% of a core idle", ("idle/busy-poll/c0",),
          lambda c: value(c, "idle/busy-poll/c0") >= 80),
    Claim("a CPU-bound neighbour beside idle busy-poll runs at <= 0.7 of its solo speed",
          ("neighbour/busy-poll/idle",), lambda c: value(c, "neighbour/busy-poll/idle") <= 0.7),
    Claim("idle select uses <= 5% of a core", ("idle/select/c0",),
          lambda c: value(c, "idle/select/c0") <= 5),
    Claim("idle threads uses <= 5% of a core", ("idle/threads/c0",),
          lambda c: value(c, "idle/threads/c0") <= 5),
    # The report's own rule: a request that arrives during a sleep waits for the rest
    # of it. Not a ratio: select's p50 at 100 req/s is the machine's wake-up time
    # (350-560 us on this VM, against 5 ms for poll-sleep: 9-14x).
    Claim("poll-sleep at 10 ms adds >= a quarter interval to select's p50",
          ("interval/poll-sleep(interval=0.01)/r100/c2/s64", "interval/select/r100/c2/s64"),
          lambda c: value(c, "interval/poll-sleep(interval=0.01)/r100/c2/s64")
          - value(c, "interval/select/r100/c2/s64")
          >= MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL * 0.01 * 1e6),
    # Paired slices (server stopped / running) cancel other processes' load out.
    Claim("a neighbour beside idle select runs at >= 0.9 of its solo speed",
          ("neighbour/select/idle",), lambda c: value(c, "neighbour/select/idle") >= 0.9),
)
# The claims are about a server's own CPU and time: a figure taken while other
# processes shared that CPU (the runner measures their share,
# ``server_cpus_other_percent``, and flags the cell ``cpu_contended``) may not
# show it, nor one where the hypervisor took more than 5% of it (flag
# ``steal``), nor one taken while the machine itself was slow in a way neither
# shows. A claim that fails, or whose cell failed to measure, is measured again,
# up to ATTEMPTS times; one that never holds fails, quoting every attempt's
# figures and whether it was contended. A broken model fails every attempt.
# It is never skipped.
# An attempt after the first runs only what is unsettled (a few seconds), after a
# pause, as other processes' load on a shared machine comes in bursts.
ATTEMPTS = 5
RETRY_PAUSE_S = 2.0


def test_the_article_claims_hold(tmp_path: Path) -> None:
    """busy-poll burns a core and slows a neighbour; select, threads and a sleeping
    poller do not; sleeping adds latency. Through the runner, on real servers."""
    unsettled = list(CLAIMS)
    tries: dict[str, list[str]] = {claim.text: [] for claim in CLAIMS}
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE_S)
        models = sorted(set().union(*(claim.models() for claim in unsettled)))
        sections = set().union(*(claim.scenarios() for claim in unsettled))
        profile = "".join(text for name, text in CLAIM_SECTIONS.items() if name in sections)
        cells = by_key(run_cli(tmp_path / str(attempt), profile, ",".join(models)))
        for claim in list(unsettled):
            failed = [f"{key} failed: {cells[key]['reason']}" for key in claim.keys
                      if cells[key]["status"] != "ok"]
            if failed:  # not measured (the neighbour's slices starved, say): measure again
                tries[claim.text].append("; ".join(failed))
                continue
            tries[claim.text].append(claim.figures(cells))
            if claim.holds(cells):
                unsettled.remove(claim)
                continue
            # Other processes on the server's CPUs, or the hypervisor taking them;
            # else the machine itself (a neighbour beside idle select once ran at
            # 0.84 of its solo speed with 2.5% of others' CPU and no steal seen).
            contended = [key for key in claim.keys
                         if {"cpu_contended", "steal"} & set(cells[key]["flags"])]
            if not contended:
                tries[claim.text][-1] += " (uncontended)"
        if not unsettled:
            break
    assert not unsettled, "did not hold in any attempt: " + " | ".join(
        f"{claim.text}: " + " / ".join(tries[claim.text]) for claim in unsettled)


class CrashingLauncher(LocalLauncher):
    """Kills the server of one cell with SIGKILL while its load runs: a crash mid-cell."""

    def __init__(self, placement: Placement, victim: str, connections: int) -> None:
        super().__init__(placement)
        self.victim = (victim, connections)
        self.server: ServerHandle | None = None
        self.model = ""

    def start_server(self, model: str, params: dict[str, Any]) -> ServerHandle:
        self.server, self.model = super().start_server(model, params), model
        return self.server

    def start_load(self, spec: LoadSpec) -> LoadHandle:
        handle = super().start_load(spec)
        if self.server is not None and (self.model, spec.connections) == self.victim:
            threading.Timer(0.4, os.kill, (self.server.pid, signal.SIGKILL)).start()
        return handle


def test_failed_cells_are_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    spec = check_spec({"closed": {"connections": [4, 1500], "duration_s": 1.0,
                                  "warmup_s": 0.2}}, "test")
    cells = expand(Profile("test", spec), ["select", "epoll"])
    store = RunStore.create(tmp_path / "run", run_id="test", profile="test",
                            environment={"placement": PLACEMENT.as_dict()}, matrix=spec)
    launcher = CrashingLauncher(PLACEMENT, victim="epoll", connections=4)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        assert Runner(launcher, store, Settings()).run(cells)
    finally:
        launcher.close()
    results = by_key(read_results(tmp_path / "run"))
    assert results["closed/select/c4/s64"]["status"] == "ok"
    assert results["closed/epoll/c1500/s64"]["status"] == "ok"
    crashed = results["closed/epoll/c4/s64"]
    assert crashed["status"] == "failed"
    assert "server exited with code -9" in crashed["reason"]
    too_many = results["closed/select/c1500/s64"]
    assert too_many["status"] == "failed"
    assert "1024" in too_many["reason"], too_many["reason"]
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left


TINY_PROFILE = """
[idle]
connections = [0]
duration_s = 0.6

[closed]
connections = [8]
duration_s = 0.6
warmup_s = 0.1
"""


def descendants(pid: int) -> set[tuple[int, float]]:
    try:
        return {(p.pid, p.create_time()) for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def alive(processes: set[tuple[int, float]]) -> list[int]:
    living = []
    for pid, created in processes:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
        except psutil.NoSuchProcess:
            pass
    return living


def test_sigint_keeps_finished_cells_and_resume_runs_only_the_rest(tmp_path: Path) -> None:
    profile = tmp_path / "tiny.toml"
    profile.write_text(TINY_PROFILE)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "iobench", "run", "--profile", str(profile),
               "--models", "prefork,threads,select", "--out", str(out)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "CI": "true"}, start_new_session=True)
    seen: set[tuple[int, float]] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and runner.poll() is None:
            seen |= descendants(runner.pid)
            results = out / "results.json"
            if results.exists() and len(json.loads(results.read_text())["cells"]) >= 3:
                break
            time.sleep(0.05)
        # Interrupt in the middle of the next cell, once its server is up.
        while time.monotonic() < deadline and runner.poll() is None and not any(
                "servers" in " ".join(psutil.Process(pid).cmdline())
                for pid, _ in descendants(runner.pid) if psutil.pid_exists(pid)):
            time.sleep(0.02)
        seen |= descendants(runner.pid)
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 130, err
    assert b"--resume" in err
    assert seen and not alive(seen)
    interrupted = read_results(out)
    assert interrupted["interrupted"] is True
    kept = {(c["key"], c["repetition"]): c["started"] for c in interrupted["cells"]}
    assert 3 <= len(kept) < 6

    assert main(["run", "--resume", str(out)]) == 0
    resumed = read_results(out)
    assert len(resumed["cells"]) == 6 and resumed["interrupted"] is False
    assert len({(c["key"], c["repetition"]) for c in resumed["cells"]}) == 6
    assert {(c["key"], c["repetition"]): c["started"] for c in resumed["cells"][:len(kept)]} \
        == kept


def test_resume_of_a_truncated_or_foreign_file_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text('{"schema_version": 1, "cells": [{"ke')
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "truncated" in capsys.readouterr().err
    (tmp_path / "results.json").write_text('{"benchmarks": []}')
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not an iobench results file" in capsys.readouterr().err


class CountingLauncher(LocalLauncher):
    """Counts the servers and load generators it starts, and sees each server's state
    whenever a load generator is told to start a round."""

    def __init__(self, placement: Placement) -> None:
        super().__init__(placement)
        self.servers: list[ServerHandle] = []
        self.loads = 0
        self.states_at_go: list[list[str]] = []

    def start_server(self, model: str, params: dict[str, Any]) -> ServerHandle:
        handle = super().start_server(model, params)
        self.servers.append(handle)
        return handle

    def start_load_rounds(self, spec: LoadSpec, rounds: int) -> LoadRounds:
        self.loads += 1
        load = super().start_load_rounds(spec, rounds)
        return SpyRounds(self, load.process, load.json_path, load.schedule_path)


class SpyRounds(LoadRounds):
    def __init__(self, launcher: CountingLauncher, *args: Any) -> None:
        super().__init__(*args)
        self.launcher = launcher

    def go(self) -> RoundHandle:
        servers = self.launcher.servers
        self.launcher.states_at_go.append(
            [psutil.Process(s.pid).status() for s in servers if s.poll() is None])
        return super().go()


def test_a_point_is_measured_in_place_one_server_per_model_paused_between_rounds(
        tmp_path: Path) -> None:
    spec = check_spec({"rounds": {"closed": 3},
                       "closed": {"connections": [4], "duration_s": 0.2, "warmup_s": 0.05}},
                      "test")
    profile = Profile("test", spec)
    cells = interleave(with_rounds(profile, expand(profile, ["busy-poll", "epoll"])), seed=1)
    store = RunStore.create(tmp_path / "run", run_id="test", profile="test",
                            environment={"placement": PLACEMENT.as_dict()}, matrix=spec)
    launcher = CountingLauncher(PLACEMENT)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        assert Runner(launcher, store, Settings()).run(cells)
    finally:
        launcher.close()
    records = read_results(tmp_path / "run")["cells"]
    assert len(records) == 6
    assert len(launcher.servers) == 2 and launcher.loads == 2  # one of each per model
    for record in records:
        assert record["status"] == "ok", record["reason"]
        assert record["metrics"]["server_cpu_percent"] is not None
        assert record["metrics"]["ci95"]["throughput_rps"]  # 3 rounds: an interval
    assert sorted(r["repetition"] for r in records) == [0, 0, 1, 1, 2, 2]
    # When a round starts, only its own server runs: the other model's, while it has
    # rounds left, is stopped (T), not spinning.
    assert len(launcher.states_at_go) == 6
    for states in launcher.states_at_go:
        assert len([s for s in states if s != psutil.STATUS_STOPPED]) == 1, states
    assert sum(len(states) for states in launcher.states_at_go) >= 11, launcher.states_at_go
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left


def test_cells_beyond_the_plan_are_read_as_the_run_goes_and_run_one_by_one(
        tmp_path: Path) -> None:
    """As ``--precision`` gives them: the planned rounds measured in place, then a round
    made from what the store holds by then, with a server of its own."""
    spec = check_spec({"rounds": {"closed": 2},
                       "closed": {"connections": [4], "duration_s": 0.2, "warmup_s": 0.05}},
                      "test")
    profile = Profile("test", spec)
    planned = interleave(with_rounds(profile, expand(profile, ["epoll"])), seed=1)
    store = RunStore.create(tmp_path / "run", run_id="test", profile="test",
                            environment={"placement": PLACEMENT.as_dict()}, matrix=spec)
    seen_before_added: list[int] = []

    def cells() -> Iterator[Cell]:
        yield from planned
        seen_before_added.append(len(store.cells))  # read now, not before the run
        yield dataclasses.replace(planned[0], repetition=2)

    launcher = CountingLauncher(PLACEMENT)
    try:
        assert Runner(launcher, store, Settings()).run(cells(), planned)
    finally:
        launcher.close()
    assert seen_before_added == [2]
    records = read_results(tmp_path / "run")["cells"]
    assert sorted(r["repetition"] for r in records) == [0, 1, 2]
    assert all(r["status"] == "ok" for r in records), [r["reason"] for r in records]
    # The planned rounds in place (one load generator), the added one by itself.
    assert launcher.loads == 1 and len(launcher.servers) == 2


def test_extra_rounds_are_measured_in_place_on_a_fresh_member_each_few_until_released(
        tmp_path: Path) -> None:
    """As ``--precision`` adds them: a model's server and load generator are kept after
    its planned rounds for up to ``extra_rounds`` more; the rounds after those get a
    fresh server and load generator, kept until released."""
    spec = check_spec({"rounds": {"closed": 2}, "idle": {"connections": [0], "duration_s": 0.2},
                       "closed": {"connections": [4], "duration_s": 0.2, "warmup_s": 0.05}},
                      "test")
    profile = Profile("test", spec)
    planned = interleave(with_rounds(profile, expand(profile, ["epoll"])), seed=1)
    closed = next(cell for cell in planned if cell.scenario == "closed")
    store = RunStore.create(tmp_path / "run", run_id="test", profile="test",
                            environment={"placement": PLACEMENT.as_dict()}, matrix=spec)
    launcher = CountingLauncher(PLACEMENT)
    runner = Runner(launcher, store, Settings())
    seen: list[tuple[int, int, bool]] = []  # (servers, load generators, last server up)

    def look() -> None:
        seen.append((len(launcher.servers), launcher.loads,
                     launcher.servers[-1].poll() is None))

    def cells() -> Iterator[Cell]:
        yield from planned
        look()  # kept after the planned rounds
        for repetition in (2, 3, 4):
            yield dataclasses.replace(closed, repetition=repetition)
            look()
        runner.release([closed.key])
        look()

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        assert runner.run(cells(), planned, extra_rounds=2)
    finally:
        launcher.close()
    # The idle cell (not measured in place) with a server of its own; the closed loop's
    # rounds 0-3 on one server (2 planned + 2), round 4 on another, up until released.
    assert seen == [(2, 1, True), (2, 1, True), (2, 1, False), (3, 2, True), (3, 2, False)]
    records = read_results(tmp_path / "run")["cells"]
    assert sorted((r["scenario"], r["repetition"]) for r in records) == [
        ("closed", 0), ("closed", 1), ("closed", 2), ("closed", 3), ("closed", 4), ("idle", 0)]
    assert all(r["status"] == "ok" for r in records), [r["reason"] for r in records]
    # Each record says where it stood among its server's rounds (what --precision
    # counts servers by): the idle cell's server measured it alone.
    assert sorted((r["scenario"], r["repetition"], r["server_round"]) for r in records) == [
        ("closed", 0, 1), ("closed", 1, 2), ("closed", 2, 3), ("closed", 3, 4),
        ("closed", 4, 1), ("idle", 0, 1)]
    assert not {p.pid for p in psutil.Process().children(recursive=True)} - before


def test_points_with_many_connections_are_not_kept_for_extra_rounds(tmp_path: Path) -> None:
    """A model at a point with more than CROWDED_CONNECTIONS connections (idle
    ones included) is kept only for its planned rounds: its server holds a thread or a
    process per connection, too many to keep for the whole of a --precision run."""
    from iobench.benchmarks.run.runner import CROWDED_CONNECTIONS

    spec = check_spec({"closed": {"connections": [16, 1000]}}, "test")
    profile = Profile("test", spec)
    cells = {c.connections: c for c in expand(profile, ["threads"])}
    runner = Runner(CountingLauncher(PLACEMENT), RunStore.create(
        tmp_path / "run", run_id="test", profile="test",
        environment={"placement": PLACEMENT.as_dict()}, matrix=spec), Settings())
    runner.extra_rounds = 5
    assert runner.extra(cells[16]) == 5
    assert runner.extra(cells[1000]) == 0
    crowded = dataclasses.replace(cells[16], idle=CROWDED_CONNECTIONS)
    assert runner.extra(crowded) == 0
