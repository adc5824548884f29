"""Derived metrics and sanity flags, from hand-made load reports."""

from __future__ import annotations

import pytest

from iobench.benchmarks.results.record import Metrics
from iobench.benchmarks.run import metrics as m
from iobench.benchmarks.run.runner import CellFailed, slice_rate


def report(throughput: float, mean_us: float, **extra: object) -> dict:
    return {"throughput_rps": throughput, "requests": int(throughput), "measured_s": 1.0,
            "latency": {"p50_us": mean_us, "mean_us": mean_us, "histogram": "HIST"},
            "latency_uncorrected": {"mean_us": mean_us, "histogram": "HIST2"},
            "errors": {"reset": 0, "total": 0}, "client": {"cpu_percent": [40.0, 30.0]},
            **extra}


def test_load_generator_flags_are_passed_on() -> None:
    flagged = report(1000, 100.0, client_saturated=True, behind_schedule=True,
                     errors={"reset": 3, "total": 3})
    assert m.load_flags(flagged) == ["client_saturated", "behind_schedule", "errors"]
    assert m.error_summary(flagged) == "3 errors (reset=3)"


def test_load_metrics_and_client_cpu() -> None:
    metrics = Metrics()
    m.load_metrics(metrics, report(2000, 250.0), server=None)
    assert metrics.throughput_rps == 2000 and metrics.p50_us == 250.0
    assert metrics.client_cpu_percent == 70.0  # two workers, summed
    assert metrics.cpu_us_per_request is None  # no server samples


def test_histograms_are_kept_out_of_the_stored_load_report() -> None:
    stripped = m.strip_histograms(report(1, 1.0))
    assert "histogram" not in stripped["latency"]
    assert "histogram" not in stripped["latency_uncorrected"]
    assert stripped["latency"]["mean_us"] == 1.0


def test_slice_rate_is_the_median_over_whole_buckets_inside_the_slices() -> None:
    neighbour = {"start_s": 100.0, "bucket_s": 0.01, "bucket_ops": [10] * 50 + [30] * 50}
    assert slice_rate(neighbour, [(100.0, 100.5)]) == pytest.approx(1000.0)
    assert slice_rate(neighbour, [(100.5, 101.0)]) == pytest.approx(3000.0)
    # Three slices at 1000/s and one hit by a burst: the burst does not move the median.
    slices = [(100.0, 100.2), (100.2, 100.4), (100.5, 100.7), (100.7, 100.9)]
    neighbour["bucket_ops"] = [10] * 40 + [20] * 10 + [10] * 20 + [30] * 20 + [10] * 10
    assert slice_rate(neighbour, slices) == pytest.approx(1000.0)
    with pytest.raises(CellFailed, match="too few"):
        slice_rate(neighbour, [(100.0, 100.05)])
