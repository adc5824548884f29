"""What a run found, scenario by scenario, in lines documentation can print.

README's Findings and docs/findings.md are written from these (``iobench
docs``), so every number in them comes from a run and every verdict from the
judges in :mod:`claims` and :mod:`scale`; nothing here is typed by hand but
the shape of the sentences. A scenario says what it found with one function,
``findings(run) -> list[Finding]``, listed in :data:`FINDINGS` under its
name: a new scenario (churn, work, kernel memory...) adds its function there
and its findings reach README and docs/findings.md on the next ``iobench
docs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from iobench.benchmarks.report.claims import (
    ClaimResult,
    Verdict,
    default_params,
    judge_claims,
)
from iobench.benchmarks.report.presentation import (
    format_duration_s,
    format_spread,
    format_value,
    plural,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scale import (
    COST_METRIC,
    closed_series,
    judge_scale,
    memory_per_connection,
)
from iobench.benchmarks.results.loader import CellGroup, Run

# A figure the load generator may have capped is marked with this in tables,
# and the mark explained under them.
SATURATED_MARK = "*"
SATURATED_NOTE = (f"{SATURATED_MARK} the load generator used nearly a whole core "
                  "(`client_saturated`): the figure may be the client's limit, not the server's.")
# A figure from a cell that broke a plausibility rule is shown with this mark:
# kept and shown, but left out of every verdict.
SET_ASIDE_MARK = "†"


@dataclass(frozen=True)
class Finding:
    """One thing a run shows: a title, its computed verdict, a sentence, and its detail.

    ``summary`` is one sentence with the run's numbers (README's findings
    table); ``reason`` is why the verdict is what it is (the judge's words);
    ``detail`` is Markdown lines (tables, notes) for docs/findings.md, and
    ``evidence`` the judge's lines quoting the numbers it read.
    ``verdict`` is None for a measurement that no rule judges.
    """

    key: str
    title: str
    verdict: Verdict | None
    summary: str
    reason: str = ""
    detail: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]],
                   numeric_from: int = 1) -> list[str]:
    """A Markdown table; columns from ``numeric_from`` on are right-aligned."""
    aligns = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


class Notes:
    """Footnotes under a table: failures and saturation, each said once."""

    def __init__(self) -> None:
        self.failures: dict[str, dict[str, None]] = {}
        self.set_aside: dict[str, None] = {}  # "where: rule (what was seen)"
        self.saturated = False

    def failed(self, where: str, group: CellGroup) -> str:
        for reason in group.failures:
            self.failures.setdefault(reason, {})[where] = None
        return "failed"

    def lines(self) -> list[str]:
        """The notes, each its own paragraph, after a blank line under the table."""
        found = [f"Failed, {', '.join(wheres)}: {reason}."
                 for reason, wheres in self.failures.items()]
        if self.set_aside:
            found.append(f"{SET_ASIDE_MARK} from a cell that broke a plausibility rule: shown, "
                         f"and left out of the verdicts ({'; '.join(self.set_aside)}).")
        if self.saturated:
            found.append(SATURATED_NOTE)
        return [line for note in found for line in ("", note)]


def cell_text(group: CellGroup | None, metric: str, notes: Notes, where: str = "") -> str:
    """A table cell: the median (and range), or why there is none; never a made-up 0."""
    if group is None:
        return "not run"
    if group.failed:
        return notes.failed(where or series_label(group), group)
    spread = group.metric(metric)
    if spread is None:
        return "-"
    mark = ""
    if not group.plausible_cells:
        notes.set_aside.update(dict.fromkeys(
            f"{where or series_label(group)}: {v.rule}, {v.seen}"
            for cell in group.ok_cells for v in cell.implausible))
        mark = SET_ASIDE_MARK
    elif "client_saturated" in group.flags and metric in ("throughput_rps", COST_METRIC):
        notes.saturated = True
        mark = SATURATED_MARK
    return format_spread(metric, spread) + mark


def median(group: CellGroup | None, metric: str) -> float | None:
    """The plausible median, or None when the cell failed, broke a rule or lacks it."""
    if group is None or group.failed:
        return None
    spread = group.metric(metric, plausible_only=True)
    return spread.median if spread is not None else None


def value(metric: str, number: float | None) -> str:
    return "-" if number is None else format_value(metric, number)


def verdict_of(run: Run, key: str) -> ClaimResult | None:
    """The computed verdict filed under ``key`` (claims.json's key), if the run has it."""
    return next((c for c in judge_claims(run) + judge_scale(run) if c.key == key), None)


def claim_finding(run: Run, key: str, summary: str | None,
                  detail: Sequence[str] = ()) -> list[Finding]:
    """A finding for a judged claim; its reason stands in when no summary could be made."""
    claim = verdict_of(run, key)
    if claim is None:
        return []
    text = summary if summary and claim.verdict is not Verdict.INCONCLUSIVE else claim.reason
    return [Finding(key, claim.claim, claim.verdict, text, claim.reason, tuple(detail),
                    claim.figures, tuple(claim.evidence))]


def by_label(groups: Iterable[CellGroup]) -> dict[str, list[CellGroup]]:
    """Groups per series label, in registry order."""
    found: dict[str, list[CellGroup]] = {}
    for group in sorted(groups, key=series_sort_key):
        found.setdefault(series_label(group), []).append(group)
    return found


def idle_findings(run: Run) -> list[Finding]:
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


def neighbour_findings(run: Run) -> list[Finding]:
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
        idle_ratio[label] = median(at.get("idle"), "neighbour_ratio")
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


def interval_findings(run: Run) -> list[Finding]:
    """Sleeping between polls trades CPU for latency: the interval sweep."""
    groups = [g for g in run.scenario("interval") if g.model is not None]
    if not groups:
        return []
    notes = Notes()
    metrics = ("p50_us", "p99_us", "server_cpu_percent")
    rows = []
    for group in sorted(groups, key=series_sort_key):
        rows.append([series_label(group), *(cell_text(group, m, notes) for m in metrics)])
    sleepers = sorted((g for g in groups if g.model == "poll-sleep"),
                      key=lambda g: g.params.get("interval") or 0.0)
    select = next((g for g in groups if g.model == "select"), None)
    first = groups[0]
    where = (f"open loop at {value('throughput_rps', first.rate_rps)} requests/s over "
             f"{plural(first.connections, 'connection')}")
    summary = None
    select_p50 = median(select, "p50_us")
    points = [(g, median(g, "p50_us"), median(g, "server_cpu_percent")) for g in sleepers]
    if select_p50 is not None and points and all(p and c is not None for _, p, c in points):
        summary = (f"{where}, select answered in {value('p50_us', select_p50)} us (p50); "
                   "poll-sleep in "
                   + ", ".join(f"{value('p50_us', p)} us at "
                               f"{format_duration_s(float(g.params.get('interval') or 0))}"
                               for g, p, _ in points)
                   + ", its CPU falling from "
                   + " to ".join(f"{value('server_cpu_percent', c)}%" for _, _, c in
                                 (points[0], points[-1]))
                   + " of a core")
    headers = ["model", "p50 (us)", "p99 (us)", "server CPU (% of a core)"]
    detail = [f"The interval sweep, {where}:", "", *markdown_table(headers, rows),
              *notes.lines()]
    return claim_finding(run, "sleep_raises_latency", summary, detail)


def closed_findings(run: Run) -> list[Finding]:
    """Throughput with few and many connections; select against threads at the most."""
    groups = [g for g in run.scenario("closed") if g.model is not None]
    if not groups:
        return []
    return throughput_finding(run, groups) + many_connections_finding(run, groups)


def throughput_finding(run: Run, groups: list[CellGroup]) -> list[Finding]:
    counts = sorted({g.connections or 0 for g in groups})
    sizes = sorted({g.size_bytes or 0 for g in groups})
    notes = Notes()
    rows = []
    article = [g for g in groups if g.model in ("busy-poll", "poll-sleep", "select")
               and default_params(g)]
    for size in sizes:
        for label, members in by_label(g for g in article if g.size_bytes == size).items():
            by_count = {g.connections or 0: g for g in members}
            rows.append([f"{label}, {size} B", *(cell_text(
                by_count.get(c), "throughput_rps", notes, f"{label}, "
                f"{plural(c, 'connection')}, {size} B") for c in counts)])
    fewest, size = counts[0], sizes[0]

    def at(model: str) -> CellGroup | None:
        return next((g for g in article if g.model == model and g.connections == fewest
                     and g.size_bytes == size), None)

    ps, sel, busy = (median(at(m), "throughput_rps") for m in ("poll-sleep", "select",
                                                                 "busy-poll"))
    busy_cpu = median(at("busy-poll"), "server_cpu_percent")
    summary = None
    if ps is not None and sel:
        summary = (f"closed loop, {plural(fewest, 'connection')}, {size} B: poll-sleep served "
                   f"{value('throughput_rps', ps)} requests/s against select's "
                   f"{value('throughput_rps', sel)} ({ps / sel:.0%})")
        if busy is not None and busy_cpu is not None:
            summary += (f", busy-poll {value('throughput_rps', busy)} at "
                        f"{value('server_cpu_percent', busy_cpu)}% of a core")
        more = [r for r in (ratio_at(article, c, s) for c in counts[1:] for s in sizes)
                if r is not None]
        if more:
            summary += (f"; with {plural(counts[1], 'connection')} or more poll-sleep reached "
                        f"{min(more):.0%}-{max(more):.0%} of select's")
    headers = ["model, payload", *(f"{plural(c, 'connection')} (req/s)" for c in counts)]
    detail = ["Closed-loop throughput of the article's models:", "",
              *markdown_table(headers, rows), *notes.lines()]
    return claim_finding(run, "sleep_lowers_throughput", summary, detail)


def ratio_at(groups: list[CellGroup], count: int, size: int) -> float | None:
    """poll-sleep's throughput over select's at one point, when both are measured."""
    def at(model: str) -> float | None:
        return median(next((g for g in groups if g.model == model and g.connections == count
                            and g.size_bytes == size), None), "throughput_rps")

    ps, sel = at("poll-sleep"), at("select")
    return ps / sel if ps is not None and sel else None


MANY_CONNECTION_METRICS = ("throughput_rps", "cpu_us_per_request", "peak_threads",
                           "pss_bytes", "rss_bytes")


def many_connections_finding(run: Run, groups: list[CellGroup]) -> list[Finding]:
    most = max(g.connections or 0 for g in groups)
    size = min(g.size_bytes or 0 for g in groups)
    notes = Notes()
    rows = [[series_label(g), *(cell_text(g, m, notes) for m in MANY_CONNECTION_METRICS)]
            for g in sorted(groups, key=series_sort_key)
            if g.connections == most and g.size_bytes == size]
    headers = ["model", *(style(m).header for m in MANY_CONNECTION_METRICS)]
    detail = [f"Closed loop, {plural(most, 'connection')}, {size} B (threads: the server's "
              "threads, summed over its processes; RSS counts a page shared by N processes "
              "N times, PSS divides it among them):", "", *markdown_table(headers, rows),
              *notes.lines()]
    return claim_finding(run, "select_scales", None, detail)


def scale_findings(run: Run) -> list[Finding]:
    """Beyond the article: CPU per request beside a growing idle crowd, and memory per idle."""
    series = closed_series(run)
    if not series:
        return []
    crowds = sorted({g.idle_connections for members in series.values() for g in members})
    memory = {m.model: m for m in memory_per_connection(run)}
    served = [g.idle_connections for members in series.values() for g in members
              if not g.failed and g.idle_connections]
    ends = sorted({crowds[0], max(served, default=crowds[0])})
    notes = Notes()
    rows = []
    for label, members in series.items():
        at = {g.idle_connections: g for g in members}
        per = memory.get(label)
        rows.append([label, *(cell_text(at.get(n), COST_METRIC, notes,
                                        f"{label} beside {n:,} idle") for n in crowds),
                     *(cell_text(at.get(n), "throughput_rps", notes,
                                 f"{label} beside {n:,} idle") for n in ends),
                     "-" if per is None else
                     f"{per.bytes_per_connection / 1024:,.1f} ({style(per.metric).title})"])
    headers = ["model", *(f"{n:,} idle (us/request)" for n in crowds),
               *(f"{n:,} idle (req/s)" for n in ends), "memory per idle connection (KiB)"]
    active = next(iter(series.values()))[0]
    detail = [f"{plural(active.connections, 'active connection')} (closed loop, "
              f"{active.size_bytes} B) beside idle ones: server CPU per request, throughput "
              "without idle connections and beside the most any model was measured with, and "
              "the memory one idle connection adds (PSS, or peak RSS where PSS was not "
              "measured):", "", *markdown_table(headers, rows), *notes.lines()]
    found = []
    for index, key in enumerate(("scale_scanning_cost_grows", "scale_waiting_cost_flat")):
        claim = verdict_of(run, key)
        summary = (f"beside up to {max(served):,} idle connections (against none), "
                   f"{claim.reason}" if claim is not None and served else None)
        found += claim_finding(run, key, summary, detail if index == 0 else ())
    return found


# Each scenario's findings, in the order README lists them. A new scenario
# adds its ``findings(run)`` here, under its name.
FINDINGS: tuple[tuple[str, Callable[[Run], list[Finding]]], ...] = (
    ("idle", idle_findings),
    ("neighbour", neighbour_findings),
    ("interval", interval_findings),
    ("closed", closed_findings),
    ("scale", scale_findings),
)


def run_findings(run: Run) -> list[Finding]:
    """Everything the run found, scenario by scenario, skipping scenarios it did not run."""
    found: list[Finding] = []
    for _scenario, findings in FINDINGS:
        found += findings(run)
    return found
