"""The human summary of a load run, in the spirit of wrk2's output."""

from __future__ import annotations

from typing import Any

from iobench.loadgen.histograms import PERCENTILES


def format_us(value: float | None) -> str:
    """Microseconds in the unit a reader takes in at a glance."""
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}s"
    if value >= 1_000:
        return f"{value / 1_000:.2f}ms"
    return f"{value:.0f}us"


def _latency_line(title: str, latency: dict[str, Any]) -> list[str]:
    labels = [name.removesuffix("_us").replace("_", ".").removeprefix("p") + "%"
              for name, _ in PERCENTILES]
    values = [format_us(latency[name]) for name, _ in PERCENTILES]
    lines = [f"  {title}"]
    lines.append("    " + "  ".join(f"{label:>8}" for label in [*labels, "max", "mean"]))
    lines.append("    " + "  ".join(f"{value:>8}" for value in
                                    [*values, format_us(latency["max_us"]),
                                     format_us(latency["mean_us"])]))
    return lines


def _connection_lines(result: dict[str, Any]) -> list[str]:
    """Churn, requests unanswered at the window's close, failed connects by cause, starvation."""
    lines = []
    churn = result.get("churn")
    if churn:
        connect = churn["connect_latency"]
        lines.append(f"  connections  {churn['connections']} closed after "
                     f"{churn['requests_per_connection']} request(s) each, "
                     f"{churn['connections_per_s']:.1f} per s; connect p50 "
                     f"{format_us(connect['p50_us'])}, p99 {format_us(connect['p99_us'])}, "
                     f"max {format_us(connect['max_us'])}")
    unanswered = result.get("unanswered")
    if unanswered and unanswered["requests"]:
        lines.append(f"  unanswered   {unanswered['requests']} requests when the window closed, "
                     f"aged p50 {format_us(unanswered['p50_age_us'])}, max "
                     f"{format_us(unanswered['max_age_us'])} (in the latency figures so far)")
    causes = result.get("connect_errors") or {}
    if causes:
        lines.append("  connects     failed: " + ", ".join(f"{cause} {count}" for cause, count
                                                           in sorted(causes.items())))
    if result.get("failure"):
        lines.append(f"  FAILED: {result['failure']}")
    return lines


def format_summary(result: dict[str, Any]) -> str:
    """Several lines: what ran, the rate, latency percentiles, errors and warnings."""
    params = result["params"]
    client = result["client"]
    mode = params["mode"]
    header = (f"{mode} loop against {params['target']}: {params['connections']} connections, "
              f"{params['size_bytes']} B messages, {params['workers']} worker(s), "
              f"{params['duration_s']:g} s measured after {params['warmup_s']:g} s warm-up")
    if params.get("idle"):
        header += f", beside {params['idle']} idle connections"
    if mode == "open":
        header += f", target {params['rate_rps']:g} req/s ({params['arrival']})"
    lines = [header]
    lines.append(f"  requests     {result['requests']} in {result['measured_s']:.3f} s")
    lines.append(f"  throughput   {result['throughput_rps']:.1f} req/s")
    if mode == "open":
        lines.append(f"  sent rate    {client['achieved_rate_rps']:.1f} req/s of "
                     f"{client['target_rate_rps']:g}, largest schedule lag "
                     f"{format_us(client['max_schedule_lag_us'])}")
    if client.get("unfinished_requests"):
        lines.append(f"  unfinished   {client['unfinished_requests']} requests still owed "
                     "after the drain (not in the latency figures)")
    lines += _connection_lines(result)
    if params.get("idle"):
        lines.append(f"  idle         {client['idle_open']} of {params['idle']} still open "
                     f"at the end ({client['idle_connected']} established)")
    title = "latency (from intended send time)" if mode == "open" else "latency"
    lines += _latency_line(title, result["latency"])
    if result["latency_uncorrected"] is not None:
        lines += _latency_line("latency, uncorrected (from actual send time)",
                               result["latency_uncorrected"])
    errors = result["errors"]
    detail = ", ".join(f"{kind} {count}" for kind, count in errors.items()
                       if kind != "total" and count)
    lines.append(f"  errors       {errors['total']}" + (f" ({detail})" if detail else ""))
    cpu = ", ".join(f"{value:.0f}%" for value in client["cpu_percent"])
    lines.append(f"  client CPU   {cpu} per worker ({client['event_loop']} loop)")
    if result["client_saturated"]:
        lines.append("  WARNING: the load generator used nearly all its CPU: these figures "
                     "may show the client's limit, not the server's")
    if result["behind_schedule"]:
        lines.append("  WARNING: the open loop could not keep its rate (sent "
                     f"{client['achieved_rate_rps']:.0f} of {client['target_rate_rps']:g} req/s)")
    return "\n".join(lines)
