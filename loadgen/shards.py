"""Load from several hosts: split a run into shards, and merge their reports into one.

A shard is one ``python -m iobench.loadgen`` run on one client host, with its
share of the connections and of the open-loop rate (the same even split the
worker processes of one run use). Each shard writes the usual JSON; the
merged report has the same shape as a single run's, so everything that
reads a load report reads it unchanged. Latency histograms are merged with
HdrHistogram ``add``: percentiles of several hosts are never averaged.
"""

from __future__ import annotations

from typing import Any

from iobench.loadgen.connection_report import merge_connection_fields
from iobench.loadgen.histograms import merge_encoded, summarize
from iobench.loadgen.params import split_evenly
from iobench.loadgen.plan import ERROR_KINDS
from iobench.loadgen.runner import ON_SCHEDULE_RATIO, SATURATED_CPU_PERCENT, SCHEMA


def shard_shares(connections: int, rate_rps: float | None, shards: int
                 ) -> list[tuple[int, float | None]]:
    """Each shard's (connections, rate): the rate follows the connections it drives.

    Shards that would get no connection are left out, so fewer than
    ``shards`` shares come back when there are fewer connections than hosts.
    """
    shares = []
    for count in split_evenly(connections, shards):
        if count:
            rate = rate_rps * count / connections if rate_rps is not None else None
            shares.append((count, rate))
    return shares


def merge_reports(reports: list[dict[str, Any]], hosts: list[str]) -> dict[str, Any]:
    """One load report from the shards' reports (``hosts[i]`` ran ``reports[i]``).

    Throughput is the sum of the shards' own throughputs (each over its own
    measured window: the shards start within milliseconds of each other but
    not at once); ``measured_s`` is the longest window. ``shards`` keeps what
    each host did, so a reader can check that each held its share.
    """
    if not reports or len(reports) != len(hosts):
        raise ValueError("merge_reports needs one report per host")
    first = reports[0]["params"]
    params = dict(first)
    params["connections"] = sum(r["params"]["connections"] for r in reports)
    params["workers"] = sum(r["params"]["workers"] for r in reports)
    params["idle"] = sum(int(r["params"].get("idle") or 0) for r in reports)
    rates = [r["params"].get("rate_rps") for r in reports]
    params["rate_rps"] = sum(rates) if all(rate is not None for rate in rates) else None
    open_loop = params.get("mode") == "open"
    measured_s = max(float(r["measured_s"]) for r in reports)
    requests = sum(int(r["requests"]) for r in reports)
    throughput = sum(float(r["throughput_rps"]) for r in reports)
    errors = {kind: sum(int((r.get("errors") or {}).get(kind, 0)) for r in reports)
              for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    clients = [r.get("client") or {} for r in reports]
    cpu_percent = [cpu for client in clients for cpu in client.get("cpu_percent") or []]
    achieved = sum(float(client.get("achieved_rate_rps") or 0.0) for client in clients)
    target = params["rate_rps"]
    latency = summarize(merge_encoded(
        r["latency"]["histogram"] for r in reports if (r.get("latency") or {}).get("histogram")))
    uncorrected = None
    if open_loop:
        uncorrected = summarize(merge_encoded(
            r["latency_uncorrected"]["histogram"] for r in reports
            if (r.get("latency_uncorrected") or {}).get("histogram")))
    connect_errors = [r["connect_error"] for r in reports if r.get("connect_error")]
    connected = sum(int(client.get("connected") or 0) for client in clients)
    merged = {
        "schema": SCHEMA,
        "params": params,
        "requests": requests,
        "measured_s": round(measured_s, 6),
        "throughput_rps": round(throughput, 1),
        "latency": latency,
        "latency_uncorrected": uncorrected,
        "errors": errors,
        "client": {
            "workers": sum(int(client.get("workers") or 0) for client in clients),
            "cpu_percent": cpu_percent,
            "target_rate_rps": target,
            "achieved_rate_rps": round(achieved, 1),
            "max_schedule_lag_us": max(float(c.get("max_schedule_lag_us") or 0.0)
                                       for c in clients),
            "event_loop": clients[0].get("event_loop"),
            "connected": connected,
            "unfinished_requests": sum(int(c.get("unfinished_requests") or 0) for c in clients),
            "idle_connected": sum(int(c.get("idle_connected") or 0) for c in clients),
            "idle_open": sum(int(c.get("idle_open") or 0) for c in clients),
        },
        "client_saturated": any(cpu >= SATURATED_CPU_PERCENT for cpu in cpu_percent),
        "behind_schedule": bool(open_loop and target and achieved < ON_SCHEDULE_RATIO * target),
        "connect_error": connect_errors[0] if connect_errors else None,
        "ok": all(r.get("ok", False) for r in reports),
        "shards": [
            {"host": host, "connections": r["params"]["connections"],
             "rate_rps": r["params"].get("rate_rps"), "requests": r["requests"],
             "throughput_rps": r["throughput_rps"],
             "achieved_rate_rps": (r.get("client") or {}).get("achieved_rate_rps"),
             "behind_schedule": r.get("behind_schedule"),
             "latency_count": _count(r)}
            for host, r in zip(hosts, reports, strict=True)
        ],
    }
    merged.update(merge_connection_fields(reports))
    return merged


def _count(report: dict[str, Any]) -> int | None:
    """How many latencies the shard's histogram holds."""
    encoded = (report.get("latency") or {}).get("histogram")
    return merge_encoded([encoded]).get_total_count() if encoded else None
