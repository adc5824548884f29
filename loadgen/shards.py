"""Load from several hosts: split a run into shards, and merge their reports into one.

A shard is one ``python -m iobench.loadgen`` run on one client host, with its
share of the connections and of the open-loop rate (the same even split the
worker processes of one run use). Each shard writes the usual JSON; the
merged report has the same shape as a single run's, so everything that
reads a load report reads it unchanged. Latency histograms are merged with
HdrHistogram ``add``: percentiles of several hosts are never averaged.
"""

from __future__ import annotations

from iobench.loadgen.connection_report import merge_connection_fields
from iobench.loadgen.histograms import merge_encoded, summarize
from iobench.loadgen.params import split_evenly
from iobench.loadgen.plan import ERROR_KINDS
from iobench.loadgen.report import ClientReport, LoadReport
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


def merge_reports(reports: list[LoadReport], hosts: list[str]) -> LoadReport:
    """One load report from the shards' reports (``hosts[i]`` ran ``reports[i]``).

    Throughput is the sum of the shards' own throughputs (each over its own
    measured window: the shards start within milliseconds of each other but
    not at once); ``measured_s`` is the longest window. ``shards`` keeps what
    each host did, so a reader can check that each held its share. The
    window on a host's monotonic clock is left out: the hosts' clocks differ.
    """
    if not reports or len(reports) != len(hosts):
        raise ValueError("merge_reports needs one report per host")
    params = dict(reports[0].params)
    params["connections"] = sum(r.params["connections"] for r in reports)
    params["workers"] = sum(r.params["workers"] for r in reports)
    params["idle"] = sum(int(r.params.get("idle") or 0) for r in reports)
    rates = [r.params.get("rate_rps") for r in reports]
    params["rate_rps"] = sum(rates) if all(rate is not None for rate in rates) else None
    open_loop = params.get("mode") == "open"
    errors = {kind: sum(r.errors.get(kind, 0) for r in reports) for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    clients = [r.client for r in reports]
    cpu_percent = [cpu for client in clients for cpu in client.cpu_percent]
    achieved = sum(client.achieved_rate_rps for client in clients)
    target = params["rate_rps"]
    uncorrected = None
    if open_loop:
        uncorrected = summarize(merge_encoded(
            r.histogram_uncorrected for r in reports if r.histogram_uncorrected))
    connect_errors = [r.connect_error for r in reports if r.connect_error]
    merged = LoadReport(
        schema=SCHEMA,
        params=params,
        requests=sum(r.requests for r in reports),
        measured_s=round(max(r.measured_s for r in reports), 6),
        throughput_rps=round(sum(r.throughput_rps for r in reports), 1),
        latency=summarize(merge_encoded(r.histogram for r in reports if r.histogram)),
        latency_uncorrected=uncorrected,
        errors=errors,
        client=ClientReport(
            workers=sum(client.workers for client in clients),
            cpu_percent=cpu_percent,
            target_rate_rps=target,
            achieved_rate_rps=round(achieved, 1),
            max_schedule_lag_us=max(client.max_schedule_lag_us for client in clients),
            event_loop=clients[0].event_loop,
            connected=sum(client.connected for client in clients),
            unfinished_requests=sum(client.unfinished_requests for client in clients),
            idle_connected=sum(client.idle_connected for client in clients),
            idle_open=sum(client.idle_open for client in clients),
        ),
        client_saturated=any(cpu >= SATURATED_CPU_PERCENT for cpu in cpu_percent),
        behind_schedule=bool(open_loop and target and achieved < ON_SCHEDULE_RATIO * target),
        connect_error=connect_errors[0] if connect_errors else None,
        ok=all(r.ok for r in reports),
        shards=[
            {"host": host, "connections": r.params["connections"],
             "rate_rps": r.params.get("rate_rps"), "requests": r.requests,
             "throughput_rps": r.throughput_rps,
             "achieved_rate_rps": r.client.achieved_rate_rps,
             "behind_schedule": r.behind_schedule,
             "latency_count": _count(r)}
            for host, r in zip(hosts, reports, strict=True)
        ],
    )
    for name, value in merge_connection_fields([r.to_json() for r in reports]).items():
        setattr(merged, name, value)
    return merged


def _count(report: LoadReport) -> int | None:
    """How many latencies the shard's histogram holds."""
    encoded = report.histogram
    return merge_encoded([encoded]).get_total_count() if encoded else None
