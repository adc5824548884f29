"""What a point of the matrix is, in words: the one description tables, compare and citations use.

A point is what a cell holds fixed apart from its model: the connections
(and the idle crowd beside them), the payload, the offered load, the phase.
:func:`describe_point` says it in full for titles and sentences, short for
column headings, or compact for ``iobench compare``'s narrow rows; in every
form two points of one scenario never read the same, since every field that
tells points apart (``iobench.benchmarks.run.cells.KEY_FIELDS``) is in it.
"""

from __future__ import annotations

from typing import Literal

from iobench.benchmarks.report.presentation import plural
from iobench.benchmarks.results.loader import CellGroup

Form = Literal["long", "short", "compact"]


def number(value: float) -> str:
    """1234567 -> '1,234,567'; a fraction keeps its digits: 312.5 -> '312.5'."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def percent(fraction: float) -> str:
    """0.5 -> '50%', 0.125 -> '12.5%'."""
    return f"{number(round(fraction * 100, 9))}%"


def describe_point(group: CellGroup, form: Form = "long") -> str:
    """The point ``group`` was measured at, in one of three forms:

    long:    '16 connections, beside 10,000 idle connections, 64 B, 500 req/s offered'
    short:   '16 conn, +10,000 idle, 64 B, 500/s'
    compact: 'c16 +10,000idle 64B 500/s'
    """
    # Read here, not at import: the scenarios' declarations import the claims,
    # which describe points too.
    from iobench.benchmarks.report.scenarios import REPORT_SCENARIOS

    long, short = form == "long", form == "short"
    parts = []
    if group.phase:
        parts.append(REPORT_SCENARIOS[group.scenario].phases[group.phase] if long
                     else group.phase)
    if group.connections is not None and not (group.phase and group.mode == "idle"):
        count = group.connections
        if group.mode == "idle":
            parts.append(plural(count, "idle connection") if long
                         else f"{count} idle" if short else f"{count}idle")
        else:
            parts.append(plural(count, "connection") if long
                         else f"{count} conn" if short else f"c{count}")
    if group.idle_connections:
        crowd = f"{group.idle_connections:,}"
        parts.append(f"beside {plural(group.idle_connections, 'idle connection')}" if long
                     else f"+{crowd} idle" if short else f"+{crowd}idle")
    if group.requests_per_connection is not None:
        k = group.requests_per_connection
        parts.append(f"{plural(k, 'request')} per connection" if long
                     else f"K={k}" if short else f"k{k}")
    if group.size_bytes is not None and group.mode != "idle":
        parts.append(f"{group.size_bytes} B" if form != "compact" else f"{group.size_bytes}B")
    if group.peak_fraction is not None:
        share = percent(group.peak_fraction)
        parts.append(f"offered {share} of each model's closed-loop peak" if long
                     else f"{share} of peak" if short else f"{share}peak")
    elif group.rate_rps is not None and group.mode == "open":
        parts.append(f"{number(group.rate_rps)} req/s offered" if long
                     else f"{number(group.rate_rps)}/s")
    return (" " if form == "compact" else ", ").join(parts) or "-"
