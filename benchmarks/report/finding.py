"""What a run found, in lines documentation can print: the toolkit each scenario uses.

README's Findings and docs/findings.md are written from findings (``iobench
docs``), so every number in them comes from a run and every verdict from the
judges in :mod:`claims` and :mod:`scale`; nothing is typed by hand but the
shape of the sentences. A scenario says what it found with the ``findings``
of its report-side declaration (``report/scenarios/NAME.py``), a function of
the run returning :class:`Finding`s: a new scenario (churn, work, kernel
memory...) writes its own there, and its findings reach README and
docs/findings.md on the next ``iobench docs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from iobench.benchmarks.report.claims import CLAIMS, ClaimResult, Verdict, judge_claims
from iobench.benchmarks.report.presentation import (
    format_spread,
    format_value,
    series_label,
    series_sort_key,
)
from iobench.benchmarks.report.scale import COST_METRIC, judge_scale
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
    """A table cell: the figure (and range), or why there is none; never a made-up 0."""
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


def figure_of(group: CellGroup | None, metric: str) -> float | None:
    """The plausible figure (``stats.figure``), or None when the cell failed, broke a
    rule or lacks it."""
    if group is None or group.failed:
        return None
    spread = group.metric(metric, plausible_only=True)
    return spread.value if spread is not None else None


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


def verdict_findings(results: Sequence[ClaimResult], detail: Sequence[str] = ()
                     ) -> list[Finding]:
    """A finding per computed verdict of a scenario's own judges (churn, work...), its
    reason, which quotes the run's figures, as the sentence; ``detail`` under the first."""
    return [Finding(result.key, result.claim, result.verdict, result.reason, result.reason,
                    tuple(detail) if index == 0 else (), result.figures,
                    tuple(result.evidence))
            for index, result in enumerate(results)]


def by_label(groups: Iterable[CellGroup]) -> dict[str, list[CellGroup]]:
    """Groups per series label, in registry order."""
    found: dict[str, list[CellGroup]] = {}
    for group in sorted(groups, key=series_sort_key):
        found.setdefault(series_label(group), []).append(group)
    return found


def run_findings(run: Run) -> list[Finding]:
    """Everything the run found: each scenario's findings, in the list's order, the
    article's claims first in the article's order."""
    from iobench.benchmarks.report.scenarios import REPORT_SCENARIOS

    found: list[Finding] = []
    for scenario in REPORT_SCENARIOS.values():
        if scenario.findings is not None:
            found += scenario.findings(run)
    article = [key for key, _, _ in CLAIMS]
    return sorted(found, key=lambda f: article.index(f.key) if f.key in article
                  else len(article))
