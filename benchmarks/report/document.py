"""REPORT.md and a self-contained report.html, built from a run's files alone.

The report's content is assembled once as a list of blocks
(``iobench.benchmarks.report.blocks``: headings, paragraphs, tables, figures,
folded details) and rendered twice, so the Markdown people paste into their
documents and the HTML they open in a browser say exactly the same thing.
What each scenario's section shows (title, metrics, figures, a section of
its own) is its declaration in ``iobench.benchmarks.report.scenarios``.
Headline figures in tables are the 20% trimmed mean over rounds with its 95% interval
(``143,200 ±3%``, marked when wider than ±10%: see
``iobench.benchmarks.report.intervals``), other numbers figure (min-max), of
the values in results.json, formatted by iobench.benchmarks.report.presentation.

Reading order: a summary first (each claim's verdict, its sentence and
figures, its plot beside it), then one section per scenario (its plots above a
compact table of the key figure per point, the full tables folded), then the
figures to cite, environment, method and how to reproduce. Each part is one
``*_blocks`` function, so a new section is one more function in
:func:`build_report`.
"""

from __future__ import annotations

from pathlib import Path

from iobench.benchmarks.report.blocks import (
    Block,
    Bullets,
    Code,
    Details,
    Figure,
    Heading,
    Paragraph,
    SideBySide,
    Table,
    to_html,
    to_markdown,
)
from iobench.benchmarks.report.citations import (
    CLAIMS_JSON,
    Citations,
    build_citations,
    write_citations,
)
from iobench.benchmarks.report.claims import ClaimResult, judge_claims
from iobench.benchmarks.report.figures import write_plots
from iobench.benchmarks.report.intervals import (
    IMPRECISE_MARK,
    IMPRECISE_NOTE,
    group_text,
    ratio_rows,
)
from iobench.benchmarks.report.placement import cluster_options, placement_blocks
from iobench.benchmarks.report.placement import describe as placement_text
from iobench.benchmarks.report.plots import PlotOutcome
from iobench.benchmarks.report.points import describe_point
from iobench.benchmarks.report.presentation import (
    format_spread,
    format_value,
    plural,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scenarios import FIGURE_CAPTIONS, REPORT_SCENARIOS
from iobench.benchmarks.results.loader import CellGroup, Run, load_run
from iobench.benchmarks.results.stats import HEADLINE_METRICS
from iobench.common.files import atomic_write

# The report warns about a metric whose max - min across repetitions exceeds
# this fraction of its figure (tail percentiles are noisy by nature: not checked).
LARGE_SPREAD = 0.25
SPREAD_CHECKED_METRICS = ("throughput_rps", "p50_us", "server_cpu_percent")

REPORT_MD = "REPORT.md"
REPORT_HTML = "report.html"

FLAG_MEANINGS = {
    "client_saturated": "the load generator used nearly a whole core: the figure may be the "
                        "client's limit, not the server's",
    "behind_schedule": "the open-loop generator could not keep its rate",
    "errors": "some requests failed or came back wrong",
    "littles_law": "throughput x latency disagrees with the connection count",
    "cpu_contended": "other processes used the server's CPUs during the cell, so the server "
                     "got less than a whole core",
    "implausible": "a figure broke a plausibility rule; the cell is left out of the verdicts "
                   "(see Figures set aside)",
    "cpu_unmeasured": "the server's CPU could not be measured; its CPU figures are `-`",
    "steal": "the hypervisor took more than 5% of a side's CPU time during the cell",
    "server_paused": "the server was stopped in alternate slices to measure the neighbour "
                     "alone; its latency includes those pauses",
}



def environment_blocks(run: Run) -> list[Block]:
    env = run.environment
    placement = run.placement
    packages = ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
    rows = [
        ["run id", run.run_id],
        ["profile", str(run.profile)],
        ["started / finished", f"{run.data.get('started')} / {run.data.get('finished')}"],
        ["CPU", str(env.get("cpu_model"))],
        ["logical CPUs", str(env.get("logical_cpus"))],
        ["kernel", str(env.get("kernel"))],
        ["Python", str(env.get("python"))],
        ["packages", packages or "-"],
        ["git commit", str(env.get("git_commit"))],
        ["host", str(env.get("hostname"))],
        ["placement", placement_text(placement)],
        ["noisy machine state", noisy_state_text(env)],
    ]
    return [Heading(2, "Environment"), Table(["item", "value"], rows), *placement_blocks(run)]


def noisy_state_text(env: dict[str, object]) -> str:
    """The states of the machine the run warned about at its start (``iobench system``)."""
    states = env.get("system")
    if not isinstance(states, list):
        return "not recorded"
    noisy = [f"{s.get('name')}: {s.get('value')}" for s in states
             if isinstance(s, dict) and s.get("verdict") == "warn"]
    return "; ".join(noisy) if noisy else "none"


def reproduce_command(run: Run) -> str:
    """The command that makes this matrix again, on the same commit and placement."""
    command = f"iobench run --profile {run.profile or 'quick'}"
    matrix = run.data.get("matrix") or {}
    if matrix.get("models"):
        command += f" --models {','.join(matrix['models'])}"
    if matrix.get("repeat"):
        command += f" --repeat {matrix['repeat']}"
    for option, cpus in (("--server-cpus", run.placement.get("server_cpus")),
                         ("--client-cpus", run.placement.get("client_cpus"))):
        if cpus:
            command += f" {option} {','.join(map(str, cpus))}"
    command += cluster_options(run.placement)
    commit = run.environment.get("git_commit")
    return f"git checkout {commit} && {command}" if commit else command


def method_blocks(run: Run) -> list[Block]:
    repetitions = run.repetitions
    partial: list[Block] = [Paragraph(
        "**This run did not finish**: the tables hold the cells it completed.")] \
        if run.interrupted else []
    return [*partial,
        Heading(2, "Method"),
        Bullets([
            "Closed loop: each connection sends a request and waits for the whole reply "
            "before the next; it measures peak throughput.",
            "Open loop: requests at a constant offered rate; latency is measured from each "
            "request's intended send time, so a stalled server is charged for every request "
            "it delays (coordinated-omission correction).",
            "Server and load generator are separate processes pinned to the CPUs in the "
            "placement above; server CPU is the server process tree's user + system time, "
            "as % of one core.",
            f"Up to {plural(repetitions, 'round')} per cell, the models of one point measured "
            "side by side in a fresh random order each round. A figure is the 20% trimmed "
            "mean of the rounds; tables show it with its 95% interval (Tukey-McLaughlin; "
            "docs/report.md), other figures with the (min-max) range; "
            "models are compared by the ratio of their figures in the same round; latency "
            "spectra merge the rounds' HdrHistograms.",
            "Figures from another machine, day or placement are not comparable with these.",
        ]),
        Heading(2, "Reproduce"),
        Code(reproduce_command(run)),
    ]


def point_of(group: CellGroup) -> tuple[object, ...]:
    """What a table holds fixed: one table per point, one row per model."""
    load = ("fraction", group.peak_fraction) if group.peak_fraction is not None \
        else ("rate", group.rate_rps)
    return (group.mode, group.connections, group.idle_connections, group.size_bytes, load,
            group.phase, group.requests_per_connection)


def table_title(scenario: str, group: CellGroup) -> str:
    return f"{scenario}: {describe_point(group)}"


def notes_text(group: CellGroup) -> str:
    """Flags, and repetitions that failed when others did not (their numbers are left out)."""
    notes = list(group.flags)
    failed = len(group.cells) - len(group.ok_cells)
    if failed and not group.failed:
        notes.append(f"{failed} of {len(group.cells)} repetitions failed "
                     f"({'; '.join(group.failures)})")
    return ", ".join(notes) or "-"


def scenario_points(run: Run, scenario: str) -> list[list[CellGroup]]:
    """The scenario's groups, one list per point (what a table holds fixed), models sorted."""
    points: dict[tuple[object, ...], list[CellGroup]] = {}
    for group in run.scenario(scenario):
        points.setdefault(point_of(group), []).append(group)
    for members in points.values():
        members.sort(key=series_sort_key)
    return list(points.values())


def scenario_tables(run: Run, scenario: str) -> list[Block]:
    """The full tables: one per point, every metric with its spread, flags last."""
    metrics = REPORT_SCENARIOS[scenario].metrics
    blocks: list[Block] = []
    for members in scenario_points(run, scenario):
        offered = any(g.peak_fraction is not None for g in members)
        shown = [m for m in metrics if any(g.values(m) for g in members)]
        headers = ["model"] + (["offered (req/s)"] if offered else [])
        headers += [style(m).header for m in shown] + ["flags"]
        rows = []
        for group in members:
            row = [series_label(group)]
            if offered:
                row.append(format_value("throughput_rps", group.rate_rps)
                           if group.rate_rps is not None else "-")
            if group.failed:
                row += [f"failed: {'; '.join(group.failures)}"] + ["-"] * (len(shown) - 1)
            else:
                row += [figure_text(group, metric) for metric in shown]
            row.append(notes_text(group))
            rows.append(row)
        blocks += [Heading(4, table_title(scenario, members[0])),
                   Table(headers, rows, numeric=tuple(range(1, len(headers) - 1)))]
        blocks += imprecise_note(rows)
    return blocks


def figure_text(group: CellGroup, metric: str) -> str:
    """A headline figure ± its 95% interval, any other as figure (min-max)."""
    if metric in HEADLINE_METRICS and len(group.values(metric)) > 1:
        return group_text(group, metric) or "-"
    spread = group.metric(metric)
    return format_spread(metric, spread) if spread else "-"


def imprecise_note(rows: list[list[str]]) -> list[Block]:
    """The note on the imprecise mark, under a table that shows one."""
    marked = any(IMPRECISE_MARK in cell for row in rows for cell in row)
    return [Paragraph(IMPRECISE_NOTE + ".")] if marked else []


def ratio_tables(run: Run, scenario: str) -> list[Block]:
    """Per point: every model's throughput and CPU per request over the reference
    model's, round by round, with the ratio's 95% interval and a verdict."""
    blocks: list[Block] = []
    for members in scenario_points(run, scenario):
        headers, rows = ratio_rows(members)
        if rows:
            rows.sort(key=lambda row: row[1], reverse=True)
            blocks += [Heading(4, "Models compared round by round: "
                                  + table_title(scenario, members[0])),
                       Table(headers, rows)]
    if blocks:
        blocks.insert(0, Paragraph(
            "Each model against the reference model of its point, as the trimmed geometric "
            "mean of their per-round ratios with its 95% interval: the machine's drift "
            "between rounds hits both alike and cancels; with rounds from three servers or "
            "more the interval is over the servers (the `rounds` column then says on how many). "
            "A verdict needs the whole interval beyond 1 ±5% "
            "(better or worse) or within it (same); otherwise it is inconclusive."))
    return blocks


def compact_cell(group: CellGroup | None, metric: str) -> str:
    if group is None:
        return "-"
    if group.failed:
        return "failed"
    if metric in HEADLINE_METRICS and len(group.values(metric)) > 1:
        return group_text(group, metric) or "-"
    spread = group.metric(metric)
    return format_value(metric, spread.value) if spread else "-"


def compact_table(run: Run, scenario: str) -> list[Block]:
    """Models as rows and the scenario's key metric (figures) at each point as columns.

    A scenario measured at a single point shows its first few metrics instead.
    """
    points = scenario_points(run, scenario)
    if not points:
        return []
    series: dict[str, dict[int, CellGroup]] = {}
    for index, members in enumerate(points):
        for group in members:
            series.setdefault(series_label(group), {})[index] = group
    order = sorted(series, key=lambda label: series_sort_key(next(iter(series[label].values()))))
    if len(points) == 1:
        metrics = [m for m in REPORT_SCENARIOS[scenario].metrics[:4]
                   if any(g.values(m) for g in points[0])]
        headers = ["model"] + [style(m).header for m in metrics]
        rows = [[label] + [compact_cell(series[label].get(0), m) for m in metrics]
                for label in order]
        caption = f"Medians at {describe_point(points[0][0], 'short')}."
    else:
        metric = REPORT_SCENARIOS[scenario].key_metric
        labels = [describe_point(members[0], "short") for members in points]
        headers = ["model", *labels]
        rows = [[label] + [compact_cell(series[label].get(i), metric) for i in range(len(points))]
                for label in order]
        caption = f"Median {style(metric).header} at each point."
    return [Paragraph(caption + " ± is the 95% interval over rounds; the full tables, with "
                      "flags, are folded below."),
            Table(headers, rows, numeric=tuple(range(1, len(headers)))), *imprecise_note(rows)]


# A kind is shown when some model makes at least this many calls of it per request.
SYSCALL_KIND_MIN = 0.01


def syscall_kinds_per_request(group: CellGroup) -> dict[str, float]:
    """Median calls per request by kind across the group's counted repetitions."""
    counted = [cell.syscalls["by_kind_per_request"] for cell in group.cells
               if cell.ok and cell.syscalls and cell.syscalls.get("by_kind_per_request")]
    kinds = sorted({kind for row in counted for kind in row})
    medians = {}
    for kind in kinds:
        values = sorted(row.get(kind, 0.0) for row in counted)
        middle = len(values) // 2
        medians[kind] = values[middle] if len(values) % 2 else \
            (values[middle - 1] + values[middle]) / 2
    return medians


def syscall_tables(run: Run, scenario: str, tool: str) -> list[Block]:
    """System calls per request by kind, one table per point, as the kernel counted them
    (with ``tool``: the scenario's ``syscall_tool``).

    They explain the CPU figures beside them: busy-poll's recv calls that find
    nothing, the wake-ups of select and epoll, io_uring's lack of recv and send.
    """
    points = scenario_points(run, scenario)
    reasons = {cell.syscalls.get("reason") for members in points for group in members
               for cell in group.cells if cell.syscalls and cell.syscalls.get("reason")}
    blocks: list[Block] = []
    for members in points:
        rows_by_label = {series_label(g): syscall_kinds_per_request(g) for g in members}
        kinds = sorted({kind for row in rows_by_label.values() for kind, value in row.items()
                        if value >= SYSCALL_KIND_MIN and kind != "other"})
        if not kinds:
            continue
        headers = ["model", "all", *kinds, "other"]
        rows = []
        for group in members:
            row = rows_by_label[series_label(group)]
            if not row:
                rows.append([series_label(group)] + ["-"] * (len(headers) - 1))
                continue
            total = sum(row.values())
            rows.append([series_label(group), f"{total:.2f}",
                         *(f"{row.get(kind, 0.0):.2f}" for kind in kinds),
                         f"{row.get('other', 0.0):.2f}"])
        blocks += [Heading(4, "System calls per request: " + table_title(scenario, members[0])),
                   Table(headers, rows, numeric=tuple(range(1, len(headers))))]
    if blocks:
        return [Paragraph("System calls per request by kind, counted by the kernel on the "
                          "server's process tree inside the measured window (" + tool +
                          "; medians across repetitions). `other` is every call not named."),
                *blocks]
    if reasons:
        return [Paragraph("System calls were not counted in this run: "
                          + "; ".join(sorted(r for r in reasons if r)) + ".")]
    return []


def figure_block(plots: PlotOutcome, stem: str) -> Figure | None:
    paths = plots.figures.get(stem)
    if not paths:
        return None
    png = next(p for p in paths if p.suffix == ".png")
    return Figure(png, FIGURE_CAPTIONS[stem])


def scenario_section(run: Run, scenario: str, plots: PlotOutcome) -> list[Block]:
    """A scenario's heading, what it measures, its figures, the compact and the full tables."""
    declared = REPORT_SCENARIOS[scenario]
    blocks: list[Block] = [Heading(3, declared.title), Paragraph(declared.description)]
    # A scenario with a section of its own shows its figures there.
    stems = [] if declared.section is not None else [f.stem for f in declared.figures]
    for stem in stems:
        figure = figure_block(plots, stem)
        if figure is not None:
            blocks.append(figure)
    blocks += compact_table(run, scenario)
    if declared.ratios:
        blocks += ratio_tables(run, scenario)
    if declared.syscall_tool is not None:
        blocks += syscall_tables(run, scenario, declared.syscall_tool)
    full = scenario_tables(run, scenario)
    if full:
        blocks.append(Details(f"Full tables: {scenario} ({plural(len(full) // 2, 'table')})",
                              full))
    return blocks


def large_spreads(run: Run) -> list[str]:
    """'closed/select/c16/s64 throughput' for every headline metric that varies a lot."""
    noisy = []
    for group in run.groups:
        for metric in SPREAD_CHECKED_METRICS:
            spread = group.metric(metric)
            if spread and spread.count > 1 and spread.value > 0 \
                    and (spread.high - spread.low) / spread.value > LARGE_SPREAD:
                noisy.append(f"`{group.key}` {style(metric).title}")
    return noisy


def results_blocks(run: Run, plots: PlotOutcome) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Results by scenario"), Paragraph(
        "Throughput, latency and CPU: the 20% trimmed mean over rounds ± its 95% interval "
        f"({IMPRECISE_MARK}: wider than ±10%); other figures: the same figure (min-max) across "
        "repetitions; `-` where a metric does not apply. Units are in the column headers.")]
    for scenario in run.scenarios:
        blocks += scenario_section(run, scenario, plots)
    absent = [name for name, declared in REPORT_SCENARIOS.items()
              if name not in run.scenarios and not declared.opt_in]
    if absent:
        blocks.append(Paragraph(
            f"Not in this run (its profile has no such scenario), so no tables: "
            f"{', '.join(absent)}."))
    noisy = large_spreads(run)
    if noisy:
        blocks.append(Paragraph(
            f"Large spread (max - min above {LARGE_SPREAD:.0%} of the figure), so treat these "
            "with care: " + "; ".join(noisy) + "."))
    flags = sorted({f for g in run.groups for f in g.flags})
    if flags:
        blocks.append(Paragraph("Flags: " + "; ".join(
            f"`{f}`: {FLAG_MEANINGS.get(f, 'see docs/formats.md')}" for f in flags) + "."))
    if plots.notes:
        blocks.append(Bullets(plots.notes))
    return blocks


def set_aside_blocks(run: Run) -> list[Block]:
    """Cells whose figures cannot be taken at face value, and why.

    Implausible cells (a figure broke a rule in
    ``iobench.benchmarks.results.plausibility``) are listed with what was
    seen; cells whose server CPU could not be measured, and cells where the
    hypervisor took CPU time (steal), with their reasons.
    """
    implausible = [[f"`{cell.key}`", str(cell.repetition), f"`{violation.rule}`", violation.seen]
                   for cell in run.implausible for violation in cell.implausible]
    unmeasured = [f"`{cell.key}` (repetition {cell.repetition}): "
                  f"{cell.notes.get('cpu_unmeasured', 'no reason recorded')}"
                  for group in run.groups for cell in group.ok_cells
                  if "cpu_unmeasured" in cell.flags]
    stolen = [f"`{cell.key}` (repetition {cell.repetition}): "
              f"{cell.notes.get('steal', 'steal above 5%')}"
              for group in run.groups for cell in group.ok_cells if "steal" in cell.flags]
    if not (implausible or unmeasured or stolen):
        return []
    blocks: list[Block] = [Heading(2, "Figures set aside")]
    if implausible:
        blocks += [Paragraph(
            "These cells show a figure that cannot be right (a rule of "
            "`iobench.benchmarks.results.plausibility`). Their numbers stay in the tables "
            "and the data, flagged `implausible`, and no verdict rests on them."),
            Table(["cell", "repetition", "rule broken", "what was seen"], implausible)]
    if unmeasured:
        blocks += [Paragraph("Server CPU not measured (shown as `-`, never 0):"),
                   Bullets(unmeasured)]
    if stolen:
        blocks += [Paragraph("The hypervisor took CPU time from these cells (steal), so the "
                             "server or the client had less CPU than the figures assume:"),
                   Bullets(stolen)]
    return blocks


def claim_figure(claim: ClaimResult, plots: PlotOutcome) -> Figure | None:
    """The first of the claim's figures this run drew."""
    for stem in claim.figures:
        figure = figure_block(plots, stem)
        if figure is not None:
            return figure
    return None


def summary_blocks(claims: list[ClaimResult], plots: PlotOutcome) -> list[Block]:
    """The verdicts at a glance, then each claim with its sentence, numbers and figure."""
    blocks: list[Block] = [
        Heading(2, "Summary: the article's claims"),
        Table(["the article's claim", "verdict in this run", "why"],
              [[c.claim, str(c.verdict), c.reason] for c in claims]),
        Paragraph("Each verdict is computed from this run's numbers with the thresholds in "
                  "`benchmarks/report/claims.py`; the figures are 20% trimmed means "
                  "(min-max) across rounds, comparisons between models paired round by round "
                  "with their 95% interval. Cite them by key from `claims.json` (section: "
                  "Cite these figures)."),
    ]
    for result in claims:
        text: list[Block] = [Heading(3, f"{result.claim}: {result.verdict}"),
                             Paragraph(f"**{result.verdict.capitalize()}**: {result.reason}.")]
        if result.evidence:
            text.append(Bullets(result.evidence))
        blocks.append(SideBySide(text, claim_figure(result, plots)))
    return blocks


def own_sections(run: Run, plots: PlotOutcome) -> list[Block]:
    """The sections scenarios have of their own (scale's "Beyond the article"), in order."""
    blocks: list[Block] = []
    for declared in REPORT_SCENARIOS.values():
        if declared.section is not None:
            blocks += declared.section(run, lambda stem: figure_block(plots, stem))
    return blocks


def cite_blocks(citations: Citations) -> list[Block]:
    """The same records as claims.json, for a reader who copies a figure from the page."""
    run = citations.run
    commit = citations.commit or "unknown"
    claims_rows = [[f"`{c.key}`", str(c.verdict), c.reason] for c in citations.claims]
    headline_rows = [[f"`{f.key}`", f.sentence, ", ".join(f"`{cell}`" for cell in f.cells)]
                     for f in citations.headlines]
    blocks: list[Block] = [
        Heading(2, "Cite these figures"),
        Paragraph(f"Quote a figure with its source: *iobench run `{run.run_id}`, commit "
                  f"`{commit[:12]}`*, and the key below. `{CLAIMS_JSON}` beside "
                  "`results.json` holds each claim and headline figure with its sentence, "
                  "figure (a 20% trimmed mean), min and max, repetitions and source cells, "
                  "so documentation can include it by key (format: docs/formats.md). Figures "
                  "from another machine, day or CPU placement are not comparable with these."),
        Table(["claim key", "verdict", "sentence"], claims_rows),
    ]
    if headline_rows:
        blocks.append(Details(f"Headline figures ({len(headline_rows)})",
                              [Table(["key", "figure", "cells"], headline_rows)]))
    return blocks


def build_report(run: Run, plots: PlotOutcome,
                 citations: Citations | None = None) -> list[Block]:
    citations = citations or build_citations(run, judge_claims(run))
    return [
        Heading(1, f"iobench report: {run.run_id}"),
        *summary_blocks(citations.claims, plots),
        *own_sections(run, plots),
        *results_blocks(run, plots),
        *set_aside_blocks(run),
        *cite_blocks(citations),
        *environment_blocks(run),
        *method_blocks(run),
    ]


def write_report(run: Run, plots: PlotOutcome) -> list[Path]:
    """Write claims.json, REPORT.md and report.html into the run folder; return their paths."""
    citations = build_citations(run, judge_claims(run))
    claims_path = write_citations(citations, plots.figures)
    blocks = build_report(run, plots, citations)
    markdown_path = run.directory / REPORT_MD
    html_path = run.directory / REPORT_HTML
    atomic_write(markdown_path, to_markdown(blocks, run.directory))
    atomic_write(html_path, to_html(blocks, f"iobench report: {run.run_id}"))
    return [claims_path, markdown_path, html_path]


def write_all(run_dir: Path, spectrum_rate: float | None = None) -> list[Path]:
    """Plots, claims.json, REPORT.md and report.html for a run folder; the paths written.

    ``iobench run`` calls this when the matrix is done; ``iobench report``
    calls it on any results folder.
    """
    run = load_run(run_dir)
    plots = write_plots(run, spectrum_rate=spectrum_rate)
    return plots.paths + write_report(run, plots)
