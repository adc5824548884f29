"""Interval: poll-sleep's sleep interval swept against reference models."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import ReportScenario

SCENARIO = ReportScenario(
    name="interval",
    title="Poll-sleep interval sweep",
    description="poll-sleep at several sleep intervals against reference models, same rate.",
    metrics=("throughput_rps", "p50_us", "p99_us", "server_cpu_percent", "cpu_us_per_request"),
    key_metric="p50_us",
    figures=(("poll_sleep_tradeoff", "Poll-sleep: sleep interval vs latency and CPU"),),
)
