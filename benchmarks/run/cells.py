"""A cell: one point of the matrix, once per repetition, and how it fails.

Scenarios expand into cells (``iobench.benchmarks.run.scenarios``); the
runner runs them; a cell that cannot give valid numbers raises
:class:`CellFailed`, whose message is the reason recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
