"""The README's main command: the quick profile, end to end, on every model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iobench.benchmarks.results.store import read_results
from iobench.servers.registry import available_models

QUICK_BUDGET_S = 180


@pytest.mark.slow
def test_quick_profile_covers_every_model_within_three_minutes(tmp_path: Path) -> None:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "iobench", "run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=2 * QUICK_BUDGET_S,
                          env={**os.environ, "CI": "true"})
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "results").glob("*-quick")
    assert {"results.json", "results.csv"} <= {p.name for p in run_dir.iterdir()}
    document = read_results(run_dir)
    assert document["finished"] and document["environment"]["placement"]
    cells = document["cells"]
    failed = [(c["key"], c["reason"]) for c in cells if c["status"] != "ok"]
    assert not failed
    models = set(available_models())
    for scenario in ("idle", "closed", "open"):
        assert {c["model"] for c in cells if c["scenario"] == scenario} == models, scenario
    assert {c["model"] for c in cells if c["phase"] == "idle"} == models
    assert {"poll-sleep", "select", "busy-poll"} <= {
        c["model"] for c in cells if c["scenario"] == "interval"}
    assert elapsed < QUICK_BUDGET_S, f"quick profile took {elapsed:.0f} s"
