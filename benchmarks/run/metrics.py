"""Derived metrics of a cell, from the load generator's report and the sampled server.

Every metric is named with its unit (docs/formats.md); one that does not
apply to a cell is None. Sanity checks raise flags on numbers that cannot be
right, so a reader does not cite them unawares.
"""

from __future__ import annotations

from typing import Any

from iobench.benchmarks.results.store import METRICS
from iobench.benchmarks.run.sampler import Sampler, Series, WindowStats, window_stats

LATENCY_FIELDS = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")
# Little's law in closed loop: connections = throughput x mean latency.
LITTLES_LAW_TOLERANCE = 0.10
# Other processes' CPU on the server's CPUs, % of one core, past which the cell
# is flagged: on a shared machine the server (or neighbour) had less CPU than
# the figures assume.
CONTENTION_PERCENT = 20.0


def empty_metrics() -> dict[str, Any]:
    return dict.fromkeys(METRICS)


def server_metrics(metrics: dict[str, Any], series: Series,
                   start_s: float | None, end_s: float | None) -> WindowStats | None:
    """Fill the server CPU, context switch and size metrics from its sampled tree."""
    readings = series.readings
    if readings:
        metrics["peak_rss_bytes"] = max(r.rss_bytes for r in readings)
        metrics["peak_threads"] = max(r.threads for r in readings)
        metrics["peak_fds"] = max(r.fds for r in readings)
    window = series.window(start_s, end_s) or series.window()
    if window is None:
        return None
    stats = window_stats(*window)
    metrics["server_cpu_percent"] = round(stats.cpu_percent, 2)
    metrics["server_user_percent"] = round(stats.user_percent, 2)
    metrics["server_system_percent"] = round(stats.system_percent, 2)
    metrics["ctx_voluntary_per_s"] = round(stats.ctx_voluntary / stats.elapsed_s, 1)
    metrics["ctx_involuntary_per_s"] = round(stats.ctx_involuntary / stats.elapsed_s, 1)
    return stats


def load_metrics(metrics: dict[str, Any], report: dict[str, Any],
                 server: WindowStats | None) -> None:
    """Fill throughput, latency, per-request costs and client CPU from a load report."""
    throughput = report.get("throughput_rps")
    metrics["throughput_rps"] = throughput
    metrics["requests"] = report.get("requests")
    latency = report.get("latency") or {}
    for name in LATENCY_FIELDS:
        metrics[name] = latency.get(name)
    metrics["errors"] = (report.get("errors") or {}).get("total")
    client_cpu = (report.get("client") or {}).get("cpu_percent")
    if client_cpu:
        metrics["client_cpu_percent"] = round(sum(client_cpu), 2)
    if server is not None and throughput:
        # Rates over the sampled window, divided by the measured request rate.
        cpu_s_per_s = server.cpu_s / server.elapsed_s
        metrics["cpu_us_per_request"] = round(cpu_s_per_s * 1e6 / throughput, 2)
        metrics["ctx_voluntary_per_request"] = round(
            server.ctx_voluntary / server.elapsed_s / throughput, 4)
        metrics["ctx_involuntary_per_request"] = round(
            server.ctx_involuntary / server.elapsed_s / throughput, 4)


def load_flags(report: dict[str, Any], mode: str, connections: int) -> list[str]:
    """The load generator's own flags, and the Little's law check in closed loop."""
    flags = [name for name in ("client_saturated", "behind_schedule") if report.get(name)]
    if (report.get("errors") or {}).get("total"):
        flags.append("errors")
    if mode == "closed" and not littles_law_holds(report, connections):
        flags.append("littles_law")
    return flags


def littles_law_holds(report: dict[str, Any], connections: int) -> bool:
    """Whether throughput x mean latency is within 10% of the connection count."""
    throughput = report.get("throughput_rps") or 0.0
    mean_us = (report.get("latency") or {}).get("mean_us") or 0.0
    in_flight = throughput * mean_us / 1e6
    return abs(in_flight - connections) <= LITTLES_LAW_TOLERANCE * connections


def client_metric_from_samples(metrics: dict[str, Any], series: Series | None,
                               start_s: float | None, end_s: float | None) -> None:
    """The load generator's CPU as sampled, when its report does not say."""
    if metrics["client_cpu_percent"] is not None or series is None:
        return
    window = series.window(start_s, end_s) or series.window()
    if window is not None:
        metrics["client_cpu_percent"] = round(window_stats(*window).cpu_percent, 2)


def other_cpu_percent(sampler: Sampler, cpus: list[int], own: list[str],
                      start_s: float | None, end_s: float | None) -> float | None:
    """CPU that processes other than the ``own`` trees used on ``cpus``, % of one core.

    From the system's per-CPU use (each sample covers the interval before it)
    minus what the sampled trees used over the same window.
    """
    rows = [row for t, row in zip(sampler.system_t_s, sampler.system_cpu_percent, strict=True)
            if (start_s is None or t > start_s + sampler.interval_s)
            and (end_s is None or t <= end_s)]
    if not rows:
        return None
    busy = sum(sum(row[c] for c in cpus if c < len(row)) for row in rows) / len(rows)
    used = 0.0
    for name in own:
        window = sampler.series[name].window(start_s, end_s) if name in sampler.series else None
        if window is not None:
            used += window_stats(*window).cpu_percent
    return round(max(0.0, busy - used), 1)


def strip_histograms(report: dict[str, Any]) -> dict[str, Any]:
    """The load report without its encoded histograms (the cell keeps those itself)."""
    stripped = dict(report)
    for name in ("latency", "latency_uncorrected"):
        if isinstance(stripped.get(name), dict):
            stripped[name] = {k: v for k, v in stripped[name].items() if k != "histogram"}
    return stripped


def error_summary(report: dict[str, Any]) -> str:
    """``"12 errors (reset=10, connect=2)"`` from a load report."""
    errors = report.get("errors") or {}
    parts = [f"{k}={v}" for k, v in errors.items() if k != "total" and v]
    return f"{errors.get('total', 0)} errors ({', '.join(parts)})" if parts else "errors"
