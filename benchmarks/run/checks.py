"""The checks a profile's values pass, shared by every scenario's declaration.

A check takes where the value is (``"quick.toml: 'closed.connections'"``) and
the value, and returns it checked (a float where a number is meant) or raises
:class:`ProfileError` naming the key, so a typo or a slip of the keyboard is an
error at the door instead of a silently different matrix or an hour-long cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from iobench.common.errors import UsageError

Check = Callable[[str, Any], Any]
# A section's keys: key -> (check, default). None as a default means "required".
Keys = dict[str, tuple[Check, Any]]


class ProfileError(UsageError):
    """A profile that cannot be run: unreadable, or a key that is unknown or wrong."""


# Upper bounds: far beyond any sensible matrix, low enough that a slip of the
# keyboard is an error at the door instead of an hour-long cell, a schedule
# whose send interval rounds to zero, or a list the size of memory.
MAX_LIST_ITEMS = 1000
MAX_SECONDS = 24 * 3600.0
MAX_CONNECTIONS = 1_000_000
MAX_SIZE_BYTES = 64 * 1024 * 1024  # the load generator's own limit
MAX_RATE_RPS = 10_000_000.0
MAX_REPEAT = 1000
MAX_LOADGEN_WORKERS = 1024
MAX_LOADGEN_TIMEOUT_S = 60.0  # the histograms' range
MAX_PEAK_FRACTION = 10.0
# What one run may plan, checked before a single cell is built (matrix.check_size):
# far beyond the full profile (about a thousand cells, under an hour), low enough
# that lists that multiply out to millions of cells are refused at once instead
# of filling memory, or running for years.
MAX_CELLS = 100_000
MAX_PLANNED_S = 7 * 24 * 3600.0


def number(minimum: float, maximum: float, *, integer: bool = False,
           strict: bool = False) -> Check:
    """A finite number in [minimum, maximum] (or (minimum, maximum] when ``strict``).

    TOML has ``nan`` and ``inf``, and nothing stops a typo of a few zeros: both
    are refused here, naming the key, rather than failing (or allocating)
    half-way through a run.
    """
    kind = "an integer" if integer else "a number"
    low = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def check(where: str, value: Any) -> Any:
        valid_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not valid_type:
            raise ProfileError(f"{where} must be {kind}, got {value!r}")
        if not math.isfinite(value):
            raise ProfileError(f"{where} must be a finite number, got {value!r}")
        if value < minimum or (strict and value == minimum) or value > maximum:
            high = f"{maximum:.0f}" if integer else f"{maximum:g}"
            raise ProfileError(f"{where} must be {low} and <= {high}, got {value!r}")
        return value if integer else float(value)

    return check


def list_of(item: Check, *, may_be_empty: bool = False) -> Check:
    """A list of values each passing ``item``, none twice (see :func:`distinct`)."""
    def check(where: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or (not value and not may_be_empty):
            raise ProfileError(f"{where} must be a non-empty list, got {value!r}")
        if len(value) > MAX_LIST_ITEMS:
            raise ProfileError(f"{where} has {len(value)} values; at most {MAX_LIST_ITEMS}")
        return distinct(where, [item(f"{where}[{i}]", v) for i, v in enumerate(value)])

    return check


def distinct(where: str, values: list[Any]) -> list[Any]:
    """``values``, checked: each value of a list is a point of the matrix, so one given twice
    (``sizes_bytes = [64, 64]``, or 500 and 500.0) would be two cells with one key, which
    --resume and the report would take for repetitions of one point."""
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise ProfileError(f"{where} holds {value!r} twice; give each value once")
        seen.append(value)
    return values


def text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where} must be a string, got {value!r}")
    return value


def names(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ProfileError(f"{where} must be a list of model names, got {value!r}")
    return distinct(where, [text(f"{where}[{i}]", v) for i, v in enumerate(value)])


def one_of(choices: tuple[str, ...], what: str) -> Check:
    """A list of names, each one of ``choices`` (``what`` they are, for the error)."""
    def check(where: str, value: Any) -> list[str]:
        chosen = names(where, value)
        for name in chosen:
            if name not in choices:
                raise ProfileError(f"{where}: unknown {what} {name!r} "
                                   f"(valid: {', '.join(choices)})")
        return chosen

    return check


def params(where: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table of model = {{param = value}}")
    for model, table in value.items():
        if not isinstance(table, dict):
            raise ProfileError(f"{where}.{model} must be a table of parameters, got {table!r}")
    return value


def variants(where: str, value: Any) -> dict[str, list[dict[str, Any]]]:
    """``model = [{param = value}, ...]``: more parameter sets of a model, run beside it."""
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table of model = [{{param = value}}, ...]")
    for model, tables in value.items():
        if not isinstance(tables, list) or not all(isinstance(v, dict) for v in tables):
            raise ProfileError(f"{where}.{model} must be a list of parameter tables, "
                               f"got {tables!r}")
    return value


DURATION = number(0, MAX_SECONDS, strict=True)
WARMUP = number(0, MAX_SECONDS)
RATE = number(0, MAX_RATE_RPS, strict=True)
COUNT = number(1, MAX_CONNECTIONS, integer=True)
CONNECTIONS = number(0, MAX_CONNECTIONS, integer=True)
SIZE = number(1, MAX_SIZE_BYTES, integer=True)
FRACTION = number(0, MAX_PEAK_FRACTION, strict=True)
# A swept model parameter (poll-sleep's interval); the model checks its own range.
SWEPT_VALUE = number(0, MAX_SECONDS, strict=True)
