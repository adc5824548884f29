"""Article: the article's code as printed beside busy-poll, in a section of its own.

Its verdicts and their thresholds are in ``iobench.benchmarks.report.article``
(docs/report.md lists them); docs/article.md says what the code really does.
Documentation made from a run reads them here: :func:`verdicts` (each with its
key, verdict, reason and evidence) and :func:`finding` (two sentences for
README's findings, from those verdicts and their figures).
"""

from __future__ import annotations

from iobench.benchmarks.report.article import causes, figure_table, finding, judge_article
from iobench.benchmarks.report.blocks import Block, Bullets, Heading, Paragraph, Table
from iobench.benchmarks.report.finding import Finding, markdown_table
from iobench.benchmarks.report.scenario import FigureLookup, ReportScenario, verdict_blocks
from iobench.benchmarks.results.loader import Run
from iobench.benchmarks.results.scenarios import (
    ARTICLE_CLOSED_LOOP,
    ARTICLE_IDLE_CLIENT,
    ARTICLE_NO_CLIENT,
    ARTICLE_NON_READER,
    ARTICLE_SECOND_CLIENT,
)

TITLE = "The article's code as printed"
# For documentation made from a run (README's findings): the verdicts, and the
# two sentences they make.
verdicts = judge_article
__all__ = ["SCENARIO", "finding", "section", "verdicts"]


def section(run: Run, figure: FigureLookup) -> list[Block]:
    """The verdicts, each probe's figures beside busy-poll's, and what the probes saw."""
    verdicts = judge_article(run)
    if not verdicts:
        return []
    headers, rows = figure_table(run)
    blocks: list[Block] = [
        Heading(2, TITLE),
        Paragraph("busy-poll is the article's loop done correctly; `article` is the article's "
                  "own server, re-typed as printed (docs/article.md). Its listener is "
                  "non-blocking, but the sockets accept() returns are blocking on Linux: it "
                  "spins only while nobody is connected, sleeps in recv() on an idle client "
                  "and in send() beside a client that does not read, and every other client "
                  "waits meanwhile. Verdicts are computed with the thresholds in "
                  "`benchmarks/report/article.py`; busy-poll's figures are the evidence of "
                  "what a correct loop does."),
        Table(["verdict", "in this run", "why"],
              [[v.claim, str(v.verdict), v.reason] for v in verdicts]),
        Table(headers, rows, numeric=(2, 3)),
    ]
    blocks += verdict_blocks(verdicts)
    seen = causes(run)
    if seen:
        blocks += [Paragraph("What the other probes saw, and cells that failed:"),
                   Bullets(seen)]
    return blocks


def findings(run: Run) -> list[Finding]:
    """What the article's code really does, in two sentences, with every verdict and the
    probes' figures beside busy-poll's in the detail."""
    summary = finding(run)
    if summary is None:
        return []
    results = judge_article(run)
    headers, rows = figure_table(run)
    detail = ["Each verdict, computed from the probes:", "",
              *markdown_table(["verdict", "in this run", "why"],
                              [[v.claim, str(v.verdict), v.reason] for v in results]),
              "", "The probes' figures, the article's code beside busy-poll's:", "",
              *markdown_table(headers, rows, numeric_from=2)]
    return [Finding("article_as_printed", TITLE, None, summary, detail=tuple(detail),
                    evidence=tuple(line for v in results for line in v.evidence))]


SCENARIO = ReportScenario(
    name="article",
    title=TITLE,
    description="The article's server as printed beside busy-poll: idle CPU with 0 and 1 idle "
                "connection, a second client beside an idle one, a closed loop, and the other "
                "clients beside one that does not read. Its verdicts are in the section "
                f"'{TITLE}'.",
    metrics=("server_cpu_percent", "longest_wait_s", "starved_requests", "throughput_rps",
             "p50_us", "p99_us", "pss_bytes"),
    key_metric="longest_wait_s",
    section=section,
    findings=findings,
    # A reference beside the compared models: a run without it lacks none of their tables.
    opt_in=True,
    phases={
        ARTICLE_NO_CLIENT: "its CPU with no client connected",
        ARTICLE_IDLE_CLIENT: "its CPU with one connected client that sends nothing",
        ARTICLE_SECOND_CLIENT: "a second client's request while the first says nothing",
        ARTICLE_CLOSED_LOOP: "closed loop, the requests still owed at the end counted",
        ARTICLE_NON_READER: "the other clients' requests beside one that does not read",
    },
)
