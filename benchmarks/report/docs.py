"""README's tables and Findings, and docs' measured figures, written from a run folder.

Documentation that quotes a run goes stale the day it is copied by hand. Here
each quoted part sits between two markers in its file::

    <!-- iobench:findings -->
    ...written by ``iobench docs RUN_DIR``...
    <!-- /iobench:findings -->

and :func:`render` rewrites what is between them from the run (its verdicts,
headline figures and cells) and the models' own metadata, leaving the rest of
the file as it was. ``iobench docs RUN_DIR`` writes the files (atomically);
``--check`` only says which lines differ, and tests/test_docs.py does the same
against the committed reference run, so a number edited by hand in README
fails the suite. What each scenario found comes from
:mod:`iobench.benchmarks.report.findings`.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iobench.benchmarks.report.citations import CitedFigure, headline_figures
from iobench.benchmarks.report.finding import Finding, markdown_table, run_findings
from iobench.benchmarks.report.placement import describe as describe_placement
from iobench.benchmarks.report.presentation import (
    format_spread,
    plural,
    registered_models,
    series_label,
    series_sort_key,
)
from iobench.benchmarks.results.loader import CellGroup, Run
from iobench.common.errors import UsageError
from iobench.common.files import atomic_write

# docs/models.md's measured column: system calls per request at one point of
# the closed loop, where every connection is busy but none waits for a thread:
# 16 connections, 64 B (the point the column's theory is written for).
MEASURED_SCENARIO = "closed"
MEASURED_CONNECTIONS = 16
MEASURED_SIZE_BYTES = 64
# Kinds of system call rarer than this per request are left out of the
# column (they are in the report's full table); the total counts them.
MEASURED_MIN_PER_REQUEST = 0.01
MEASURED_COLUMN = "measured (per request)"

START = "<!-- iobench:{name} -->"
END = "<!-- /iobench:{name} -->"


@dataclass(frozen=True)
class Page:
    """Where a generated part goes: the file it is in, relative to the checkout."""

    path: Path
    root: Path
    run: Run

    def link(self, target: Path) -> str:
        """``target`` as a link relative to this page's folder (links left unresolved)."""
        return Path(os.path.relpath(os.path.abspath(target),
                                    os.path.abspath((self.root / self.path).parent))).as_posix()

    @property
    def run_link(self) -> str:
        return self.link(self.run.directory)


# A region's content from the page it is on and the current content between
# its markers (a region may keep some of what is there, as models-written does).
Render = Callable[[Page, str], str]


def run_sentence(page: Page) -> str:
    """One line saying which run, where and how it was measured."""
    run = page.run
    env = run.environment
    models = sorted({g.model for g in run.groups if g.model is not None})
    accounting = sorted({c.cpu_accounting for g in run.groups for c in g.ok_cells
                         if c.cpu_accounting is not None})
    commit = env.get("git_commit")
    parts = [f"profile {run.profile}" if run.profile else "",
             plural(run.repetitions, "repetition"), plural(len(models), "model")]
    machine = [str(env.get("cpu_model") or "an unnamed CPU"),
               plural(env.get("logical_cpus"), "CPU"),
               f"Linux {env.get('kernel')}" if env.get("kernel") else "",
               f"Python {env.get('python')}" if env.get("python") else ""]
    sentence = (f"From the run [{run.directory.name}]({page.run_link}/REPORT.md) "
                f"({', '.join(p for p in parts if p)}; {', '.join(m for m in machine if m)}; "
                f"{describe_placement(run.placement)}")
    if accounting:
        sentence += f"; server CPU counted by {', '.join(accounting)}"
    if commit:
        sentence += f"; commit {str(commit)[:7]}"
    return sentence + ")."


def figure_path(page: Page, findings: list[Finding]) -> str | None:
    """The first finding's figure that the run folder holds, as a link from the page."""
    for finding in findings:
        for stem in finding.figures:
            path = page.run.directory / "plots" / f"{stem}.png"
            if path.exists():
                return page.link(path)
    return None


def readme_findings(page: Page, _current: str) -> str:
    """README's Findings: the run, its first figure, one row per finding."""
    findings = run_findings(page.run)
    lines = [run_sentence(page), ""]
    figure = figure_path(page, findings)
    if figure:
        lines += [f"![{findings[0].title}]({figure})", ""]
    lines += markdown_table(["finding", "verdict", "in this run"],
                            ([sentence(f.title), str(f.verdict or "measured"), f.summary]
                             for f in findings),
                            numeric_from=3)
    findings_page = page.link(page.root / "docs" / "findings.md")
    lines += ["", f"Each finding's tables and the rule behind its verdict: "
                  f"[{findings_page}]({findings_page}); every figure and the cells set aside: "
                  f"the run's [REPORT.md]({page.run_link}/REPORT.md)."]
    return "\n".join(lines)


def findings_detail(page: Page, _current: str) -> str:
    """docs/findings.md: every finding with its verdict, tables and figures."""
    lines = [run_sentence(page)]
    shown: set[str] = set()
    for finding in run_findings(page.run):
        lines += ["", f"### {sentence(finding.title)}", ""]
        if finding.verdict is not None:
            lines += [f"**{sentence(str(finding.verdict))}**: {finding.reason}.", ""]
        if finding.summary != finding.reason:
            lines += [f"{sentence(finding.summary)}.", ""]
        if finding.evidence:
            lines += ["The numbers the verdict read:", "",
                      *(f"- {line}" for line in finding.evidence), ""]
        lines += finding.detail
        for stem in finding.figures[:1]:
            path = page.run.directory / "plots" / f"{stem}.png"
            if path.exists() and stem not in shown:
                shown.add(stem)
                lines += ["", f"![{stem}]({page.link(path)})"]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def sentence(text: str) -> str:
    """The text with its first letter a capital, unless it starts with a model's name."""
    first = text.split(" ", 1)[0].rstrip(",:;")
    if first in registered_models():
        return text
    return text[:1].upper() + text[1:]


def headlines_by_series(run: Run) -> dict[str, dict[str, CitedFigure]]:
    """Series label -> metric -> its headline figure (claims.json's ``headlines``)."""
    groups = {g.key: g for g in run.groups}
    found: dict[str, dict[str, CitedFigure]] = {}
    for figure in headline_figures(run):
        group = groups[figure.cells[0]]
        found.setdefault(series_label(group), {})[figure.metric] = figure
    return found


HEADLINE_COLUMNS = (("throughput_rps", "peak throughput (req/s)"),
                    ("server_cpu_percent", "idle CPU (% of a core)"),
                    ("p99_us", "open-loop p99 (us)"))


def readme_models(page: Page, _current: str) -> str:
    """README's models table: each model's family and mechanism, and its headline figures."""
    from iobench.servers.registry import all_models

    models = all_models()
    headlines = headlines_by_series(page.run)
    labels = sorted(headlines, key=lambda label: label_order(label, page.run))
    rows = []
    for label in labels:
        model = label.split(" (")[0]
        cls = models.get(model)
        figures = headlines[label]
        rows.append([label, str(cls.family) if cls else "-", cls.mechanism if cls else "-",
                     *(format_spread(metric, figures[metric].spread) if metric in figures
                       else "not run" for metric, _ in HEADLINE_COLUMNS)])
    for model in registered_models():
        if model not in labels:
            cls = models[model]
            rows.append([model, str(cls.family), cls.mechanism, "not in this run", "-", "-"])
    lines = markdown_table(["model", "family", "mechanism", *(h for _, h in HEADLINE_COLUMNS)],
                           rows, numeric_from=3)
    return "\n".join([*lines, "", "Peak: the highest closed-loop throughput over the run's "
                      "connection counts and payloads; idle CPU with the most idle "
                      "connections; p99 in open loop at the middle of the offered rates. "
                      "Each figure is the 20% trimmed mean of the cell's rounds, with "
                      "their range (min-max). "
                      f"Each is in the run's [claims.json]({page.run_link}/claims.json) "
                      "with the cell it comes from."])


def label_order(label: str, run: Run) -> tuple[object, ...]:
    group = next((g for g in run.groups if series_label(g) == label), None)
    return series_sort_key(group) if group is not None else ((len(registered_models()), label),)


def model_list(_page: Page, _current: str) -> str:
    """docs/models.md's list of models: their metadata, from the registry."""
    from iobench.servers.registry import all_models

    rows = [[name, str(cls.family), cls.mechanism,
             ", ".join(p.describe() for p in cls.params) or "-", cls.description]
            for name, cls in all_models().items()]
    return "\n".join(markdown_table(["model", "family", "mechanism", "parameters",
                                     "description"], rows, numeric_from=5))


def syscall_kinds(group: CellGroup) -> tuple[dict[str, float], float | None, str | None]:
    """Median per kind and in all over repetitions, or why none was counted."""
    counted = [c.syscalls for c in group.ok_cells
               if c.syscalls and c.syscalls.get("by_kind_per_request")]
    if not counted:
        reasons = [c.syscalls.get("reason") for c in group.ok_cells if c.syscalls]
        reason = next((r for r in reasons if r), None)
        return {}, None, reason or ("the cell failed" if group.failed else "not counted")
    kinds = {kind for s in counted for kind in s["by_kind_per_request"]}
    medians = {kind: statistics.median(float(s["by_kind_per_request"].get(kind, 0.0))
                                       for s in counted) for kind in kinds}
    totals = [float(s["per_request"]) for s in counted if s.get("per_request") is not None]
    return medians, (statistics.median(totals) if totals else None), None


def measured_text(group: CellGroup | None) -> str:
    """'recvfrom 1.04, sendto 0.98 (2.09 in all)', or why there is no figure."""
    if group is None:
        return "not in this run"
    kinds, total, reason = syscall_kinds(group)
    if reason:
        return f"not counted: {reason}"
    shown = sorted(((k, v) for k, v in kinds.items() if v >= MEASURED_MIN_PER_REQUEST),
                   key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{kind} {count:.2f}" for kind, count in shown)
    return text + (f" ({total:.2f} in all)" if total is not None else "")


TABLE_CELL = re.compile(r"(?<!\\)\|")


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in TABLE_CELL.split(line.strip())[1:-1]]


def models_written(page: Page, current: str) -> str:
    """docs/models.md's table: its measured column from the run, the rest as written."""
    run = page.run
    point = {series_label(g): g for g in run.scenario(MEASURED_SCENARIO)
             if g.connections == MEASURED_CONNECTIONS and g.size_bytes == MEASURED_SIZE_BYTES}
    table = [line for line in current.splitlines() if line.startswith("|")]
    if len(table) < 2:
        raise UsageError(f"{page.path}: no table between the models-written markers")
    headers = split_row(table[0])
    if MEASURED_COLUMN not in headers:
        raise UsageError(f"{page.path}: the models-written table has no "
                         f"{MEASURED_COLUMN!r} column")
    column = headers.index(MEASURED_COLUMN)
    rows = []
    for line in table[2:]:
        cells = split_row(line)
        cells[column] = measured_text(point.get(cells[0]))
        rows.append("| " + " | ".join(cells) + " |")
    source = (f"Measured: system calls per request counted by the kernel in the run "
              f"[{run.directory.name}]({page.run_link}/REPORT.md), closed loop, "
              f"{plural(MEASURED_CONNECTIONS, 'connection')}, {MEASURED_SIZE_BYTES} B, "
              f"median of {plural(run.repetitions, 'repetition')}; kinds under "
              f"{MEASURED_MIN_PER_REQUEST:g} per request are left out of the list but "
              "counted in all.")
    return "\n".join([source, "", table[0], table[1], *rows])


# (file, region name, what writes it). The files are relative to the checkout.
REGIONS: tuple[tuple[str, str, Render], ...] = (
    ("README.md", "models", readme_models),
    ("README.md", "findings", readme_findings),
    ("docs/findings.md", "findings", findings_detail),
    ("docs/models.md", "model-list", model_list),
    ("docs/models.md", "models-written", models_written),
)


def region_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(START.format(name=name)) + r"\n(.*?)\n?"
                      + re.escape(END.format(name=name)), re.DOTALL)


def render(run: Run, root: Path) -> dict[Path, tuple[str, str]]:
    """Every file with a generated region: (its text now, its text written from ``run``)."""
    texts: dict[Path, tuple[str, str]] = {}
    for relative, name, write in REGIONS:
        path = root / relative
        if path not in texts:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from None
            texts[path] = (text, text)
        before, text = texts[path]
        pattern = region_pattern(name)
        found = pattern.search(text)
        if found is None:
            raise UsageError(f"{path}: no {START.format(name=name)} ... "
                             f"{END.format(name=name)} markers")
        page = Page(Path(relative), root, run)
        body = write(page, found.group(1)).rstrip("\n")
        start, end = START.format(name=name), END.format(name=name)
        text = text[:found.start()] + f"{start}\n{body}\n{end}" + text[found.end():]
        texts[path] = (before, text)
    return texts


def differences(run: Run, root: Path) -> list[str]:
    """One line per file whose generated part differs from ``run``: its first differing line."""
    found = []
    for path, (now, written) in render(run, root).items():
        if now == written:
            continue
        old, new = now.splitlines(), written.splitlines()
        line = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                    min(len(old), len(new)))
        committed = old[line] if line < len(old) else "(end of file)"
        generated = new[line] if line < len(new) else "(end of file)"
        found.append(f"{path.relative_to(root)}:{line + 1}: has {committed!r}, the run gives "
                     f"{generated!r}")
    return found


def write_docs(run: Run, root: Path) -> list[Path]:
    """Write every generated region from ``run``; the files that changed."""
    changed = []
    for path, (now, written) in render(run, root).items():
        if now != written:
            # Replaced whole (a reader sees the old file or the new), keeping its mode.
            atomic_write(path, written, mode=path.stat().st_mode & 0o777)
            changed.append(path)
    return changed
