"""The README's main command: the quick profile, end to end, on every model.

Part of the default suite: it is the first thing a newcomer runs. It also
checks what the run prints (without a terminal: one line per cell on stderr,
then the summary table on stdout) against the results it wrote.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench.benchmarks.results.store import read_results
from iobench.benchmarks.run.matrix import expand, load_profile
from iobench.benchmarks.run.rounds import with_rounds
from iobench.benchmarks.run.runner import estimated_seconds
from iobench.benchmarks.run.scenarios import RUN_SCENARIOS
from iobench.servers.registry import available_models

# The quick profile's promise (README): every model in every scenario it
# applies to in a few minutes on 2 cores; it must stay under 4 on a quiet machine.
QUICK_BUDGET_S = 240
CELL_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (ok|failed)\s+(\S+) r(\d+)\s", re.MULTILINE)


@pytest.mark.timeout(2 * QUICK_BUDGET_S + 60)
def test_quick_profile_covers_every_model_within_budget(tmp_path: Path) -> None:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "iobench", "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=2 * QUICK_BUDGET_S,
                          env={**os.environ, "CI": "true"})
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "results").glob("*-quick")
    assert {"results.json", "results.csv", "REPORT.md"} <= {p.name for p in run_dir.iterdir()}
    document = read_results(run_dir)
    assert document["finished"] and document["environment"]["placement"]
    cells = document["cells"]
    failed = [(c["key"], c["reason"]) for c in cells if c["status"] != "ok"]
    # Only the scale scenario may fail, and only at the limits it meets on purpose
    # (select's FD_SETSIZE, threadpool starved, fork skipped past half the memory);
    # and the article's code as printed in a closed loop, only as starved (its
    # loop sleeps in recv() on a connection waiting for the others' answers).
    limits = ("FD_SETSIZE", "starved: ", "skipped: ", "`ulimit -n`")
    article_closed = "article/article/closed-loop/c4/s64"
    assert not [(key, reason) for key, reason in failed
                if not (key.startswith("scale/") and any(w in reason for w in limits))
                and not (key == article_closed and reason.startswith("starved: "))], failed
    scale_reasons = {c["key"]: c["reason"] for c in cells if c["scenario"] == "scale"}
    assert "FD_SETSIZE" in scale_reasons["scale/select/i10000/c16/s64"]
    assert scale_reasons["scale/threadpool/i10000/c16/s64"].startswith("starved: ")
    # Every server was measured: CPU and memory, the scale cells' 10,000 idle
    # connections included.
    served = [c for c in cells if c["status"] == "ok" and c["model"] is not None]
    assert not [(c["key"], c["notes"]) for c in served
                if c["metrics"]["server_cpu_percent"] is None]
    assert not [c["key"] for c in served if c["metrics"]["pss_bytes"] is None]
    # Every loaded cell has its intervals: three rounds, measured in place.
    loaded = [c for c in served if c["metrics"]["throughput_rps"] is not None
              and RUN_SCENARIOS[c["scenario"]].rounds_in_place]
    assert len(loaded) >= 300
    for metric in ("throughput_rps", "p50_us", "cpu_us_per_request"):
        assert not [c["key"] for c in loaded if not c["metrics"]["ci95"].get(metric)], metric
    # The kernel's memory per connection in every idle and scale cell that held
    # connections, or null with why (a machine where no cgroup counts it).
    holding = [c for c in served if c["scenario"] in ("idle", "scale")
               and c["connections"] + c["idle_connections"]]
    assert not [(c["key"], c["notes"]) for c in holding
                if c["metrics"]["kernel_bytes_per_connection"] is None
                and not c["notes"].get("kernel_memory")]
    kernel = {c["model"]: c["metrics"]["kernel_bytes_per_connection"] for c in holding
              if c["scenario"] == "scale" and c["idle_connections"]}
    if kernel.get("threads") is not None and kernel.get("epoll") is not None:
        # A thread per connection holds its kernel stack; epoll a socket and an item.
        assert kernel["threads"] >= 16 * 1024, kernel
        assert kernel["epoll"] <= kernel["threads"] / 2, kernel
    # System calls are counted inside the window, or not at all: epoll makes a recv
    # and a send per request, and a wait for several (counted past the window,
    # with 16 connections closing, it read 1.5).
    epoll_calls = next(c["syscalls"] for c in cells
                       if c["key"] == "closed/epoll/c16/s64" and c["repetition"] == 0)
    if epoll_calls["reason"] is None:
        assert 1.9 <= epoll_calls["per_request"] <= 3.0, epoll_calls
    models = set(available_models())
    assert {c["model"] for c in cells if c["scenario"] == "scale"} == models
    for scenario in ("idle", "closed", "open"):
        assert {c["model"] for c in cells if c["scenario"] == scenario} == models, scenario
    # Beside an idle server: the models the profile names (the full profile: every one).
    assert {c["model"] for c in cells if c["phase"] == "idle"} == set(
        load_profile("quick").spec["neighbour"]["idle_models"])
    # Churn, one request per connection, every model: a process per connection
    # costs many times an event loop's CPU per connection (about 60x here).
    churn = {c["model"]: c["metrics"]["cpu_us_per_connection"] for c in cells
             if c["scenario"] == "churn" and c["requests_per_connection"] == 1}
    assert set(churn) == models
    assert churn["fork"] >= 5 * churn["epoll"], churn
    assert {"poll-sleep", "select", "busy-poll"} <= {
        c["model"] for c in cells if c["scenario"] == "interval"}
    # The article's code as printed runs in its own scenario, beside busy-poll, and nowhere
    # else; its report section is there.
    assert {c["model"] for c in cells if c["scenario"] == "article"} == {"article", "busy-poll"}
    assert "## The article's code as printed" in (run_dir / "REPORT.md").read_text()

    # The console: one line per cell, numbered 1..N, naming each cell of the file.
    lines = CELL_LINE.findall(done.stderr)
    assert [int(n) for n, *_ in lines] == list(range(1, len(cells) + 1)), done.stderr[-2000:]
    assert {int(total) for _, total, *_ in lines} == {len(cells)}
    assert sorted((key, int(rep)) for *_, key, rep in lines) == sorted(
        (c["key"], c["repetition"]) for c in cells)
    # The summary table: a row per model with its idle CPU, as in the file.
    for model in models:
        idle = [c["metrics"]["server_cpu_percent"] for c in cells
                if c["scenario"] == "idle" and c["model"] == model and c["connections"] == 0]
        row = next((line for line in done.stdout.splitlines()
                    if re.match(rf"^\W*{re.escape(model)}\s", line)), None)
        assert row is not None, f"no summary row for {model}:\n{done.stdout[-3000:]}"
        assert f"{statistics.median(idle):.1f}" in row.split(), (model, idle, row)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    assert elapsed < QUICK_BUDGET_S, (
        f"quick profile took {elapsed:.0f} s (load average {load} on {os.cpu_count()} CPUs)")


def test_quick_profile_plans_fit_the_budget() -> None:
    """The cells' own planned time, independent of the machine's load: what a profile
    change (more cells, longer ones) does to the budget shows here at once."""
    profile = load_profile("quick")
    cells = with_rounds(profile, expand(profile, list(available_models(references=True))))
    planned = sum(estimated_seconds(cell) for cell in cells)
    # Every loaded cell gets intervals from 3 rounds.
    for name, scenario in RUN_SCENARIOS.items():
        if scenario.rounds_in_place:
            assert {c.repetition for c in cells if c.scenario == name} == {0, 1, 2}, name
    # What is left of the budget is for start-up, the plots and the report (~15 s).
    assert planned < QUICK_BUDGET_S * 0.9, f"{len(cells)} cells planned at {planned:.0f} s"
