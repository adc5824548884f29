"""The cell record: one owner of a cell's fields, its JSON both ways, version 1 still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.record import (
    METRIC_NAMES,
    SCHEMA_VERSION,
    CellRecord,
    Metrics,
    RecordError,
    Violation,
)
from iobench.benchmarks.results.store import RunStore
from tests.benchmarks.results_factory import make_results

QUICK_RUN = Path(__file__).parents[1] / "data" / "quick-run"


def test_a_record_survives_its_json() -> None:
    record = CellRecord(key="closed/select/c16/s64", scenario="closed", model="select",
                        mode="closed", connections=16, size_bytes=64, repetition=2,
                        placement={"server_cpus": [0], "client_cpus": [1]},
                        metrics=Metrics(throughput_rps=1234.5, pss_bytes=10_000_000),
                        flags=["cpu_unmeasured"], notes={"cpu_unmeasured": "no reading"},
                        implausible=[Violation("littles_law", "0.5 in flight")],
                        cpu_accounting="cgroup2",
                        server={"work": {"kind": "cpu", "target_us": 50.0, "measured_us": 49.0},
                                "worker_accepts": [3, 1], "busiest_worker_share": 0.75})
    record.metrics.busiest_worker_share = 0.75
    text = json.dumps(record.to_json(), sort_keys=True)
    assert CellRecord.from_json(json.loads(text)) == record


def test_every_metric_is_written_even_when_null() -> None:
    data = CellRecord(key="k", scenario="idle", model=None).to_json()
    assert tuple(data["metrics"]) == METRIC_NAMES
    assert all(value is None for value in data["metrics"].values())


@pytest.mark.parametrize(("change", "message"), [
    ({"metrics": {"server_cpu_percent": "12"}}, "server_cpu_percent is '12', not a number"),
    ({"metrics": {"throughput_rps": True}}, "throughput_rps is True"),
    ({"connections": "16"}, "connections is '16'"),
    ({"flags": "errors"}, "flags is 'errors'"),
    ({"server": [1, 2]}, "server is \\[1, 2\\]"),
    ({"metrics": []}, "'metrics' is not an object"),
])
def test_a_cell_of_the_wrong_shape_is_named(change: dict, message: str) -> None:
    data = {"key": "k", "scenario": "closed", "model": "select", "status": "ok", **change}
    with pytest.raises(RecordError, match=message):
        CellRecord.from_json(data)


def test_version_one_runs_are_still_read() -> None:
    assert json.loads((QUICK_RUN / "results.json").read_text())["schema_version"] == 1
    run = load_run(QUICK_RUN)
    cells = [c for g in run.groups for c in g.cells]
    assert cells and all(isinstance(c, CellRecord) for c in cells)
    assert all(c.metrics.pss_bytes is None for c in cells)  # version 1 had no PSS
    closed = [c for c in cells if c.scenario == "closed" and c.ok]
    assert any(c.metrics.throughput_rps for c in closed)


def test_a_resumed_version_one_run_is_written_as_the_current_version(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text((QUICK_RUN / "results.json").read_text())
    store = RunStore.open(run_dir)
    before = len(store.cells)
    store.write()
    document = json.loads((run_dir / "results.json").read_text())
    assert document["schema_version"] == SCHEMA_VERSION
    assert len(document["cells"]) == before
    assert all("notes" in cell and "implausible" in cell for cell in document["cells"])


def test_the_factory_writes_what_the_record_reads() -> None:
    for cell in make_results(repetitions=1)["cells"]:
        assert CellRecord.from_json(cell).to_json() == cell
