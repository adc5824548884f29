"""What ``iobench run`` shows while it runs and when it ends.

On a terminal: a rich progress bar (cells done, the current cell, ETA from
the planned cell lengths). Without one (CI=true, output piped): one plain
line per finished cell on stderr, which reads well in a log. At the end, a
short table per model and the failed cells with their reasons.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from typing import Any

from iobench.benchmarks.results import stats
from iobench.benchmarks.results.record import CellRecord, Metrics
from iobench.benchmarks.run.cells import Cell
from iobench.benchmarks.run.runner import estimated_seconds


def interactive() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


class PlainProgress:
    """One line per finished cell: ``[ 3/40] ok     closed/select/c16/s64  12345 rps``."""

    def __init__(self, cells: list[Cell]) -> None:
        self.total = len(cells)
        self.done = 0

    def cell_started(self, cell: Cell) -> None:
        pass

    def cell_finished(self, cell: Cell, record: CellRecord) -> None:
        self.done += 1
        # Rounds --precision adds come beyond the planned cells.
        self.total = max(self.total, self.done)
        width = len(str(self.total))
        print(f"[{self.done:{width}d}/{self.total}] {record.status:<6} "
              f"{cell.key} r{cell.repetition}  {headline(record)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A progress bar whose ETA follows the planned seconds of the cells still to run."""

    def __init__(self, cells: list[Cell]) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = len(cells)
        self.done = 0
        self.progress = Progress(
            TextColumn("[bold]{task.fields[count]}"), BarColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.description}"),
            transient=False)
        self.task = self.progress.add_task(
            "", total=sum(estimated_seconds(c) for c in cells), count=self._count())
        self.progress.start()

    def _count(self) -> str:
        return f"{self.done}/{self.total} cells"

    def cell_started(self, cell: Cell) -> None:
        self.progress.update(self.task, description=f"{cell.key} r{cell.repetition}")

    def cell_finished(self, cell: Cell, record: CellRecord) -> None:
        self.done += 1
        if not record.ok:
            self.progress.console.print(f"[red]failed[/red] {cell.key}: {record.reason}")
        self.progress.update(self.task, advance=estimated_seconds(cell), count=self._count())

    def close(self) -> None:
        self.progress.stop()


def make_progress(cells: list[Cell]) -> PlainProgress | RichProgress:
    return RichProgress(cells) if interactive() else PlainProgress(cells)


def headline(record: CellRecord) -> str:
    """The one number that matters most for a cell, for the per-cell line."""
    if not record.ok:
        return record.reason or ""
    metrics = record.metrics
    if record.phase is not None and metrics.neighbour_ratio is not None:
        line = f"neighbour at {100 * metrics.neighbour_ratio:.0f}% of solo"
    elif record.mode == "idle":
        line = f"server CPU {_fmt(metrics.server_cpu_percent, '{:.1f}%')}"
    elif metrics.longest_wait_s is not None:  # an article probe: what the others waited
        line = (f"longest wait {metrics.longest_wait_s:.3f} s, "
                f"{_fmt(metrics.starved_requests, '{}')} unanswered")
    else:
        line = (f"{_fmt(metrics.throughput_rps, '{:.0f}')} rps, "
                f"p50 {_fmt(metrics.p50_us, '{:.0f}')} us, "
                f"server CPU {_fmt(metrics.server_cpu_percent, '{:.1f}%')}")
    if record.implausible:
        line += " [implausible: " + ", ".join(v.rule for v in record.implausible) + "]"
    return line


def summary_rows(cells: list[CellRecord]) -> list[dict[str, str]]:
    """Per model: idle CPU, peak throughput and its latency, CPU per request, neighbour."""
    by_model: dict[str, list[CellRecord]] = defaultdict(list)
    for cell in cells:
        if cell.model is not None:
            by_model[cell.model].append(cell)
    rows = []
    for model, group in by_model.items():
        ok = [c for c in group if c.ok]
        idle = [c.metrics.server_cpu_percent for c in ok
                if c.scenario == "idle" and c.connections == 0]
        peak = peak_point([c for c in ok if c.scenario == "closed"])
        neighbour = [c.metrics.neighbour_ratio for c in ok if c.phase == "idle"]
        rows.append({
            "model": model,
            "idle CPU %": _fmt(stats.figure(idle), "{:.1f}"),
            "peak rps": _fmt(peak.get("throughput_rps"), "{:.0f}"),
            "p50 us": _fmt(peak.get("p50_us"), "{:.0f}"),
            "p99 us": _fmt(peak.get("p99_us"), "{:.0f}"),
            "CPU us/req": _fmt(peak.get("cpu_us_per_request"), "{:.1f}"),
            "neighbour idle": _fmt(stats.figure(neighbour), "{:.0%}"),
            "implausible": str(sum(1 for c in ok if c.implausible)),
            "failed": str(len(group) - len(ok)),
        })
    return rows


def peak_point(closed: list[CellRecord]) -> dict[str, float | None]:
    """The figures (``stats.figure``, as REPORT.md takes them) over repetitions of the
    closed-loop point with the highest throughput: one matrix point, as the report
    shows it, not the luckiest repetition."""
    by_key: dict[str, list[Metrics]] = defaultdict(list)
    for cell in closed:
        by_key[cell.key].append(cell.metrics)
    best: dict[str, float | None] = {}
    for repetitions in by_key.values():
        figures = {name: stats.figure([m.get(name) for m in repetitions])
                   for name in ("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request")}
        if (figures["throughput_rps"] or 0) > (best.get("throughput_rps") or 0):
            best = figures
    return best


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def print_summary(run_id: str, cells: list[CellRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    rows = summary_rows(cells)
    if rows:
        table = Table(title=f"iobench run {run_id} (peak = best closed-loop cell)")
        for column in rows[0]:
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
    for cell in cells:
        if not cell.ok:
            console.print(f"failed: {cell.key} (repetition {cell.repetition}): "
                          f"{cell.reason}", highlight=False, markup=False)
        for violation in cell.implausible:
            console.print(f"implausible: {cell.key} (repetition {cell.repetition}) broke "
                          f"{violation.rule}: {violation.seen}", highlight=False, markup=False)
        for flag, note in cell.notes.items() if cell.ok else ():
            console.print(f"{flag}: {cell.key} (repetition {cell.repetition}): {note}",
                          highlight=False, markup=False)
