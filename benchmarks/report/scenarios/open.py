"""Open loop: latency at a fixed offered rate."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import Headline, ReportScenario
from iobench.benchmarks.results.loader import CellGroup


def middle_load(groups: list[CellGroup]) -> CellGroup:
    """The middle open-loop load level, as the latency spectrum picks it."""
    ordered = sorted(groups, key=lambda g: (g.peak_fraction or 0.0, g.rate_rps or 0.0))
    return ordered[(len(ordered) - 1) // 2]


SCENARIO = ReportScenario(
    name="open",
    title="Open loop: latency at a fixed offered rate",
    description="Requests at a constant total rate, latency measured from each request's "
                "intended send time (coordinated-omission corrected).",
    metrics=("throughput_rps", "p50_us", "p99_us", "p99_9_us", "server_cpu_percent",
             "cpu_us_per_request"),
    key_metric="p99_us",
    figures=(("latency_spectrum", "Latency by percentile (open loop, merged histograms)"),
             ("latency_vs_rate", "p50 and p99 latency vs offered rate"),
             ("cpu_vs_rate", "Server CPU and CPU per request vs offered rate")),
    headlines=(Headline("open_p99", "p99_us", "open-loop p99 latency", middle_load),),
)
