"""Churn: K requests per connection, in a section of its own with its verdicts.

Its verdicts and figures stand beside the article's claims ("Beyond the
article"), with the thresholds in ``iobench.benchmarks.report.churn``.
"""

from __future__ import annotations

from iobench.benchmarks.report.blocks import Block, Bullets, Heading, Paragraph, Table
from iobench.benchmarks.report.churn import balance_lines, churn_rows, judge_churn
from iobench.benchmarks.report.finding import Finding, markdown_table, verdict_findings
from iobench.benchmarks.report.scenario import (
    FigureLookup,
    ReportScenario,
    failed_cells_blocks,
    verdict_blocks,
)
from iobench.benchmarks.results.loader import Run


def section(run: Run, figure: FigureLookup) -> list[Block]:
    """Beyond the article: what a new connection costs each model, with computed verdicts."""
    verdicts = judge_churn(run)
    if not verdicts:
        return []
    header, rows, numeric = churn_rows(run)
    blocks: list[Block] = [
        Heading(2, "Beyond the article: what a new connection costs"),
        Paragraph("Short connections (HTTP/1.0 clients, health checks, many RPC clients) make "
                  "a server pay for every connection: an accept, a thread start, a fork. Here "
                  "each connection makes K requests in a closed loop and is then closed by "
                  "the load generator, which opens another at once. Server CPU per "
                  "connection is the server's CPU over the window divided by the connections "
                  "completed in it; the connection overhead is that at the smallest K less "
                  "the CPU per request at the largest (where a connection's cost is spread "
                  "over its requests). Verdicts use the thresholds in docs/report.md "
                  "(`benchmarks/report/churn.py`)."),
        Table(["verdict", "in this run", "why"],
              [[v.claim, str(v.verdict), v.reason] for v in verdicts]),
        Table(header, rows, numeric=numeric),
    ]
    balance = balance_lines(run)
    if balance:
        blocks += [Paragraph("Prefork's balance: workers that share one listener are woken "
                             "last in, first out, so one of them can take nearly every "
                             "connection; SO_REUSEPORT spreads them by hash, EPOLLEXCLUSIVE "
                             "sits between. The busiest worker's share of the accepts, per "
                             "listener:"),
                   Bullets(balance)]
    blocks += verdict_blocks(verdicts)
    blocks += failed_cells_blocks(run, "churn", "Cells that could not run, with why:")
    return blocks


def findings(run: Run) -> list[Finding]:
    """What a new connection costs: the churn verdicts, its table and prefork's balance."""
    header, rows, _ = churn_rows(run)
    balance = balance_lines(run)
    detail = ["Each connection makes K requests in a closed loop, then a new one is opened: "
              "the server's CPU per connection and per request:", "",
              *markdown_table(header, rows)]
    if balance:
        detail += ["", "Prefork's busiest worker's share of the accepts, per listener:", "",
                   *(f"- {line}" for line in balance)]
    return verdict_findings(judge_churn(run), detail)


SCENARIO = ReportScenario(
    name="churn",
    title="Churn: K requests per connection, then a new connection",
    description="Each connection makes K requests (closed loop), is closed by the load "
                "generator and another opened at once: what accepting a connection costs "
                "each model (a thread start, a fork). Its verdicts are in the section "
                "'Beyond the article: what a new connection costs'.",
    metrics=("connections_per_s", "throughput_rps", "cpu_us_per_connection",
             "cpu_us_per_request", "connect_p99_us", "p50_us", "p99_us", "server_cpu_percent"),
    key_metric="cpu_us_per_connection",
    section=section,
    findings=findings,
)
