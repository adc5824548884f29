"""Derived metrics of a cell, from the load generator's report and the sampled server.

Every metric is named with its unit (docs/formats.md); one that does not
apply to a cell is None, and one that should have been measured and could
not be is None with a flag and a note saying why, never 0. The CPU figures
come from two edge readings (:meth:`Sampler.edge`) at the measured window's
edges; the time series only gives the peaks. The plausibility rules that
judge the result live with the record (``iobench.benchmarks.results.plausibility``).
"""

from __future__ import annotations

import dataclasses

from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run.sampler import (
    Edge,
    Memory,
    Series,
    WindowStats,
    cpu_time_shares,
    window_stats,
)
from iobench.loadgen.report import LoadReport

LATENCY_FIELDS = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us", "mean_us")
# Other processes' CPU on the server's CPUs, % of one core, past which the cell
# is flagged: on a shared machine the server (or neighbour) had less CPU than
# the figures assume.
CONTENTION_PERCENT = 20.0
# Steal time on the server's or the client's CPUs, % of their time, past which
# the cell is flagged: the hypervisor ran something else on those CPUs.
STEAL_PERCENT = 5.0
CPU_UNMEASURED = "cpu_unmeasured"
# How far from an edge's moment a reading taken on another host for it may lie.
EDGE_MATCH_S = 0.5


def server_metrics(record: CellRecord, series: Series | None,
                   edges: tuple[Edge, Edge] | None) -> WindowStats | None:
    """Fill the server's CPU, context switches and peak sizes; say why if CPU is missing."""
    metrics = record.metrics
    readings = series.readings if series is not None else []
    if readings:
        metrics.peak_rss_bytes = max(r.rss_bytes for r in readings)
        metrics.peak_threads = max(r.threads for r in readings)
        metrics.peak_fds = max(r.fds for r in readings)
    if edges is None:
        record.flag(CPU_UNMEASURED, "the measured window's edges were not both read")
        return None
    first, last = (edge.trees.get("server") for edge in edges)
    if (first is None or last is None) and series is not None:
        # A launcher that samples on another host has no edge readings here:
        # the readings its sampler took at the edges' moments stand in.
        window = series.window(edges[0].t_s - EDGE_MATCH_S, edges[1].t_s + EDGE_MATCH_S)
        if window is not None:
            first, last = window
            record.notes["cpu_window"] = "from the server host's readings nearest the edges"
    if first is None or last is None:
        record.flag(CPU_UNMEASURED, "the server had exited before an edge of the window")
        return None
    if last.t_s <= first.t_s:
        record.flag(CPU_UNMEASURED, "the window's edges were read at the same moment")
        return None
    stats = window_stats(first, last)
    metrics.server_cpu_percent = round(stats.cpu_percent, 2)
    metrics.server_user_percent = round(stats.user_percent, 2)
    metrics.server_system_percent = round(stats.system_percent, 2)
    if stats.ctx_voluntary is None and series is not None:
        # Edges that read CPU alone: the switches come from the first and last
        # readings between them that counted them, when there are two.
        inner = series.window(first.t_s, last.t_s, switches=True)
        if inner is not None:
            counted = window_stats(*inner)
            stats = dataclasses.replace(
                stats, ctx_voluntary=counted.ctx_voluntary,
                ctx_involuntary=counted.ctx_involuntary, switches_elapsed_s=counted.elapsed_s)
    if (switches := stats.switches_per_s()) is not None:
        metrics.ctx_voluntary_per_s = round(switches[0], 1)
        metrics.ctx_involuntary_per_s = round(switches[1], 1)
    return stats


KERNEL_MEMORY = "kernel_memory"


def memory_metrics(metrics: Metrics, memory: Memory | None, baseline: Memory | None,
                   connections: int | None, notes: dict[str, str] | None = None) -> None:
    """PSS, USS and RSS of the tree while it held its connections, and PSS per connection.

    Per connection is the growth over the same server before its first
    connection, divided by the connections: what one more connection costs
    (a thread's stack, a forked child's private pages, a buffer). It is the
    growth of the tree's anonymous PSS where the kernel gives it: PSS and USS
    also move when processes outside the tree map the same libraries (the
    load generator, another Python, starts between the readings and takes a
    share of libpython: a one-process server's PSS fell by half a megabyte,
    -36 KB a connection over 16), while anonymous pages are the tree's own,
    and those its processes share after a fork count once. Elsewhere it is
    the growth of PSS.

    The kernel's side (sockets, kernel stacks...) comes from the tree's
    cgroup with the same two readings, and the two per-connection figures
    sum to ``memory_per_connection_bytes``. Where the kernel's is not
    counted, ``notes`` gets why under ``kernel_memory``.
    """
    if memory is None:
        return
    kernel_metrics(metrics, memory, baseline, connections, notes)
    metrics.pss_bytes, metrics.uss_bytes = memory.pss_bytes, memory.uss_bytes
    metrics.rss_bytes = memory.rss_bytes
    metrics.pss_anon_bytes = memory.pss_anon_bytes
    if baseline is not None:
        metrics.pss_baseline_bytes = baseline.pss_bytes
        metrics.pss_anon_baseline_bytes = baseline.pss_anon_bytes
        if connections:
            anon = (memory.pss_anon_bytes, baseline.pss_anon_bytes)
            growth = (anon[0] - anon[1] if anon[0] is not None and anon[1] is not None
                      else memory.pss_bytes - baseline.pss_bytes)
            metrics.pss_per_connection_bytes = round(growth / connections, 1)
    if metrics.pss_per_connection_bytes is not None \
            and metrics.kernel_bytes_per_connection is not None:
        metrics.memory_per_connection_bytes = round(
            metrics.pss_per_connection_bytes + metrics.kernel_bytes_per_connection, 1)


def kernel_metrics(metrics: Metrics, memory: Memory, baseline: Memory | None,
                   connections: int | None, notes: dict[str, str] | None) -> None:
    """The kernel's memory for the tree, before and while it held its connections."""
    metrics.kernel_bytes = memory.kernel_bytes
    if memory.kernel_bytes is None:
        if notes is not None:
            notes[KERNEL_MEMORY] = memory.kernel_note or "the kernel's memory was not read"
        return
    if baseline is None:
        return
    metrics.kernel_baseline_bytes = baseline.kernel_bytes
    if baseline.kernel_bytes is None:
        if notes is not None and connections:
            notes[KERNEL_MEMORY] = (baseline.kernel_note
                                    or "the kernel's memory was not read before the first "
                                       "connection")
        return
    if connections:
        metrics.kernel_bytes_per_connection = round(
            (memory.kernel_bytes - baseline.kernel_bytes) / connections, 1)
    elif notes is not None:
        notes[KERNEL_MEMORY] = "the cell held no connection: nothing to divide by"


def load_metrics(metrics: Metrics, report: LoadReport, server: WindowStats | None) -> None:
    """Fill throughput, latency, per-request costs and client CPU from a load report."""
    throughput = report.throughput_rps
    metrics.throughput_rps = throughput
    metrics.requests = report.requests
    for name in LATENCY_FIELDS:
        setattr(metrics, name, report.percentile_us(name))
    metrics.errors = report.error_count
    client_cpu = report.client.cpu_percent
    if client_cpu:
        metrics.client_cpu_percent = round(sum(client_cpu), 2)
    if server is not None and throughput:
        # Rates over the edges' window, divided by the measured request rate.
        cpu_s_per_s = server.cpu_s / server.elapsed_s
        metrics.cpu_us_per_request = round(cpu_s_per_s * 1e6 / throughput, 2)
        if (switches := server.switches_per_s()) is not None:
            metrics.ctx_voluntary_per_request = round(switches[0] / throughput, 4)
            metrics.ctx_involuntary_per_request = round(switches[1] / throughput, 4)
    connection_metrics(metrics, report, server)


def connection_metrics(metrics: Metrics, report: LoadReport,
                       server: WindowStats | None) -> None:
    """Churn's rate, connect latency and server CPU per connection; requests left unanswered."""
    if report.unanswered is not None:
        metrics.unanswered_requests = report.unanswered.get("requests")
    churn = report.churn
    if not churn:
        return
    per_s = churn.get("connections_per_s")
    metrics.connections_per_s = per_s
    connect = churn.get("connect_latency") or {}
    metrics.connect_p50_us = connect.get("p50_us")
    metrics.connect_p99_us = connect.get("p99_us")
    if server is not None and per_s:
        metrics.cpu_us_per_connection = round(server.cpu_s / server.elapsed_s * 1e6 / per_s, 2)


def load_flags(report: LoadReport) -> list[str]:
    """The load generator's own flags (Little's law is a plausibility rule)."""
    raised = {"client_saturated": report.client_saturated,
              "behind_schedule": report.behind_schedule, "errors": bool(report.error_count)}
    return [name for name, up in raised.items() if up]


def client_metric_from_edges(metrics: Metrics, edges: tuple[Edge, Edge] | None) -> None:
    """The load generator's CPU between the edges, when its report does not say."""
    if metrics.client_cpu_percent is not None or edges is None:
        return
    first, last = (edge.trees.get("client") for edge in edges)
    if first is not None and last is not None and last.t_s > first.t_s:
        metrics.client_cpu_percent = round(window_stats(first, last).cpu_percent, 2)


def machine_metrics(record: CellRecord, edges: tuple[Edge, Edge] | None,
                    server_cpus: list[int], client_cpus: list[int], own: list[str],
                    reported_cpu_s: dict[str, float | None] | None = None) -> None:
    """Other processes' CPU on the server's CPUs, and steal time on both sides, with flags.

    From the per-CPU times at the same two edges as the server's CPU, so
    both cover exactly the same moments. ``own``: the trees that belong on
    the server's CPUs (server, neighbour); the rest of the busy time there
    is someone else's. Contention is only meaningful when the sides have
    CPUs of their own. ``reported_cpu_s``: the CPU an own tree reported for
    itself, for one not read at both edges (the neighbour starts after the
    first edge and has exited by the last).
    """
    if edges is None:
        return
    first, last = edges
    metrics = record.metrics
    server = cpu_time_shares(first, last, server_cpus)
    client = cpu_time_shares(first, last, client_cpus) if last.client_cpus_here else None
    if server is not None:
        metrics.steal_server_percent = round(server[1] / len(server_cpus), 2)
    if client is not None:
        metrics.steal_client_percent = round(client[1] / len(client_cpus), 2)
    steal = [s for s in (metrics.steal_server_percent, metrics.steal_client_percent)
             if s is not None]
    if steal and max(steal) > STEAL_PERCENT:
        record.flag("steal", f"the hypervisor took {max(steal):.1f}% of a side's CPU time")
    if server is None or set(server_cpus) & set(client_cpus):
        return
    used = 0.0
    for name in own:
        a, b = first.trees.get(name), last.trees.get(name)
        # A tree without a cgroup whose processes have all exited lost its CPU.
        if a is not None and b is not None and b.t_s > a.t_s and (b.exact or b.processes):
            used += window_stats(a, b).cpu_s
        elif (reported := (reported_cpu_s or {}).get(name)) is not None:
            used += reported
    elapsed = last.t_s - first.t_s
    other = max(0.0, server[0] - 100.0 * used / elapsed)
    metrics.server_cpus_other_percent = round(other, 1)
    if other > CONTENTION_PERCENT:
        record.flag("cpu_contended")


def error_summary(report: LoadReport) -> str:
    """``"12 errors (reset=10, connect=2)"`` from a load report."""
    parts = [f"{k}={v}" for k, v in report.errors.items() if k != "total" and v]
    return f"{report.error_count} errors ({', '.join(parts)})" if parts else "errors"
