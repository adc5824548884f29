"""Shards of a load spread over hosts: shares of connections and rate, reports merged."""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram

from iobench.loadgen import LoadParams
from iobench.loadgen.report import LoadReport
from iobench.loadgen.runner import build_result
from iobench.loadgen.shards import merge_reports, shard_shares
from tests.loadgen.test_runner import worker_result


def shard_report(counts: dict[int, int], rate: float | None, connections: int,
                 sent: int | None = None) -> LoadReport:
    params = LoadParams(target="198.18.0.1:9000", mode="open" if rate else "closed",
                        connections=connections, rate_rps=rate, duration_s=1.0)
    return build_result(params, [worker_result(0, counts, sent=sent)])


def test_shares_follow_the_connections_and_skip_hosts_without_one() -> None:
    assert shard_shares(5, 1000.0, 2) == [(3, 600.0), (2, 400.0)]
    assert shard_shares(4, None, 2) == [(2, None), (2, None)]
    assert shard_shares(1, 100.0, 3) == [(1, 100.0)]


def test_merged_histogram_holds_every_shard_and_percentiles_are_not_averaged() -> None:
    fast = shard_report({100: 990}, 1000.0, 2)
    slow = shard_report({50_000: 10}, 1000.0, 2, sent=1000)
    merged = merge_reports([fast, slow], ["client1", "client2"])
    assert merged.histogram is not None
    histogram = HdrHistogram.decode(merged.histogram)
    assert histogram.get_total_count() == 1000
    assert merged.requests == 1000
    assert merged.params["connections"] == 4 and merged.params["rate_rps"] == 2000.0
    # The slow shard's 10 requests are the top 1%: p99.9 is theirs, p99 the fast shard's.
    assert merged.percentile_us("p99_us") == pytest.approx(100, rel=0.01)
    assert merged.percentile_us("p99_9_us") == pytest.approx(50_000, rel=0.01)
    assert merged.shards is not None
    assert [s["latency_count"] for s in merged.shards] == [990, 10]
    assert [s["host"] for s in merged.shards] == ["client1", "client2"]
    # Written as one load generator's JSON, read back the same.
    assert LoadReport.from_json(merged.to_json()) == merged


def test_a_shard_behind_schedule_puts_the_merged_run_behind() -> None:
    on_time = shard_report({100: 1000}, 1000.0, 2)
    late = shard_report({100: 500}, 1000.0, 2)  # sent half of its share
    merged = merge_reports([on_time, late], ["a", "b"])
    assert merged.client.achieved_rate_rps == pytest.approx(1500.0)
    assert merged.behind_schedule
    assert merged.shards is not None
    assert [s["behind_schedule"] for s in merged.shards] == [False, True]
    assert not merge_reports([on_time, on_time], ["a", "b"]).behind_schedule


def test_errors_add_up_and_a_failed_shard_fails_the_merge() -> None:
    good = shard_report({100: 10}, None, 2)
    bad = shard_report({100: 10}, None, 2)
    bad.errors = {**bad.errors, "reset": 3, "total": 3}
    bad.ok = False
    merged = merge_reports([good, bad], ["a", "b"])
    assert merged.errors["reset"] == 3 and merged.error_count == 3
    assert not merged.ok
    with pytest.raises(ValueError):
        merge_reports([good], ["a", "b"])
