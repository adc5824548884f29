"""The pytest-benchmark suite in benchmarks/ runs and groups its rows as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from iobench.servers.registry import available_models

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_micro_suite_reports_a_group_per_payload_with_a_row_per_model(tmp_path: Path) -> None:
    saved = tmp_path / "roundtrip.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/micro", "--benchmark-only", "-q", "-p",
         "no:cacheprovider", f"--benchmark-json={saved}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    groups: dict[str, set[str]] = defaultdict(set)
    for bench in json.loads(saved.read_text())["benchmarks"]:
        groups[bench["group"]].add(bench["extra_info"]["model"])
        assert bench["stats"]["rounds"] >= 100 and bench["stats"]["median"] > 0
    assert set(groups) == {"payload 64 B", "payload 4096 B"}
    assert all(models == set(available_models()) for models in groups.values())
