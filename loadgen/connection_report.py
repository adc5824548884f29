"""What the load report says about connections: churn, failed connects by cause, the window's edges.

Kept apart from the rest of the report so that it reads as one addition:

- ``churn``: with ``--requests-per-connection K``, connections completed
  (closed after their K-th verified response) in the measured window and
  per second, connects established in it, and connect latency from its own
  HdrHistogram (from ``connect()`` until the socket is writable), merged
  across workers and shards like the request histogram; null without churn.
- ``connect_errors``: every failed connect of the run by its errno name
  (``ECONNREFUSED``, ``ETIMEDOUT`` for a handshake that took longer than
  ``--timeout``, ``EADDRNOTAVAIL`` when no source port is left,
  ``ECONNRESET``...); their total is ``errors.connect``.
- ``unanswered``: closed loop, requests still on the wire when the measured
  window closed: how many and their ages then (their waiting time so far is
  in the latency figures too, as a lower bound); null in open loop, whose
  ``client.unfinished_requests`` counts what the drain did not get back.
- ``starved``: closed loop, connections left without an answer past a limit,
  and ``when``: at the first exchange (see ``Worker._first_exchange``; the
  run is then called off), or in the window and its drain, where a request
  unanswered past ``--timeout`` closes its connection (the others go on
  being measured). ``failure`` then says "starved: N of M connections
  unanswered after T s".
"""

from __future__ import annotations

from typing import Any

from iobench.loadgen.histograms import merge_encoded, summarize
from iobench.loadgen.params import LoadParams
from iobench.loadgen.plan import WorkerResult


def connection_fields(params: LoadParams, results: list[WorkerResult],
                      measured_s: float) -> dict[str, Any]:
    """The report's fields about connections (see the module's docstring)."""
    connect_errors: dict[str, int] = {}
    for result in results:
        for cause, count in result.connect_errors.items():
            connect_errors[cause] = connect_errors.get(cause, 0) + count
    churn = None
    if params.requests_per_connection is not None:
        completed = sum(result.connections_completed for result in results)
        churn = {
            "requests_per_connection": params.requests_per_connection,
            "connections": completed,
            "connections_per_s": round(completed / measured_s, 1) if measured_s else 0.0,
            "connects": sum(result.connects for result in results),
            "connect_latency": summarize(merge_encoded(
                r.connect_histogram for r in results if r.connect_histogram)),
            "close": "abortive (SO_LINGER 0: RST, no TIME_WAIT)",
        }
    unanswered = None
    if params.mode == "closed":
        unanswered = _unanswered(sum(result.unanswered for result in results),
                                 params.connections,
                                 [r.unanswered_histogram for r in results
                                  if r.unanswered_histogram])
    starved_count = sum(result.starved for result in results)
    starved = None
    if starved_count:
        starved = {"connections": starved_count, "of": params.connections,
                   "after_s": max(result.starved_after_s for result in results),
                   "when": "first exchange"}
    elif params.mode == "closed" and (lost := sum(r.timed_out_connections for r in results)):
        # In the window (or its drain): a connection whose request waited past
        # --timeout was closed; the run measured the others.
        starved = {"connections": lost, "of": params.connections,
                   "after_s": params.timeout_s, "when": "window"}
    fields: dict[str, Any] = {"churn": churn, "connect_errors": connect_errors,
                              "unanswered": unanswered, "starved": starved}
    if starved is not None:
        fields["failure"] = starved_failure(starved)
    return fields


def starved_failure(starved: dict[str, Any]) -> str:
    return (f"starved: {starved['connections']} of {starved['of']} connections unanswered "
            f"after {starved['after_s']:g} s")


def _unanswered(count: int, connections: int, encoded: list[str]) -> dict[str, Any]:
    ages = summarize(merge_encoded(encoded))
    return {"requests": count, "connections": connections,
            "p50_age_us": ages["p50_us"], "max_age_us": ages["max_us"],
            "histogram": ages["histogram"]}


def merge_connection_fields(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The same fields for shards' reports merged into one (iobench.loadgen.shards)."""
    connect_errors: dict[str, int] = {}
    for report in reports:
        for cause, count in (report.get("connect_errors") or {}).items():
            connect_errors[cause] = connect_errors.get(cause, 0) + int(count)
    churns = [report["churn"] for report in reports if report.get("churn")]
    churn = None
    if churns:
        churn = {
            "requests_per_connection": churns[0]["requests_per_connection"],
            "connections": sum(int(c["connections"]) for c in churns),
            # Each shard over its own window, as throughput is merged.
            "connections_per_s": round(sum(float(c["connections_per_s"]) for c in churns), 1),
            "connects": sum(int(c["connects"]) for c in churns),
            "connect_latency": summarize(merge_encoded(
                c["connect_latency"]["histogram"] for c in churns
                if (c.get("connect_latency") or {}).get("histogram"))),
            "close": churns[0]["close"],
        }
    unanswereds = [report["unanswered"] for report in reports if report.get("unanswered")]
    unanswered = None
    if unanswereds:
        unanswered = _unanswered(sum(int(u["requests"]) for u in unanswereds),
                                 sum(int(u["connections"]) for u in unanswereds),
                                 [u["histogram"] for u in unanswereds if u.get("histogram")])
    starveds = [report["starved"] for report in reports if report.get("starved")]
    starved = None
    if starveds:
        starved = {"connections": sum(int(s["connections"]) for s in starveds),
                   "of": sum(int(r["params"]["connections"]) for r in reports),
                   "after_s": max(float(s["after_s"]) for s in starveds),
                   "when": starveds[0].get("when")}
    fields: dict[str, Any] = {"churn": churn, "connect_errors": connect_errors,
                              "unanswered": unanswered, "starved": starved}
    if starved is not None:
        fields["failure"] = starved_failure(starved)
    return fields
