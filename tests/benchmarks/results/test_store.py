"""The results store: atomic files in the documented format, and clear errors on bad ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from iobench.benchmarks.results.record import CellRecord
from iobench.benchmarks.results.store import (
    CSV_FIELDS,
    METRICS,
    SCHEMA_VERSION,
    ResultsError,
    RunStore,
    read_results,
)


def new_store(tmp_path: Path) -> RunStore:
    return RunStore.create(tmp_path / "run", run_id="20260101T000000Z-test", profile="test",
                           environment={"placement": {"server_cpus": [0], "client_cpus": [1]}},
                           matrix={"idle": {}})


def cell(key: str, repetition: int = 0) -> CellRecord:
    return CellRecord.from_json({
            "key": key, "scenario": "idle", "model": "select", "params": {"a": 1},
            "mode": "idle", "connections": 0, "size_bytes": None, "rate_rps": None,
            "phase": None, "repetition": repetition, "status": "ok", "reason": None,
            "placement": {"server_cpus": [0], "client_cpus": [1]}, "started": "t",
            "duration_s": 1.0, "metrics": {**dict.fromkeys(METRICS), "server_cpu_percent": 0.5},
            "flags": ["errors", "littles_law"]})


def test_every_cell_is_on_disk_in_both_files(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.add(cell("idle/select/c0"))
    store.add(cell("idle/select/c0", repetition=1))
    document = read_results(store.run_dir)
    assert document["schema_version"] == SCHEMA_VERSION
    assert [c["repetition"] for c in document["cells"]] == [0, 1]
    with open(store.run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and tuple(rows[0]) == CSV_FIELDS
    assert rows[0]["params"] == '{"a": 1}' and rows[0]["flags"] == "errors;littles_law"
    assert rows[0]["server_cpu_percent"] == "0.5" and rows[0]["server_cpus"] == "0"
    assert store.done() == {("idle/select/c0", 0), ("idle/select/c0", 1)}
    assert not list(store.run_dir.glob(".*tmp"))


def test_finish_records_whether_the_run_was_interrupted(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.finish(interrupted=True)
    assert read_results(store.run_dir)["interrupted"] is True
    assert read_results(store.run_dir)["finished"] is None
    store.finish(interrupted=False)
    assert read_results(store.run_dir)["finished"]


def test_an_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    new_store(tmp_path)
    with pytest.raises(ResultsError, match="already holds a run"):
        new_store(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no results.json"),
    ('{"schema_version": 1, "cells": [', "truncated or not JSON"),
    ('{"traceEvents": []}', "not an iobench results file"),
    ('[1, 2]', "not an iobench results file"),
    ('{"schema_version": 99}', "schema_version 99"),
    ('{"schema_version": 1, "run_id": "x"}', "not a complete iobench results file"),
])
def test_bad_results_give_a_clear_error(tmp_path: Path, content: str | None,
                                        message: str) -> None:
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        RunStore.open(tmp_path)


def test_written_file_is_sorted_json(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    text = (store.run_dir / "results.json").read_text()
    assert json.loads(text)["run_id"] == "20260101T000000Z-test"
    keys = list(json.loads(text))
    assert keys == sorted(keys)
