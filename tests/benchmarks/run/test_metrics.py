"""Derived metrics and sanity flags, from hand-made load reports."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run import metrics as m
from iobench.benchmarks.run.runner import CellFailed, slice_rate
from iobench.benchmarks.run.sampler import Edge, Memory, TreeReading
from iobench.loadgen.report import LoadReport


def report(throughput: float, mean_us: float, **extra: object) -> LoadReport:
    return LoadReport.from_json({
        "params": {}, "throughput_rps": throughput, "requests": int(throughput),
        "measured_s": 1.0,
        "latency": {"p50_us": mean_us, "mean_us": mean_us, "histogram": "HIST"},
        "latency_uncorrected": {"mean_us": mean_us, "histogram": "HIST2"},
        "errors": {"reset": 0, "total": 0}, "client": {"cpu_percent": [40.0, 30.0]},
        **extra})


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
    stripped = report(1, 1.0).without_histograms()
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


def reading(t_s: float, cpu_s: float) -> TreeReading:
    return TreeReading(t_s=t_s, user_s=cpu_s, system_s=0.0, ctx_voluntary=0,
                       ctx_involuntary=0, rss_bytes=1 << 20, threads=1, fds=4, processes=1)


def times(user: float, idle: float, steal: float) -> dict[str, float]:
    return {"user": user, "nice": 0.0, "system": 0.0, "idle": idle, "iowait": 0.0,
            "irq": 0.0, "softirq": 0.0, "steal": steal}


def edge(t_s: float, server_cpu_s: float | None, cpu0: dict[str, float],
         cpu1: dict[str, float]) -> Edge:
    trees = {} if server_cpu_s is None else {"server": reading(t_s, server_cpu_s)}
    return Edge(t_s, trees, [cpu0, cpu1])


def closed_record() -> CellRecord:
    return CellRecord(key="closed/select/c16/s64", scenario="closed", model="select",
                      mode="closed", connections=16,
                      placement={"server_cpus": [0], "client_cpus": [1]})


def test_server_cpu_is_the_counters_between_the_edges() -> None:
    record = closed_record()
    first = edge(10.0, 1.0, times(0, 0, 0), times(0, 0, 0))
    last = edge(12.0, 2.5, times(1.6, 0.4, 0.0), times(1.0, 0.85, 0.15))
    stats = m.server_metrics(record, None, (first, last))
    assert stats is not None and record.metrics.server_cpu_percent == 75.0
    m.machine_metrics(record, (first, last), [0], [1], ["server"])
    assert record.metrics.server_cpus_other_percent == 5.0  # 80% busy, 75% the server's
    assert record.metrics.steal_server_percent == 0.0
    assert record.metrics.steal_client_percent == 7.5
    assert "steal" in record.flags and "cpu_contended" not in record.flags


def test_the_servers_cpu_only_readings_and_the_neighbours_report_are_the_cells_own() -> None:
    """Beside a server read from its cgroup alone, a neighbour started after the first edge
    and gone by the last worked 1.2 s of the 2 s on CPU 0: nobody else was there."""
    record = closed_record()
    cgroup_only = {"processes": 0, "exact": True, "full": False, "switches": False}
    first = Edge(10.0, {"server": replace(reading(10.0, 1.0), **cgroup_only)},
                 [times(0, 0, 0), times(0, 0, 0)])
    gone = replace(reading(12.0, 0.0), processes=0)  # its last reading, after it exited
    last = Edge(12.0, {"server": replace(reading(12.0, 1.5), **cgroup_only),
                       "neighbour": gone}, [times(1.7, 0.3, 0), times(0, 2, 0)])
    m.machine_metrics(record, (first, last), [0], [1], ["server", "neighbour"],
                      reported_cpu_s={"neighbour": 1.2})
    assert record.metrics.server_cpus_other_percent == 0.0  # 85% busy: 25% + 60% own
    assert "cpu_contended" not in record.flags
    unreported = closed_record()
    m.machine_metrics(unreported, (first, last), [0], [1], ["server", "neighbour"])
    assert unreported.metrics.server_cpus_other_percent == 60.0
    assert "cpu_contended" in unreported.flags


@pytest.mark.parametrize("edges", [None, "no server reading"])
def test_unmeasured_cpu_is_null_with_a_reason_never_zero(edges: object) -> None:
    record = closed_record()
    pair = None if edges is None else (edge(10.0, None, times(0, 0, 0), times(0, 0, 0)),
                                       edge(12.0, None, times(1, 1, 0), times(1, 1, 0)))
    assert m.server_metrics(record, None, pair) is None
    assert record.metrics.server_cpu_percent is None
    assert "cpu_unmeasured" in record.flags and record.notes["cpu_unmeasured"]
    m.load_metrics(record.metrics, report(20_000, 800.0), server=None)
    assert record.metrics.cpu_us_per_request is None  # not 0 per request either


def test_pss_per_connection_is_the_growth_over_the_empty_server() -> None:
    metrics = Metrics()
    m.memory_metrics(metrics, Memory(30 << 20, 20 << 20, 60 << 20, 11),
                     Memory(10 << 20, 8 << 20, 12 << 20, 1), connections=10)
    assert metrics.pss_bytes == 30 << 20 and metrics.rss_bytes == 60 << 20
    assert metrics.pss_per_connection_bytes == 2 << 20
    idle = Metrics()
    m.memory_metrics(idle, Memory(10 << 20, 8 << 20, 12 << 20, 1), None, connections=0)
    assert idle.pss_per_connection_bytes is None


def test_kernel_memory_per_connection_beside_the_processes_and_their_sum() -> None:
    # 100 idle connections to epoll: 64 KiB more heap, 360 KB more kernel memory.
    metrics, notes = Metrics(), dict[str, str]()
    m.memory_metrics(metrics,
                     Memory(10 << 20, 8 << 20, 12 << 20, 1, pss_anon_bytes=(4 << 20) + 65536,
                            kernel_bytes=500_000),
                     Memory(10 << 20, 8 << 20, 12 << 20, 1, pss_anon_bytes=4 << 20,
                            kernel_bytes=140_000), connections=100, notes=notes)
    assert metrics.kernel_bytes == 500_000 and metrics.kernel_baseline_bytes == 140_000
    assert metrics.kernel_bytes_per_connection == 3600.0
    assert metrics.pss_per_connection_bytes == 655.4
    assert metrics.memory_per_connection_bytes == 4255.4
    assert notes == {}


def test_kernel_memory_not_read_before_the_first_connection_is_null_with_why() -> None:
    metrics, notes = Metrics(), dict[str, str]()
    m.memory_metrics(metrics, Memory(1, 1, 1, 1, kernel_bytes=500_000),
                     Memory(1, 1, 1, 1, kernel_note="its cgroup could not be read"),
                     connections=10, notes=notes)
    assert metrics.kernel_bytes == 500_000 and metrics.kernel_bytes_per_connection is None
    assert metrics.memory_per_connection_bytes is None
    assert notes[m.KERNEL_MEMORY] == "its cgroup could not be read"


def test_memory_per_connection_is_anonymous_growth_not_a_share_of_libraries() -> None:
    """The load generator starts between the readings and takes a share of the shared
    libraries: the server's PSS falls by 576 KiB although its heap grew by 64 KiB."""
    metrics = Metrics()
    m.memory_metrics(metrics, Memory((18 << 20) - (576 << 10), 14 << 20, 20 << 20, 1,
                                     pss_anon_bytes=(4 << 20) + (64 << 10)),
                     Memory(18 << 20, 14 << 20, 20 << 20, 1, pss_anon_bytes=4 << 20),
                     connections=16)
    assert metrics.pss_per_connection_bytes == 4096  # 64 KiB over 16, never negative
    assert metrics.pss_anon_baseline_bytes == 4 << 20


def test_kernel_memory_of_a_cell_without_connections_is_null_with_why() -> None:
    """An idle cell with no connection has nothing to divide by: null, and the note says so."""
    metrics, notes = Metrics(), dict[str, str]()
    m.memory_metrics(metrics, Memory(1, 1, 1, 1, kernel_bytes=300_000),
                     Memory(1, 1, 1, 1, kernel_bytes=290_000), 0, notes)
    assert metrics.kernel_bytes == 300_000 and metrics.kernel_baseline_bytes == 290_000
    assert metrics.kernel_bytes_per_connection is None
    assert "no connection" in notes[m.KERNEL_MEMORY]
