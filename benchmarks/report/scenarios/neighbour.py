"""Neighbour: a CPU-bound process sharing the server's core."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import ReportScenario

SCENARIO = ReportScenario(
    name="neighbour",
    title="Neighbour: a CPU-bound process sharing the server's core",
    description="A CPU-bound neighbour shares the server's CPU; its progress relative to "
                "running alone shows what the server's waiting costs others.",
    metrics=("neighbour_ops_per_s", "neighbour_ratio", "server_cpu_percent", "p99_us"),
    key_metric="neighbour_ratio",
    phases={
        "solo": "the neighbour alone, no server",
        "idle": "beside an idle server",
        "load": "beside a server under load",
    },
)
