"""Work: work in the handler per request, inline or on a pool, in a section of its own.

Its verdicts stand beside the article's claims, with the thresholds in
``iobench.benchmarks.report.work`` (and docs/report.md).
"""

from __future__ import annotations

from iobench.benchmarks.report.blocks import Block, Bullets, Heading, Paragraph, Table
from iobench.benchmarks.report.finding import Finding, markdown_table, verdict_findings
from iobench.benchmarks.report.scenario import (
    FigureLookup,
    ReportScenario,
    failed_cells_blocks,
    verdict_blocks,
)
from iobench.benchmarks.report.work import (
    balance_lines,
    calibration_lines,
    judge_work,
    throughput_table,
)
from iobench.benchmarks.results.loader import Run


def section(run: Run, figure: FigureLookup) -> list[Block]:
    """Beyond the article: what work in the handler does to each model, with verdicts."""
    verdicts = judge_work(run)
    if not verdicts:
        return []
    header, rows = throughput_table(run)
    first = run.scenario("work")[0]
    blocks: list[Block] = [
        Heading(2, "Beyond the article: work in the handler"),
        Paragraph("Real handlers compute or wait on a blocking call between a request and its "
                  "response. Each model here serves "
                  f"{first.connections} connections in closed loop with, per request, either a "
                  "blocking wait that releases the GIL (`block:`, as a database driver's call) "
                  "or Python computation that holds it (`cpu:`); the event loops also with "
                  "`offload=pool`, which hands the work to a thread pool and answers when it "
                  "is done. Verdicts are computed with the thresholds in "
                  "`benchmarks/report/work.py` (see docs/report.md)."),
        Table(["verdict", "in this run", "why"],
              [[v.claim, str(v.verdict), v.reason] for v in verdicts]),
        Table(header, rows, numeric=tuple(range(1, len(header)))),
    ]
    notes = calibration_lines(run) + balance_lines(run)
    if notes:
        blocks.append(Bullets(notes))
    blocks += verdict_blocks(verdicts)
    blocks += failed_cells_blocks(run, "work", "Cells that failed, with why:")
    return blocks


def findings(run: Run) -> list[Finding]:
    """What work in the handler does to each model: the work verdicts and its table."""
    if not run.scenario("work"):
        return []
    header, rows = throughput_table(run)
    detail = ["Throughput with work in the handler, inline and on a pool:", "",
              *markdown_table(header, rows),
              *(line for note in calibration_lines(run) + balance_lines(run)
                for line in ("", note))]
    return verdict_findings(judge_work(run), detail)


SCENARIO = ReportScenario(
    name="work",
    title="Work: blocking or CPU work in the handler, inline or on a pool",
    description="Every model with work per request in its handler (a blocking wait, or Python "
                "computation), the event loops also offloading it to a thread pool. Its "
                "verdicts are in the section 'Beyond the article: work in the handler'.",
    metrics=("throughput_rps", "p50_us", "p99_us", "server_cpu_percent", "cpu_us_per_request",
             "ctx_voluntary_per_request", "peak_threads"),
    key_metric="throughput_rps",
    section=section,
    findings=findings,
)
