"""System calls counted by strace, at a low rate, where perf cannot count."""

from __future__ import annotations

from iobench.benchmarks.report.scenario import ReportScenario

SCENARIO = ReportScenario(
    name="syscalls",
    title="System calls counted by strace, at a low rate",
    description="Open loop at a low rate under strace -c -f, for machines where perf cannot "
                "count: strace stops the server at every call, so only the counts of these "
                "cells mean something, not their latency or CPU.",
    metrics=("throughput_rps", "syscalls_per_request"),
    key_metric="throughput_rps",
    opt_in=True,
    syscall_tool="strace -c -f, in these low-rate cells only",
)
