"""Idle: connections open, no requests; what it costs to wait."""

from __future__ import annotations

from iobench.benchmarks.report.finding import (
    Finding,
    Notes,
    by_label,
    cell_text,
    claim_finding,
    markdown_table,
    median,
    value,
)
from iobench.benchmarks.report.presentation import plural
from iobench.benchmarks.report.scenario import Headline, ReportScenario
from iobench.benchmarks.results.loader import Run


def findings(run: Run) -> list[Finding]:
    """Busy polling burns a core doing nothing: idle CPU per model and connection count."""
    groups = [g for g in run.scenario("idle") if g.model is not None]
    if not groups:
        return []
    counts = sorted({g.connections or 0 for g in groups})
    notes = Notes()
    rows = []
    at_most: dict[str, float | None] = {}
    for label, members in by_label(groups).items():
        at = {g.connections or 0: g for g in members}
        rows.append([label, *(cell_text(at.get(c), "server_cpu_percent", notes,
                                        f"{label} with {plural(c, 'connection')}")
                              for c in counts)])
        at_most[label] = median(at.get(counts[-1]), "server_cpu_percent")
    metric = "server_cpu_percent"
    named = [m for m in ("busy-poll", "poll-sleep", "select") if at_most.get(m) is not None]
    others = [v for m, v in at_most.items() if m not in named and v is not None]
    summary = None
    if named:
        summary = (f"idle with {plural(counts[-1], 'connection')}, {named[0]} used "
                   f"{value(metric, at_most[named[0]])}% of a core, "
                   + ", ".join(f"{m} {value(metric, at_most[m])}%" for m in named[1:])
                   + (f", every other model at most {value(metric, max(others))}%"
                      if others else ""))
    headers = ["model", *(f"{plural(c, 'connection')} (% of a core)" for c in counts)]
    detail = ["Idle server CPU, no requests:", "", *markdown_table(headers, rows), *notes.lines()]
    return claim_finding(run, "busy_poll_burns_cpu", summary, detail)

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
    findings=findings,
)
