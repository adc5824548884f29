"""A run folder: ``results.json`` and ``results.csv``, written atomically after every cell.

The format is specified in docs/formats.md. Both files are replaced whole
(written to a temporary file in the same folder, then renamed, by
:func:`iobench.common.files.atomic_write`, which never follows a symbolic
link), so a run interrupted at any moment leaves the last complete state,
which ``--resume`` continues from. Reading checks ``schema_version`` and says
plainly what is wrong with a truncated or foreign file.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from iobench.benchmarks.results.record import (
    METRIC_NAMES,
    SCHEMA_VERSION,
    CellRecord,
    RecordError,
    check_version,
)
from iobench.benchmarks.results.stats import HEADLINE_METRICS, figure_interval
from iobench.common.errors import UsageError
from iobench.common.files import FILE_MODE, UnsafePathError, open_regular_nofollow
from iobench.common.files import atomic_write as write_file

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
LOCK_FILE = ".lock"
RESULT_FILE_MODE = FILE_MODE

# The record owns the metric names; the CSV lists them in its order.
METRICS = METRIC_NAMES
CSV_FIELDS = ("run_id", "key", "scenario", "model", "params", "mode", "connections", "size_bytes",
              "rate_rps", "peak_fraction", "phase", "idle_connections", "requests_per_connection",
              "repetition", "status",
              "reason", "server_cpus", "client_cpus", "started", "duration_s", *METRICS, "flags")


class ResultsError(UsageError):
    """A results folder that cannot be read or resumed."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id_for(profile: str, now: datetime | None = None) -> str:
    """``20261128T150000Z-quick``: the folder name of a run, sortable by time."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{profile}"


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new, never half."""
    try:
        write_file(path, text, RESULT_FILE_MODE)
    except UnsafePathError as exc:
        raise ResultsError(str(exc)) from None


def csv_row(run_id: str, cell: CellRecord) -> dict[str, Any]:
    """The tidy CSV row of one cell: scalars, params as JSON, metrics, flags joined by ';'."""
    placement = cell.placement
    row: dict[str, Any] = {name: getattr(cell, name, None) for name in CSV_FIELDS}
    row["run_id"] = run_id
    row["params"] = json.dumps(cell.params, sort_keys=True)
    row["server_cpus"] = " ".join(map(str, placement.get("server_cpus", [])))
    row["client_cpus"] = " ".join(map(str, placement.get("client_cpus", [])))
    for name in METRICS:
        row[name] = getattr(cell.metrics, name)
    row["flags"] = ";".join(cell.flags)
    return {k: "" if v is None else v for k, v in row.items()}


def render_csv(run_id: str, cells: list[CellRecord]) -> str:
    return render_rows([csv_row(run_id, cell) for cell in cells])


def render_rows(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Stands for the cells in the document's JSON, where their kept texts go.
CELLS_MARK = "\x00cells\x00"


def refresh_intervals(cells: list[CellRecord], key: str) -> None:
    """Every round of ``key`` gets the 95% intervals of its headline metrics over all of
    them so far (``CellRecord.ci95``): the interval of the point, stored with each cell."""
    rounds = [c for c in cells if c.key == key]
    intervals: dict[str, list[float]] = {}
    for metric in HEADLINE_METRICS:
        values = [float(v) for c in rounds if c.ok and (v := c.metrics.get(metric)) is not None]
        interval = figure_interval(values)
        if interval is not None:
            intervals[metric] = interval.as_pair()
    for cell in rounds:
        cell.ci95 = dict(intervals) if cell.ok else {}


class RunStore:
    """The document of one run, kept in memory and on disk in step.

    ``document`` holds the run's fields; its cells are :class:`CellRecord`
    objects in ``cells``, turned into JSON on every write. A version-1 run
    that is resumed is written back as the current version.
    """

    def __init__(self, run_dir: Path, document: dict[str, Any]) -> None:
        self.run_dir = run_dir
        # The open lock file while this store may write the folder; see lock_run_dir.
        self.lock: IO[str] | None = None
        where = str(run_dir / RESULTS_JSON)
        try:
            self.cells: list[CellRecord] = [
                CellRecord.from_json(cell, f"{where}: cell {index}")
                for index, cell in enumerate(document.get("cells") or [])]
        except RecordError as exc:
            raise ResultsError(str(exc)) from None
        self.document = {k: v for k, v in document.items() if k != "cells"}
        # Each cell's JSON text and CSV row as last written, by id (see changed).
        self._text: dict[int, str] = {}
        self._rows: dict[int, dict[str, Any]] = {}
        self.document["schema_version"] = SCHEMA_VERSION

    @classmethod
    def create(cls, run_dir: Path, *, run_id: str, profile: str, environment: dict[str, Any],
               matrix: dict[str, Any], force: bool = False) -> RunStore:
        """A new run in ``run_dir``, which must be new or empty unless ``force``.

        A run never silently replaces files it did not write; with ``force``
        the same-named ones are replaced (atomically, never through a link),
        the others left as they are.
        """
        if (run_dir / RESULTS_JSON).exists() or (run_dir / RESULTS_JSON).is_symlink():
            raise ResultsError(f"{run_dir} already holds a run; use --resume {run_dir} to "
                               "continue it, or choose another --out")
        if not force and run_dir.is_dir() and any(run_dir.iterdir()):
            raise ResultsError(f"{run_dir} is not empty; choose a new or empty --out, or add "
                               "--force to write into it")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create {run_dir}: {exc.strerror}") from None
        lock = lock_run_dir(run_dir)
        if (run_dir / RESULTS_JSON).exists():  # made by another run while this one waited
            raise ResultsError(f"{run_dir} already holds a run; use --resume {run_dir} to "
                               "continue it, or choose another --out")
        document = {
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "profile": profile,
            "started": utc_now(), "finished": None, "interrupted": False, "error": None,
            "environment": environment, "matrix": matrix, "cells": [],
        }
        store = cls(run_dir, document)
        store.lock = lock
        store.write()
        return store

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        """An existing run, checked and locked for writing; ResultsError says why it cannot be.
        """
        if not run_dir.is_dir():
            raise ResultsError(f"{run_dir} is not a folder")
        lock = lock_run_dir(run_dir)
        store = cls(run_dir, read_results(run_dir))
        store.lock = lock
        return store

    def done(self) -> set[tuple[str, int]]:
        """(key, repetition) of every recorded cell, ok or failed."""
        return {(c.key, c.repetition) for c in self.cells}

    def to_json(self) -> dict[str, Any]:
        """The whole results.json document."""
        return {**self.document, "cells": [cell.to_json() for cell in self.cells]}

    def add(self, cell: CellRecord) -> None:
        self.cells.append(cell)
        refresh_intervals(self.cells, cell.key)
        self.changed(c for c in self.cells if c.key == cell.key)
        self.write()

    def changed(self, cells: Iterable[CellRecord]) -> None:
        """Cells changed since they were last written (their intervals, a late figure):
        written anew. The others' text is kept between writes, since the file is
        rewritten after every cell (90 ms a write at 381 cells, each made afresh)."""
        for cell in cells:
            self._text.pop(id(cell), None)
            self._rows.pop(id(cell), None)

    def finish(self, *, interrupted: bool, error: str | None = None) -> None:
        """Record how the run (or this resume of it) ended.

        ``finished`` is set only when every cell ran: an interrupted run, or
        one that broke off with ``error``, can be resumed.
        """
        self.document["finished"] = None if interrupted or error else utc_now()
        self.document["interrupted"] = interrupted
        self.document["error"] = error
        self.changed(self.cells)  # the last write is made whole, from the cells as they are
        try:
            self.write()
        except OSError:
            # Already failing (perhaps on this very write: the disk is full),
            # the first error is the one to report.
            if error is None:
                raise

    def write(self) -> None:
        # No indent: it is rewritten after every cell, and json's C encoder only
        # runs without one (ten times faster on a full run's megabytes). Each
        # cell's text is made once (see changed) and set into the document's.
        texts = []
        for cell in self.cells:
            text = self._text.get(id(cell))
            if text is None:
                text = self._text[id(cell)] = json.dumps(cell.to_json(), sort_keys=True)
            texts.append(text)
        head, tail = json.dumps({**self.document, "cells": CELLS_MARK},
                                sort_keys=True).split(json.dumps(CELLS_MARK))
        atomic_write(self.run_dir / RESULTS_JSON, f"{head}[{', '.join(texts)}]{tail}\n")
        run_id = self.document["run_id"]
        rows = []
        for cell in self.cells:
            row = self._rows.get(id(cell))
            if row is None:
                row = self._rows[id(cell)] = csv_row(run_id, cell)
            rows.append(row)
        atomic_write(self.run_dir / RESULTS_CSV, render_rows(rows))


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Hold the folder's writer lock (``.lock``) for as long as the returned file is open.

    Two runs, or a run and a resume, writing one folder would each replace
    results.json with their own cells and lose the other's. The lock is a
    flock(), so the kernel releases it when its holder exits, however it
    exits: a run killed with SIGKILL leaves no stale lock behind. The file
    holds the holder's pid, for the error message. It is opened without
    following a symbolic link, and only a regular file is truncated: a
    ``.lock`` planted as a link to another file leaves that file unchanged.
    """
    path = run_dir / LOCK_FILE
    try:
        fd = open_regular_nofollow(path, os.O_RDWR | os.O_CREAT)
    except UnsafePathError as exc:
        raise ResultsError(f"cannot lock {run_dir}: {exc}") from None
    lock = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ResultsError(f"{run_dir} is being written by another iobench run (pid {holder}); "
                           "wait for it to end, or stop it first") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def read_results(run_dir: Path) -> dict[str, Any]:
    """The ``results.json`` of ``run_dir``, or a ResultsError that says what is wrong."""
    path = run_dir / RESULTS_JSON
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a folder")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{run_dir} has no {RESULTS_JSON}: not an iobench run folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is truncated or not JSON ({exc.msg} at line {exc.lineno}); "
                           "it cannot be resumed") from None
    if not isinstance(document, dict) or "schema_version" not in document:
        raise ResultsError(f"{path} is not an iobench results file (no schema_version)")
    try:
        check_version(document["schema_version"], str(path))
    except RecordError as exc:
        raise ResultsError(str(exc)) from None
    missing = [k for k in ("run_id", "profile", "matrix", "cells", "environment")
               if k not in document]
    if missing or not isinstance(document.get("cells"), list):
        raise ResultsError(f"{path} is not a complete iobench results file "
                           f"(missing: {', '.join(missing) or 'cells list'})")
    check_document_types(document, str(path))
    return document


# The run-level fields and the types a reader relies on; None is allowed where listed.
DOCUMENT_TYPES: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "run_id": (str, False), "profile": (str, False), "started": (str, True),
    "finished": (str, True), "interrupted": (bool, True), "error": (str, True),
    "environment": (dict, False), "matrix": (dict, False),
}
ENVIRONMENT_TYPES: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "placement": (dict, True), "packages": (dict, True), "cpu_model": (str, True),
    "kernel": (str, True), "logical_cpus": (int, True), "usable_cpus": (list, True),
    "hostname": (str, True), "python": (str, True), "git_commit": (str, True),
}
# Model names as the registry spells them; anything else in a file is not ours
# (and would be read as markup by the report's Markdown and the plots' mathtext).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def check_document_types(document: dict[str, Any], where: str) -> None:
    """ResultsError, one line naming the field, for a value of the wrong type.

    Checked when the file is read, by ``--resume`` as by ``report``, ``plot``
    and ``compare``, so a hand-edited or foreign file is refused at the door
    instead of failing half-way through a figure. The cells' own fields are
    checked by :class:`CellRecord`.
    """
    for fields, data, prefix in ((DOCUMENT_TYPES, document, ""),
                                 (ENVIRONMENT_TYPES, document["environment"]
                                  if isinstance(document["environment"], dict) else {},
                                  "environment.")):
        for name, (kind, nullable) in fields.items():
            value = data.get(name)
            if (value is None and (nullable or name not in data)) or (
                    isinstance(value, kind) and not (isinstance(value, bool) and kind is int)):
                continue
            raise ResultsError(f"{where}: {prefix}{name} is {_short(value)}, of the wrong type")
    for index, cell in enumerate(document["cells"]):
        model = cell.get("model") if isinstance(cell, dict) else None
        if isinstance(model, str) and not MODEL_NAME.fullmatch(model):
            raise ResultsError(f"{where}: cell {index}: model {_short(model)} is not a model name")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
