"""The load report: one typed owner of the load generator's JSON, read tolerantly."""

from __future__ import annotations

import pytest

from iobench.loadgen import LoadParams
from iobench.loadgen.report import ClientReport, LoadReport
from iobench.loadgen.runner import build_result
from tests.loadgen.test_runner import encoded, worker_result


def test_a_report_reads_back_what_it_wrote() -> None:
    params = LoadParams(target="127.0.0.1:9000", connections=2, duration_s=1.0)
    report = build_result(params, [worker_result(0, {100: 600})])
    assert LoadReport.from_json(report.to_json()) == report
    assert report.histogram is not None and report.percentile_us("p50_us") == 100.0
    assert "histogram" not in report.without_histograms()["latency"]


def test_fields_it_does_not_know_are_kept_and_written_back() -> None:
    """Another version, or a shard on another host, may report more."""
    data = {"params": {"mode": "closed"}, "requests": 5, "churned_connections": 7,
            "client": {"connected": 2, "reconnects": 3}}
    report = LoadReport.from_json(data)
    assert report.requests == 5 and report.client.connected == 2
    assert report.extra == {"churned_connections": 7}
    assert report.client.extra == {"reconnects": 3}
    written = report.to_json()
    assert written["churned_connections"] == 7 and written["client"]["reconnects"] == 3


def test_nulls_and_missing_keys_take_the_defaults() -> None:
    report = LoadReport.from_json({"params": {}, "requests": None, "errors": None,
                                   "client": None})
    assert report.requests == 0 and report.error_count == 0
    assert report.client == ClientReport()
    assert report.client.window_monotonic_s is None


@pytest.mark.parametrize("data", [None, [], {"requests": 1}, {"params": "closed"}])
def test_what_is_not_a_load_report_is_refused(data: object) -> None:
    with pytest.raises(ValueError, match="not a load generator report"):
        LoadReport.from_json(data)  # type: ignore[arg-type]


def test_churn_and_the_windows_edges_read_back_and_lose_their_histograms_in_a_cell() -> None:
    params = LoadParams(target="127.0.0.1:9000", connections=2, duration_s=1.0,
                        requests_per_connection=1)
    worker = worker_result(0, {100: 600})
    worker.connections_completed = worker.connects = 600
    worker.connect_histogram = encoded({40: 600})
    worker.unanswered = 2
    worker.unanswered_histogram = encoded({30: 2})
    worker.connect_errors = {"ECONNREFUSED": 1}
    report = build_result(params, [worker])
    assert LoadReport.from_json(report.to_json()) == report
    assert report.churn is not None and report.churn["connections_per_s"] == 600.0
    assert report.connect_errors == {"ECONNREFUSED": 1} and report.starved is None
    stripped = report.without_histograms()
    assert "histogram" not in stripped["churn"]["connect_latency"]
    assert "histogram" not in stripped["unanswered"]
    assert stripped["churn"]["connect_latency"]["p50_us"] == 40.0
    assert report.churn["connect_latency"]["histogram"]  # the report itself keeps it
