"""A cell: one point of the matrix, once per repetition, its key, and how it fails.

Scenarios expand into cells (``iobench.benchmarks.run.scenarios``); the
runner runs them; a cell that cannot give valid numbers raises
:class:`CellFailed`, whose message is the reason recorded. A cell's key is
made here alone, by :func:`cell_key`, from the fields that tell its
scenario's points apart: ``--resume``, the report and ``iobench compare``
match cells by it, so two points must never share one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The fields a key may show, in the order it shows them, each after its letter
# (a phase stands alone): closed/select/c16/s64, scale/epoll/i10000/r500/c16/s64.
KEY_FIELDS: tuple[tuple[str, str], ...] = (
    ("phase", ""),
    ("idle", "i"),
    ("rate_rps", "r"),
    ("peak_fraction", "f"),
    ("requests_per_connection", "k"),
    ("connections", "c"),
    ("size_bytes", "s"),
)


class CellFailed(Exception):
    """The cell cannot give valid numbers; the message is the recorded reason."""


@dataclass
class Cell:
    """One point of the matrix, once per repetition: what to start and what load to apply."""

    key: str
    scenario: str
    model: str | None
    params: dict[str, Any]
    mode: str  # "idle" (no load), "closed" or "open"
    connections: int
    size_bytes: int | None = None
    rate_rps: float | None = None
    peak_fraction: float | None = None  # open loop: a fraction of the model's closed peak
    phase: str | None = None  # neighbour scenario: solo, idle or load
    idle: int = 0  # scale scenario: silent connections beside the active ones
    requests_per_connection: int | None = None  # churn scenario: K, then a new connection
    duration_s: float = 1.0
    warmup_s: float = 0.0
    repetition: int = 0

    @property
    def ident(self) -> tuple[str, int]:
        """What makes a cell unique within a run."""
        return self.key, self.repetition

    @property
    def held_connections(self) -> int:
        """Every connection the server holds during the cell: the active ones and the idle."""
        return self.connections + self.idle


def model_label(model: str, params: dict[str, Any]) -> str:
    """``poll-sleep(interval=0.01)``: a model and its non-default parameters, for keys."""
    if not params:
        return model
    return f"{model}({','.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def exact(value: float | str) -> str:
    """A key's number: a whole one without a point (500.0 -> 500), any other with every
    digit it needs to be read back (shortest round trip), so two values never share a
    key as they did when rates were cut to six digits."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def cell_key(cell: Cell, shown: Iterable[str]) -> str:
    """``scenario/model(params)/field...``: the fields in ``shown`` that the cell has."""
    wanted = set(shown)
    unknown = wanted - {name for name, _ in KEY_FIELDS}
    if unknown:
        raise ValueError(f"a key cannot show {', '.join(sorted(unknown))}")
    parts = [cell.scenario]
    if cell.model is not None:
        parts.append(model_label(cell.model, cell.params))
    for name, letter in KEY_FIELDS:
        value = getattr(cell, name)
        if name in wanted and value is not None:
            parts.append(letter + exact(value))
    return "/".join(parts)

