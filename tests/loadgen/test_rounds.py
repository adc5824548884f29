"""``iobench load --rounds N``: several measured windows on one set of connections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iobench.servers.process import ServerProcess

LOAD = [sys.executable, "-m", "iobench.loadgen"]


def run_rounds(target: str, tmp_path: Path, rounds: int, lines: int, *extra: str
               ) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    json_path = tmp_path / "load.json"
    done = subprocess.run(
        [*LOAD, "--target", target, "--connections", "4", "--duration", "0.2",
         "--warmup", "0.05", "--json", str(json_path), "--schedule", str(tmp_path / "s.json"),
         "--rounds", str(rounds), *extra],
        input="go\n" * lines, capture_output=True, text=True, timeout=60)
    reports = [json.loads(Path(f"{json_path}.{index}").read_text())
               for index in range(rounds) if Path(f"{json_path}.{index}").exists()]
    return done, reports


@pytest.mark.parametrize("extra", [(), ("--requests-per-connection", "2"),
                                   ("--mode", "open", "--rate", "400", "--idle", "20")])
def test_each_round_measures_its_own_window_on_the_same_connections(
        tmp_path: Path, extra: tuple[str, ...]) -> None:
    with ServerProcess("epoll") as server:
        done, reports = run_rounds(f"127.0.0.1:{server.port}", tmp_path, 3, 3, *extra)
    assert done.returncode == 0, done.stderr
    assert len(reports) == 3
    ready = json.loads((tmp_path / "load.json.ready").read_text())
    assert ready == {"connected": 4, "starved": 0}
    windows = [json.loads((tmp_path / f"s.json.{i}").read_text())["window_monotonic_s"]
               for i in range(3)]
    for report, window in zip(reports, windows, strict=True):
        assert report["ok"] and report["errors"]["total"] == 0
        assert report["requests"] > 0 and report["client"]["connected"] == 4
        # Each report covers its own window, the one told before it opened.
        assert report["client"]["window_monotonic_s"] == pytest.approx(window, abs=1e-3)
        if "--requests-per-connection" in extra:
            assert report["churn"]["connects"] > 0  # slots reopened in every round
        if "--idle" in extra:
            assert report["client"]["idle_open"] == 20
    assert windows[0][1] <= windows[1][0] and windows[1][1] <= windows[2][0]


def test_the_end_of_its_input_ends_the_rounds(tmp_path: Path) -> None:
    with ServerProcess("epoll") as server:
        done, reports = run_rounds(f"127.0.0.1:{server.port}", tmp_path, 3, 1)
    assert done.returncode == 0, done.stderr
    assert len(reports) == 1


@pytest.mark.parametrize(("extra", "message"), [
    (("--json", "-"), "--rounds needs --json PATH"),
    (("--rounds", "0"), "--rounds must be at least 1"),
    (("--workers", "2"), "--rounds needs --workers 1"),
])
def test_bad_rounds_options_are_one_line_errors(tmp_path: Path, extra: tuple[str, ...],
                                               message: str) -> None:
    args = ["--json", str(tmp_path / "l.json"), "--rounds", "2", *extra]
    done = subprocess.run([*LOAD, "--target", "127.0.0.1:9", *args], capture_output=True,
                          text=True, timeout=30, input="")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
