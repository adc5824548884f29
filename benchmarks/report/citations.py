"""claims.json: the run's claims and headline figures in a form documentation can cite.

Documentation quotes numbers from runs; claims.json gives each quotable figure
a stable key, the sentence the report prints, the figure (``estimator``: the
20% trimmed mean of the rounds) with its min-max range
and its 95% interval over rounds, the cells it comes from, and the run id and
git commit, and each model's paired ratio to the reference model of its matrix
point with that ratio's interval (``ratios``), so a
doc can include a figure by key and a reader can trace it back to
results.json. The report's "Cite these figures" section prints the same
records. The format is documented in docs/formats.md and pinned by
:data:`CLAIMS_JSON_SCHEMA` (the tests validate every written file against it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iobench.benchmarks.report.claims import ClaimResult, Quoted
from iobench.benchmarks.report.intervals import RATIO_METRICS, model_ratios, ratio_verdict
from iobench.benchmarks.report.points import describe_point
from iobench.benchmarks.report.presentation import (
    format_spread,
    series_label,
    series_sort_key,
    style,
)
from iobench.benchmarks.report.scenarios import REPORT_SCENARIOS
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.benchmarks.results.stats import METHOD, Interval, format_interval
from iobench.common.files import atomic_write

CLAIMS_JSON = "claims.json"
# 2: a figure is "value" (the 20% trimmed mean), not "median"; "estimator" names it.
CLAIMS_SCHEMA_VERSION = 2
# A headline figure from a cell flagged with one of these is not one to cite.
UNCITABLE_FLAGS = frozenset({"errors", "behind_schedule", "implausible"})


@dataclass(frozen=True)
class CitedFigure:
    """One citable number: its figure and range in the unit people read (``unit``)."""

    key: str
    what: str
    metric: str
    spread: Spread
    cells: tuple[str, ...]
    sentence: str = ""
    # The figure's 95% interval over rounds; None with a single round.
    interval: Interval | None = None

    def as_json(self) -> dict[str, Any]:
        look = style(self.metric)
        interval = self.interval
        width = format_interval(interval)
        return {
            "key": self.key, "what": self.what, "metric": self.metric, "unit": look.unit,
            "value": round(self.spread.value * look.scale, 6),
            "min": round(self.spread.low * look.scale, 6),
            "max": round(self.spread.high * look.scale, 6),
            "repetitions": self.spread.count, "cells": list(self.cells),
            "ci95": [round(interval.low * look.scale, 6), round(interval.high * look.scale, 6)]
                    if interval is not None else None,
            "imprecise": interval.imprecise_for(self.metric) if interval is not None else None,
            "text": format_spread(self.metric, self.spread)
                    + (f" {look.unit}" if look.unit else "") + (f", {width}" if width else ""),
            **({"sentence": self.sentence} if self.sentence else {}),
        }


@dataclass
class Citations:
    """Everything claims.json holds, built once for the file and the report section."""

    run: Run
    claims: list[ClaimResult]
    headlines: list[CitedFigure] = field(default_factory=list)

    @property
    def commit(self) -> str | None:
        return self.run.environment.get("git_commit")


def quoted_figure(claim_key: str, quoted: Quoted) -> CitedFigure:
    return CitedFigure(f"{claim_key}.{quoted.cell}.{quoted.metric}", quoted.what, quoted.metric,
                       quoted.spread, (quoted.cell,), interval=quoted.interval)


def citable(group: CellGroup) -> bool:
    return not group.failed and not UNCITABLE_FLAGS & set(group.flags)


def where(group: CellGroup) -> str:
    """The point, and the rate a fraction of the model's peak came to."""
    text = describe_point(group)
    if group.peak_fraction is not None and group.rate_rps is not None:
        text += f" ({group.rate_rps:,.0f} req/s)"
    return text


def headline(key: str, group: CellGroup, metric: str, title: str) -> CitedFigure | None:
    spread = group.metric(metric)
    if spread is None:
        return None
    look = style(metric)
    label = series_label(group)
    sentence = (f"{label}: {title} {format_spread(metric, spread)}"
                f"{' ' + look.unit if look.unit else ''} ({where(group)})")
    return CitedFigure(key, f"{label}, {title}", metric, spread, (group.key,), sentence,
                       group.interval(metric))


def headline_figures(run: Run) -> list[CitedFigure]:
    """Per model series, the headline figures each scenario declares (peak closed-loop
    throughput, idle CPU, open-loop p99 at mid load), in the scenarios' order."""
    figures: list[CitedFigure] = []
    series: dict[str, dict[str, list[CellGroup]]] = {}
    for group in sorted(run.groups, key=series_sort_key):
        if group.model is None or not citable(group):
            continue
        series.setdefault(series_label(group), {}).setdefault(group.scenario, []).append(group)
    for label, scenarios in series.items():
        slug = label.replace(" ", "").replace("(", "[").replace(")", "]")
        for name, declared in REPORT_SCENARIOS.items():
            groups = scenarios.get(name, [])
            for wanted in declared.headlines:
                having = [g for g in groups if g.metric(wanted.metric)]
                if having:
                    cited = headline(f"{slug}.{wanted.key}", wanted.pick(having), wanted.metric,
                                     wanted.title)
                    if cited is not None:
                        figures.append(cited)
    return figures


def ratio_citations(run: Run) -> list[dict[str, Any]]:
    """Every model's paired ratio to its point's reference model (epoll, else select), for
    the throughput and CPU per request, with the ratio's interval and verdict."""
    found = []
    points: dict[str, list[CellGroup]] = {}
    for group in run.groups:
        if group.model is not None and group.mode == "closed":
            points.setdefault(group.point, []).append(group)
    for point, groups in points.items():
        for ratio in model_ratios(groups):
            for metric in RATIO_METRICS:
                interval = ratio.ratios[metric]
                if interval is None:
                    continue
                found.append({
                    "key": f"{point}.{ratio.model}/{ratio.reference}.{metric}",
                    "metric": metric, "model": ratio.model, "reference": ratio.reference,
                    "point": point, "value": round(interval.value, 6),
                    "ci95": [round(interval.low, 6), round(interval.high, 6)]
                    if interval.n > 1 else None,
                    "rounds": interval.n, "servers": interval.servers,
                    "verdict": ratio_verdict(metric, interval)})
    return found


def build_citations(run: Run, claims: list[ClaimResult]) -> Citations:
    return Citations(run, claims, headline_figures(run))


def claim_figure_path(claim: ClaimResult, figures: dict[str, list[Path]],
                      base: Path) -> str | None:
    for stem in claim.figures:
        for path in figures.get(stem, []):
            if path.suffix == ".png":
                return path.relative_to(base).as_posix()
    return None


def citations_json(citations: Citations, figures: dict[str, list[Path]]) -> dict[str, Any]:
    run = citations.run
    env = run.environment
    return {
        "schema_version": CLAIMS_SCHEMA_VERSION,
        "run_id": run.run_id,
        "profile": run.profile,
        "commit": citations.commit,
        "source": "results.json",
        "estimator": METHOD,
        "environment": {name: env.get(name) for name in
                        ("cpu_model", "logical_cpus", "kernel", "python", "hostname")}
                       | {"placement": run.placement or None},
        "claims": [{
            "key": claim.key,
            "claim": claim.claim,
            "verdict": str(claim.verdict),
            "sentence": f"{claim.verdict.capitalize()}: {claim.reason}.",
            "evidence": list(claim.evidence),
            "figure": claim_figure_path(claim, figures, run.directory),
            "numbers": [quoted_figure(claim.key, q).as_json() for q in claim.quoted],
        } for claim in citations.claims],
        "headlines": [figure.as_json() for figure in citations.headlines],
        "ratios": ratio_citations(run),
    }


def write_citations(citations: Citations, figures: dict[str, list[Path]]) -> Path:
    """Write claims.json beside results.json, atomically (a reader never sees half)."""
    path = citations.run.directory / CLAIMS_JSON
    text = json.dumps(citations_json(citations, figures), indent=2, sort_keys=True) + "\n"
    return atomic_write(path, text)


_NUMBER: dict[str, Any] = {
    "type": "object",
    "required": ["key", "what", "metric", "unit", "value", "min", "max", "repetitions",
                 "cells", "ci95", "imprecise", "text"],
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "minLength": 1},
        "what": {"type": "string", "minLength": 1},
        "metric": {"type": "string", "minLength": 1},
        "unit": {"type": "string"},
        "value": {"type": "number"},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "repetitions": {"type": "integer", "minimum": 1},
        "cells": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "ci95": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "number"},
                                              "minItems": 2, "maxItems": 2}]},
        "imprecise": {"type": ["boolean", "null"]},
        "text": {"type": "string", "minLength": 1},
        "sentence": {"type": "string", "minLength": 1},
    },
}

# JSON Schema (draft 2020-12) of claims.json; docs/formats.md describes the same fields.
CLAIMS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "iobench claims.json",
    "type": "object",
    "required": ["schema_version", "run_id", "profile", "commit", "source", "estimator",
                 "environment",
                 "claims", "headlines", "ratios"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": CLAIMS_SCHEMA_VERSION},
        "run_id": {"type": "string", "minLength": 1},
        "profile": {"type": ["string", "null"]},
        "commit": {"type": ["string", "null"]},
        "source": {"const": "results.json"},
        "estimator": {"const": METHOD},
        "environment": {"type": "object"},
        "claims": {"type": "array", "items": {
            "type": "object",
            "required": ["key", "claim", "verdict", "sentence", "evidence", "figure",
                         "numbers"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string", "pattern": "^[a-z_]+$"},
                "claim": {"type": "string", "minLength": 1},
                "verdict": {"enum": ["holds", "does not hold", "inconclusive"]},
                "sentence": {"type": "string", "minLength": 1},
                "evidence": {"type": "array", "items": {"type": "string"}},
                "figure": {"type": ["string", "null"]},
                "numbers": {"type": "array", "items": _NUMBER},
            },
        }},
        "headlines": {"type": "array",
                      "items": {**_NUMBER, "required": [*_NUMBER["required"], "sentence"]}},
        "ratios": {"type": "array", "items": {
            "type": "object",
            "required": ["key", "metric", "model", "reference", "point", "value", "ci95",
                         "rounds", "servers", "verdict"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "metric": {"type": "string", "minLength": 1},
                "model": {"type": "string", "minLength": 1},
                "reference": {"type": "string", "minLength": 1},
                "point": {"type": "string", "minLength": 1},
                "value": {"type": "number"},
                "ci95": {"oneOf": [{"type": "null"},
                                   {"type": "array", "items": {"type": "number"},
                                    "minItems": 2, "maxItems": 2}]},
                "rounds": {"type": "integer", "minimum": 1},
                "servers": {"type": ["integer", "null"], "minimum": 3},
                "verdict": {"enum": ["better", "worse", "same", "inconclusive"]},
            },
        }},
    },
}
