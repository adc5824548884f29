"""Idle: connections open, no requests; what it costs to wait."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import Headline, ReportScenario

SCENARIO = ReportScenario(
    name="idle",
    title="Idle: connections open, no requests",
    description="The server holds idle connections and gets no requests; what it costs to "
                "wait.",
    # Memory by PSS: RSS counts a page shared by N processes N times (a forking
    # server's copy-on-write pages once per child). RSS stays in the data.
    metrics=("server_cpu_percent", "ctx_voluntary_per_s", "pss_bytes",
             "pss_per_connection_bytes", "peak_threads"),
    key_metric="server_cpu_percent",
    figures=(("idle_cpu", "Idle server CPU"),),
    headlines=(Headline("idle_cpu", "server_cpu_percent", "idle server CPU",
                        lambda groups: max(groups, key=lambda g: g.connections or 0)),),
)
