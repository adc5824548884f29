"""How results look wherever they are shown: colours, labels, units, number formats.

Plots, the report and ``iobench compare`` all go through here, so a model has
the same colour in every figure and a number the same format in every table.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Any

from iobench.benchmarks.results.loader import CellGroup, Spread
from iobench.benchmarks.results.record import Metric, metric_info

# Colours are grouped by Stevens' family so a family reads as one hue: reds for
# non-blocking (polling), blues for I/O multiplexing, greens for blocking, purple
# for signal-driven, magenta for asynchronous. Within a family, models take the
# shades (and the markers) in registry order, so a model added to the registry
# never changes the colour of one already there. Shades within a hue are hard to
# tell apart, so each also has its own marker. Any other model name is hashed
# onto the extras, so its colour does not depend on what else ran.
FAMILY_ORDER = ("non-blocking", "I/O multiplexing", "blocking", "signal-driven",
                "asynchronous")
FAMILY_COLOURS: dict[str, tuple[str, ...]] = {
    "non-blocking": ("#C0392B", "#E67E22", "#8E1B0E", "#F1A340"),
    "I/O multiplexing": ("#1F78B4", "#5BB3E4", "#0B2E6B", "#17A2B8", "#5D6FB3", "#2E8B8B"),
    "blocking": ("#238B45", "#74C476", "#00441B", "#8C9A3B"),
    "signal-driven": ("#6A3D9A", "#A68BCB"),
    "asynchronous": ("#C51B7D", "#E377C2"),
}
MARKERS = ("o", "s", "^", "D", "v", "P")
EXTRA_COLOURS = ("#8c564b", "#7f7f7f", "#bcbd22", "#4d4d4d", "#b07aa1", "#9c755f")
OTHER_FAMILY = "other"
# The four models of the article the claims are about: drawn bolder than the rest.
ARTICLE_MODELS = ("busy-poll", "poll-sleep", "select", "threads")


@dataclass(frozen=True)
class ModelStyle:
    """How one model is drawn, in every figure; the article's models are drawn bolder."""

    colour: str
    marker: str
    family: str
    highlighted: bool = False


@functools.cache
def registered_models() -> tuple[str, ...]:
    """Model names in registry order (the order tables list them)."""
    from iobench.servers.registry import all_models

    return tuple(all_models())


def plural(count: int | None, noun: str) -> str:
    """'1 connection', '16 connections'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


@functools.cache
def model_families() -> dict[str, str]:
    """Registered model name -> its Stevens family, in registry order."""
    from iobench.servers.registry import all_models

    return {name: str(cls.family) for name, cls in all_models().items()}


def model_family(model: str | None) -> str:
    return model_families().get(model or "", OTHER_FAMILY)


def family_order(family: str) -> int:
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


@functools.cache
def model_style(model: str) -> ModelStyle:
    """The one colour and marker ``model`` has in every figure."""
    family = model_family(model)
    highlighted = model in ARTICLE_MODELS
    siblings = [name for name, fam in model_families().items() if fam == family]
    palette = FAMILY_COLOURS.get(family, ())
    if model in siblings and siblings.index(model) < len(palette):
        index = siblings.index(model)
        return ModelStyle(palette[index], MARKERS[index % len(MARKERS)], family, highlighted)
    digest = zlib.crc32(model.encode())
    return ModelStyle(EXTRA_COLOURS[digest % len(EXTRA_COLOURS)],
                      MARKERS[(digest // len(EXTRA_COLOURS)) % len(MARKERS)], family, highlighted)


def model_colour(model: str) -> str:
    """The one colour ``model`` has in every figure."""
    return model_style(model).colour


def model_marker(model: str) -> str:
    """The one marker ``model`` has in every figure."""
    return model_style(model).marker


NO_SERVER_LABEL = "no server (neighbour alone)"


def model_order(model: str | None) -> tuple[int, str]:
    """Sort key: no server first, registered models in registry order, the rest by name."""
    names = registered_models()
    if model is None:
        return (-1, "")
    return (names.index(model), "") if model in names else (len(names), model)


def format_duration_s(seconds: float) -> str:
    """0.0001 -> '100us', 0.001 -> '1ms', 2.0 -> '2s'."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale or unit == "us":
            return f"{seconds / scale:g}{unit}"
    return f"{seconds:g}s"


def param_unit(model: str, name: str) -> str:
    from iobench.servers.registry import all_models

    cls = all_models().get(model)
    for param in getattr(cls, "params", ()):
        if param.name == name:
            return param.unit
    return ""


def format_params(model: str, params: dict[str, Any]) -> str:
    """'interval=1ms' for a seconds parameter, 'name=value' otherwise."""
    parts = []
    for name, value in sorted(params.items()):
        if isinstance(value, int | float) and param_unit(model, name) == "s":
            parts.append(f"{name}={format_duration_s(value)}")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(parts)


def series_sort_key(group: CellGroup) -> tuple[Any, ...]:
    """Registry order, then parameters by value (100us before 1ms before 10ms)."""
    params = tuple((name, (0, value, "") if isinstance(value, int | float) else (1, 0, str(value)))
                   for name, value in sorted(group.params.items()))
    return (model_order(group.model), params)


def series_label(group: CellGroup) -> str:
    """'select', or 'poll-sleep (interval=1ms)' when the cell sets parameters."""
    if group.model is None:
        return NO_SERVER_LABEL
    params = format_params(group.model, group.params)
    return f"{group.model} ({params})" if params else str(group.model)


def style(metric: str) -> Metric:
    """How ``metric`` is headed and printed: its declaration on the cell record
    (iobench.benchmarks.results.record.Metrics); KeyError for a name that is not one."""
    return metric_info(metric)


def format_value(metric: str, value: float) -> str:
    """One number in the metric's unit, thousands separated, fixed decimals."""
    spec = style(metric)
    return f"{value * spec.scale:,.{spec.digits}f}"


def format_spread(metric: str, spread: Spread) -> str:
    """'12,345 (12,001-12,800)': figure (min-max); only the figure for one repetition."""
    figure = format_value(metric, spread.value)
    if spread.count < 2:
        return figure
    return f"{figure} ({format_value(metric, spread.low)}-{format_value(metric, spread.high)})"
