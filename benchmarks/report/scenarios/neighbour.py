"""Neighbour: a CPU-bound process sharing the server's core."""

from __future__ import annotations

from iobench.benchmarks.report.finding import (
    Finding,
    Notes,
    by_label,
    cell_text,
    figure_of,
    markdown_table,
    value,
)
from iobench.benchmarks.report.scenario import ReportScenario
from iobench.benchmarks.results.loader import Run


def findings(run: Run) -> list[Finding]:
    """What an idle or loaded server's CPU costs a CPU-bound process on the same core."""
    groups = [g for g in run.scenario("neighbour") if g.model is not None]
    if not groups:
        return []
    phases = [p for p in ("idle", "load") if any(g.phase == p for g in groups)]
    notes = Notes()
    rows = []
    idle_ratio: dict[str, float | None] = {}
    for label, members in by_label(groups).items():
        at = {g.phase: g for g in members}
        rows.append([label, *(cell_text(at.get(p), "neighbour_ratio", notes,
                                        f"{label} ({p})") for p in phases)])
        idle_ratio[label] = figure_of(at.get("idle"), "neighbour_ratio")
    measured = {m: r for m, r in idle_ratio.items() if r is not None}
    if not measured:
        return []
    slowest = sorted(measured, key=lambda m: measured[m])
    named = slowest[:2]
    rest = [measured[m] for m in slowest[2:]]
    metric = "neighbour_ratio"
    summary = (f"a CPU-bound process sharing the idle server's core ran at "
               f"{value(metric, measured[named[0]])} of its solo speed beside {named[0]}"
               + "".join(f", {value(metric, measured[m])} beside {m}" for m in named[1:])
               + (f", at least {value(metric, min(rest))} beside every other model"
                  if rest else ""))
    headers = ["model", *(f"beside the {'idle' if p == 'idle' else 'loaded'} server "
                          "(vs alone)" for p in phases)]
    detail = ("A CPU-bound neighbour's work rate beside each server, as a fraction of its "
              "rate alone:", "", *markdown_table(headers, rows), *notes.lines())
    return [Finding("neighbour", "an idle server's CPU is taken from its neighbours", None,
                    summary, "", detail)]

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
    findings=findings,
)
