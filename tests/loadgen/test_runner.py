"""Merging workers' results: histograms added, counters summed, flags raised honestly."""

from __future__ import annotations

from collections.abc import Callable

from hdrh.histogram import HdrHistogram

from iobench.loadgen import LoadParams, run
from iobench.loadgen.histograms import histogram_from_counts, merge_encoded, summarize
from iobench.loadgen.plan import WorkerResult, plan_from_json, plan_to_json
from iobench.loadgen.runner import build_result, make_plans
from iobench.loadgen.worker import make_payload
from tests.loadgen.faulty_servers import FaultyServer, Handler, delayed_upper_echo, upper_echo

StartServer = Callable[[Handler], FaultyServer]


def encoded(counts: dict[int, int]) -> str:
    return histogram_from_counts(counts).encode().decode("ascii")


def worker_result(index: int, counts: dict[int, int], *, cpu_s: float = 0.5,
                  sent: int | None = None) -> WorkerResult:
    requests = sum(counts.values())
    return WorkerResult(worker_index=index, connected=2, requests=requests,
                        sent_in_window=requests if sent is None else sent, measured_s=1.0,
                        cpu_s=cpu_s, histogram=encoded(counts),
                        histogram_uncorrected=encoded(counts))


def test_histograms_merge_by_adding_counts_not_averaging_percentiles() -> None:
    fast = {100: 990}  # one worker: 990 requests at 100 us
    slow = {50_000: 10}  # another: 10 requests at 50 ms
    merged = merge_encoded([encoded(fast), encoded(slow)])
    assert merged.get_total_count() == 1000
    assert merged.get_value_at_percentile(99) == 100
    assert 49_900 < merged.get_value_at_percentile(99.9) < 50_100
    # Averaging each worker's p99.9 would have claimed about 25 ms.


def test_build_result_sums_workers() -> None:
    params = LoadParams(target="127.0.0.1:1", connections=4, workers=2)
    result = build_result(params, [worker_result(0, {100: 600}),
                                   worker_result(1, {200: 400})]).to_json()
    assert result["requests"] == 1000
    assert result["throughput_rps"] == 1000.0
    assert HdrHistogram.decode(result["latency"]["histogram"]).get_total_count() == 1000
    assert result["latency"]["p50_us"] == 100.0
    assert result["client"]["cpu_percent"] == [50.0, 50.0]
    assert result["client_saturated"] is False
    assert result["behind_schedule"] is False
    assert result["ok"] is True


def test_a_worker_near_full_cpu_is_saturated() -> None:
    params = LoadParams(target="127.0.0.1:1", connections=4, workers=2)
    result = build_result(params, [worker_result(0, {100: 10}, cpu_s=0.97),
                                   worker_result(1, {100: 10}, cpu_s=0.2)]).to_json()
    assert result["client_saturated"] is True
    assert result["client"]["cpu_percent"] == [97.0, 20.0]


def test_sending_less_than_the_rate_is_behind_schedule() -> None:
    params = LoadParams(target="127.0.0.1:1", mode="open", rate_rps=1000.0, connections=2,
                        workers=1)
    on_time = build_result(params, [worker_result(0, {100: 990}, sent=990)]).to_json()
    late = build_result(params, [worker_result(0, {100: 700}, sent=700)]).to_json()
    assert on_time["behind_schedule"] is False
    assert late["behind_schedule"] is True
    assert late["client"]["achieved_rate_rps"] == 700.0


def test_empty_histograms_summarize_to_nulls() -> None:
    summary = summarize(histogram_from_counts({}))
    assert summary["p50_us"] is None
    assert summary["max_us"] is None
    assert HdrHistogram.decode(summary["histogram"]).get_total_count() == 0


def test_latencies_beyond_the_range_are_clamped_not_lost() -> None:
    histogram = histogram_from_counts({120_000_000: 3, 5: 1})
    assert histogram.get_total_count() == 4
    assert histogram.get_max_value() >= 59_000_000


def test_plans_split_connections_and_rate() -> None:
    params = LoadParams(target="localhost:8000", mode="open", rate_rps=900.0, connections=7,
                        workers=3)
    plans = make_plans(params)
    assert [len(plan.connection_indices) for plan in plans] == [3, 2, 2]
    assert sorted(i for plan in plans for i in plan.connection_indices) == list(range(7))
    assert sum(plan.rate_rps or 0 for plan in plans) == 900.0
    assert plan_from_json(plan_to_json(plans[1])) == plans[1]


def test_payload_changes_under_uppercasing() -> None:
    payload = make_payload(1000)
    assert len(payload) == 1000
    assert all(a != b for a, b in zip(payload, payload.upper(), strict=True))


def test_a_slow_server_leaves_an_open_loop_behind_schedule(faulty_server: StartServer) -> None:
    # One connection, 20 ms per reply: at most 50 requests/s against a target of 200.
    server = faulty_server(delayed_upper_echo(0.02))
    result = run(LoadParams(target=server.target, mode="open", rate_rps=200.0, connections=1,
                            duration_s=0.6, warmup_s=0.0, timeout_s=0.5)).to_json()
    assert result["behind_schedule"] is True
    assert result["client_saturated"] is False
    assert result["client"]["achieved_rate_rps"] < 100
    # Throughput is what the server answered within the window, not the target.
    assert result["throughput_rps"] < 100
    # The backlog left after the drain is reported, and is no error: nothing failed.
    assert result["client"]["unfinished_requests"] > 0
    assert result["errors"]["total"] == 0
    # The queued requests carry their wait in the corrected latency only.
    assert result["latency"]["p99_us"] > 3 * result["latency_uncorrected"]["p99_us"]


def test_uniform_open_loop_keeps_its_rate(faulty_server: StartServer) -> None:
    server = faulty_server(upper_echo)
    result = run(LoadParams(target=server.target, mode="open", rate_rps=400.0, connections=4,
                            duration_s=1.0, warmup_s=0.1)).to_json()
    assert result["errors"]["total"] == 0
    # Uniform spacing: 400 meant for the window, give or take one per connection,
    # and every one of them answered and in the histogram.
    recorded = HdrHistogram.decode(result["latency"]["histogram"]).get_total_count()
    assert 396 <= recorded <= 404
    assert result["client"]["unfinished_requests"] == 0
    assert result["behind_schedule"] is False
