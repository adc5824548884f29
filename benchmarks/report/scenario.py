"""What a scenario declares on the report side: how its section reads and what it shows.

Each scenario is one module in ``iobench.benchmarks.report.scenarios``, named
after it (a name in ``iobench.benchmarks.results.scenarios.SCENARIOS``), with
a :class:`ReportScenario` called ``SCENARIO``. The report, the plots and the
citations read only these declarations: none of them keeps a table keyed by
scenario name, so nothing falls back silently when a scenario is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from iobench.benchmarks.report.blocks import Block, Bullets, Figure, Heading, Paragraph
from iobench.benchmarks.report.finding import Finding
from iobench.benchmarks.results.loader import CellGroup, Run

# The report's figure for a plot stem, or None when this run did not draw it.
FigureLookup = Callable[[str], Figure | None]


@dataclass(frozen=True)
class FigureSpec:
    """One plot a scenario shows: its file stem, its caption, and how it is drawn.

    ``draw(run)`` returns a matplotlib Figure, or None when the run lacks the
    data (drawn with the toolkit in ``iobench.benchmarks.report.plots``);
    with ``takes_rate`` it is ``draw(run, rate)``, the open-loop rate
    ``iobench plot --spectrum-rate`` asks for.
    """

    stem: str
    caption: str
    draw: Callable[..., Any]
    takes_rate: bool = False


@dataclass(frozen=True)
class Headline:
    """A figure per model worth citing from this scenario (claims.json: ``SERIES.key``)."""

    key: str
    metric: str
    title: str
    # Among the model's groups that have the metric, the one to cite.
    pick: Callable[[list[CellGroup]], CellGroup]


@dataclass(frozen=True)
class ReportScenario:
    """One scenario's report side."""

    name: str
    title: str
    # What the scenario measures, in a sentence or two, under its heading.
    description: str
    # The metrics of its full tables, in order (record.Metrics names).
    metrics: tuple[str, ...]
    # The one metric per point its compact table shows when it has several points.
    key_metric: str
    # Its plots, drawn in this order (report/figures.py).
    figures: tuple[FigureSpec, ...] = ()
    # A section of its own (figures and verdicts) beside the article's claims,
    # instead of its figures above its tables under "Results by scenario".
    section: Callable[[Run, FigureLookup], list[Block]] | None = None
    # A scenario a profile adds only for a purpose: a run without it lacks
    # nothing worth a note.
    opt_in: bool = False
    # How its system calls by kind were counted, for the tables that show
    # them; None: the scenario shows none.
    syscall_tool: str | None = None
    headlines: tuple[Headline, ...] = ()
    # What a run of it found, for README's Findings and docs/findings.md
    # (``iobench docs``): each verdict it judges and the tables behind it.
    findings: Callable[[Run], list[Finding]] | None = None
    # What each phase of its cells means, where its cells have phases.
    phases: dict[str, str] = field(default_factory=dict)
    # Models compared round by round with the reference model of each point
    # (epoll, else select): a table of paired ratios with their intervals.
    ratios: bool = False


class Judged(Protocol):
    """A verdict as a section shows it: the claim, what was found, and the evidence."""

    @property
    def claim(self) -> str: ...

    @property
    def verdict(self) -> object: ...

    @property
    def evidence(self) -> Sequence[str]: ...


def verdict_blocks(verdicts: Iterable[Judged]) -> list[Block]:
    """A heading per verdict ("claim: holds") and its evidence under it."""
    blocks: list[Block] = []
    for verdict in verdicts:
        blocks.append(Heading(3, f"{verdict.claim}: {verdict.verdict}"))
        if verdict.evidence:
            blocks.append(Bullets(list(verdict.evidence)))
    return blocks


def failed_cells_blocks(run: Run, scenario: str, lead: str) -> list[Block]:
    """The scenario's points that failed, each with why, under ``lead``; none if none did."""
    failed = [(g.key, "; ".join(g.failures)) for g in run.scenario(scenario) if g.failed]
    if not failed:
        return []
    return [Paragraph(lead), Bullets([f"`{key}`: {reason}" for key, reason in failed])]
