"""Profiles: the benchmark matrix as TOML, checked, and expanded into cells.

A profile is a small TOML file (the built-in ones are ``benchmarks/profiles/
quick.toml`` and ``full.toml``) with one table per scenario. Every key is
checked against :data:`SCHEMA`, so a typo gives an error that names the key
instead of a silently different matrix. :func:`expand` turns a checked
profile into :class:`Cell` objects whose ``key`` is stable across runs, which
is what ``--resume`` and ``iobench compare`` match on.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench.common.errors import UsageError
from iobench.servers.base import ParamError, ServerModel
from iobench.servers.registry import get_model

PROFILE_DIR = Path(__file__).with_name("profiles")
BUILTIN_PROFILES = ("quick", "full")
SCENARIOS = ("idle", "closed", "open", "interval", "neighbour", "scale", "syscalls", "article")
# The scenarios that run reference models (ServerModel.reference); every other
# scenario leaves them out, whatever models the run has.
REFERENCE_SCENARIOS = ("article",)
NEIGHBOUR_PHASES = ("solo", "idle", "load")

Check = Callable[[str, Any], Any]


def _number(minimum: float, maximum: float, *, integer: bool = False,
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


def _list_of(item: Check, *, may_be_empty: bool = False) -> Check:
    def check(where: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or (not value and not may_be_empty):
            raise ProfileError(f"{where} must be a non-empty list, got {value!r}")
        if len(value) > MAX_LIST_ITEMS:
            raise ProfileError(f"{where} has {len(value)} values; at most {MAX_LIST_ITEMS}")
        return [item(f"{where}[{i}]", v) for i, v in enumerate(value)]

    return check


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where} must be a string, got {value!r}")
    return value


def _names(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ProfileError(f"{where} must be a list of model names, got {value!r}")
    return [_text(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _phases(where: str, value: Any) -> list[str]:
    phases = _names(where, value)
    for phase in phases:
        if phase not in NEIGHBOUR_PHASES:
            raise ProfileError(f"{where}: unknown phase {phase!r} "
                               f"(valid: {', '.join(NEIGHBOUR_PHASES)})")
    return phases


def _params(where: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table of model = {{param = value}}")
    for model, params in value.items():
        if not isinstance(params, dict):
            raise ProfileError(f"{where}.{model} must be a table of parameters, got {params!r}")
    return value


def _variants(where: str, value: Any) -> dict[str, list[dict[str, Any]]]:
    """``model = [{param = value}, ...]``: more parameter sets of a model, run beside it."""
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table of model = [{{param = value}}, ...]")
    for model, variants in value.items():
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            raise ProfileError(f"{where}.{model} must be a list of parameter tables, "
                               f"got {variants!r}")
    return value


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

DURATION = _number(0, MAX_SECONDS, strict=True)
WARMUP = _number(0, MAX_SECONDS)
RATE = _number(0, MAX_RATE_RPS, strict=True)
COUNT = _number(1, MAX_CONNECTIONS, integer=True)
CONNECTIONS = _number(0, MAX_CONNECTIONS, integer=True)
SIZE = _number(1, MAX_SIZE_BYTES, integer=True)
FRACTION = _number(0, MAX_PEAK_FRACTION, strict=True)
# A swept model parameter (poll-sleep's interval); the model checks its own range.
SWEPT_VALUE = _number(0, MAX_SECONDS, strict=True)

# section -> key -> (check, default). None as a default means "required".
# The top level ("") holds the run-wide keys.
SCHEMA: dict[str, dict[str, tuple[Check, Any]]] = {
    "": {
        "description": (_text, ""),
        "repeat": (_number(1, MAX_REPEAT, integer=True), 1),
        "models": (_names, []),
        "cell_timeout_s": (DURATION, 20.0),
    },
    "params": {},  # free-form: model name -> its parameters, checked by the model
    "loadgen": {
        "workers": (_number(1, MAX_LOADGEN_WORKERS, integer=True), 1),
        "timeout_s": (_number(0, MAX_LOADGEN_TIMEOUT_S, strict=True), 5.0),
    },
    "idle": {
        "connections": (_list_of(CONNECTIONS), [0, 100]),
        "duration_s": (DURATION, 1.0),
    },
    "closed": {
        "connections": (_list_of(COUNT), [16]),
        "sizes_bytes": (_list_of(SIZE), [64]),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
        # More parameter sets of a model, measured beside its own (io-uring's
        # oneshot style beside multishot): model -> list of parameter tables.
        "variants": (_variants, {}),
    },
    "open": {
        # Exactly one of the two is non-empty; the stored matrix holds both,
        # the other as [], and --resume checks it again.
        "rates_rps": (_list_of(RATE, may_be_empty=True), []),
        "peak_fractions": (_list_of(FRACTION, may_be_empty=True), []),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    },
    "interval": {
        "model": (_text, "poll-sleep"),
        "param": (_text, "interval"),
        "values": (_list_of(SWEPT_VALUE), [0.0001, 0.001, 0.01]),
        "references": (_names, []),
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    },
    "neighbour": {
        "phases": (_phases, list(NEIGHBOUR_PHASES)),
        "load_models": (_names, []),
        "duration_s": (DURATION, 1.0),
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "warmup_s": (WARMUP, 0.3),
    },
    # A few active connections beside many idle ones: the C10K axis.
    "scale": {
        "idle_connections": (_list_of(CONNECTIONS), [0, 10000]),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        # open-loop cells at these rates, for latency; [] for none
        "rates_rps": (_list_of(RATE, may_be_empty=True), []),
        "duration_s": (DURATION, 1.0),
        "warmup_s": (WARMUP, 0.5),
    },
    # System calls counted by strace -c -f, for machines without perf: open loop
    # at a low rate, in cells of their own (strace slows every call it sees).
    "syscalls": {
        "rate_rps": (RATE, 200.0),
        "connections": (COUNT, 16),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.5),
        "warmup_s": (WARMUP, 0.3),
    },
    # The article's code as printed (the reference model `article`) beside the
    # loop done correctly (docs/article.md).
    "article": {
        "reference": (_text, "busy-poll"),
        # Each idle CPU window: with no client, with one idle client.
        "idle_duration_s": (DURATION, 1.0),
        # How long a probe's request may go unanswered before it counts as
        # unanswered; the verdicts need at least a second.
        "wait_bound_s": (_number(1.0, 60.0), 1.0),
        # What the client that does not read sends at most.
        "non_reader_bytes": (SIZE, 8 * 1024 * 1024),
        # The closed-loop cells.
        "connections": (COUNT, 4),
        "size_bytes": (SIZE, 64),
        "duration_s": (DURATION, 1.0),
        "warmup_s": (WARMUP, 0.2),
    },
}


class ProfileError(UsageError):
    """A profile that cannot be run: unreadable, or a key that is unknown or wrong."""


@dataclass
class Profile:
    """A checked profile: the run-wide settings and the scenarios it has, with defaults."""

    name: str
    spec: dict[str, Any]

    @property
    def repeat(self) -> int:
        return int(self.spec["repeat"])

    def section(self, name: str) -> dict[str, Any] | None:
        return self.spec.get(name)


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


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a TOML file by path, checked against SCHEMA."""
    if name_or_path in BUILTIN_PROFILES:
        path, name = PROFILE_DIR / f"{name_or_path}.toml", name_or_path
    else:
        path, name = Path(name_or_path), Path(name_or_path).stem
        if not path.is_file():
            raise ProfileError(f"no profile {name_or_path!r}: not one of "
                               f"{', '.join(BUILTIN_PROFILES)} and no such file")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from None
    return Profile(name, check_spec(raw, str(path)))


def check_spec(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with every key checked and defaults filled in; ProfileError names a bad key."""
    spec: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SCHEMA and key:
            if not isinstance(value, dict):
                raise ProfileError(f"{where}: {key!r} must be a table ([{key}])")
            spec[key] = _check_section(key, value, where)
        elif key in SCHEMA[""]:
            spec[key] = SCHEMA[""][key][0](f"{where}: key {key!r}", value)
        else:
            valid = ", ".join([*SCHEMA[""], *(f"[{s}]" for s in SCHEMA if s)])
            raise ProfileError(f"{where}: unknown key {key!r} (valid: {valid})")
    for key, (_, default) in SCHEMA[""].items():
        spec.setdefault(key, default)
    if "loadgen" not in spec:
        spec["loadgen"] = _check_section("loadgen", {}, where)
    if not any(s in spec for s in SCENARIOS):
        raise ProfileError(f"{where}: no scenario; add at least one of "
                           + ", ".join(f"[{s}]" for s in SCENARIOS))
    if "open" in spec and bool(spec["open"]["rates_rps"]) == bool(spec["open"]["peak_fractions"]):
        raise ProfileError(f"{where}: [open] needs exactly one of 'open.rates_rps' and "
                           "'open.peak_fractions'")
    if "open" in spec and spec["open"]["peak_fractions"] and "closed" not in spec:
        raise ProfileError(f"{where}: 'open.peak_fractions' needs a [closed] section "
                           "to measure the peak")
    return spec


def _check_section(section: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
    if section == "params":
        return _params(f"{where}: [params]", raw)
    schema = SCHEMA[section]
    checked = {}
    for key, value in raw.items():
        if key not in schema:
            raise ProfileError(f"{where}: unknown key '{section}.{key}' "
                               f"(valid in [{section}]: {', '.join(schema)})")
        checked[key] = schema[key][0](f"{where}: '{section}.{key}'", value)
    for key, (_, default) in schema.items():
        checked.setdefault(key, default)
    return checked


def select_models(profile: Profile, requested: Iterable[str] | None,
                  registry: dict[str, type[ServerModel]], available: Iterable[str]) -> list[str]:
    """The models to run: ``--models``, else the profile's list, else every available one.

    A name nobody registered is a usage error wherever it appears in the
    profile, and so are parameters a model does not have; asking explicitly
    for a model that cannot run on this machine is one too.
    """
    available = list(available)
    named = {"models": profile.spec["models"]}
    for section, key in (("interval", "references"), ("neighbour", "load_models")):
        if profile.section(section) is not None:
            named[f"{section}.{key}"] = profile.spec[section][key]
    if profile.section("interval") is not None:
        named["interval.model"] = [profile.spec["interval"]["model"]]
    named["params"] = list(profile.spec.get("params", {}))
    variants = (profile.section("closed") or {}).get("variants", {})
    named["closed.variants"] = list(variants)
    for where, names in named.items():
        for name in names:
            if name not in registry:
                raise ProfileError(f"unknown model {name!r} in '{where}'; "
                                   f"valid models: {', '.join(registry)}")
    for name, params in profile.spec.get("params", {}).items():
        _check_model_params(registry[name], params, f"params.{name}")
    for name, params_list in variants.items():
        for index, params in enumerate(params_list):
            _check_model_params(registry[name], params, f"closed.variants.{name}[{index}]")
    if profile.section("interval") is not None:
        interval = profile.spec["interval"]
        _check_model_params(registry[interval["model"]],
                            {interval["param"]: interval["values"][0]}, "interval.param")
    names = list(requested or []) or list(profile.spec["models"])
    if not names:
        return available
    for name in names:
        if name not in registry:
            raise ProfileError(f"unknown model {name!r}; valid models: {', '.join(registry)}")
        if name not in available:
            raise ProfileError(f"model {name!r} is not available on this machine: "
                               f"{registry[name].unavailable_reason()}")
    return list(dict.fromkeys(names))


def _check_model_params(cls: type[ServerModel], params: dict[str, Any], where: str) -> None:
    try:
        cls.resolve_params(params)
    except ParamError as exc:
        raise ProfileError(f"'{where}': {exc}") from None


def model_label(model: str, params: dict[str, Any]) -> str:
    """``poll-sleep(interval=0.01)``: a model and its non-default parameters, for keys."""
    if not params:
        return model
    return f"{model}({','.join(f'{k}={v}' for k, v in sorted(params.items()))})"


def expand(profile: Profile, models: list[str]) -> list[Cell]:
    """Every cell of the matrix, repetition by repetition, in the order they run.

    Repetitions are the outer loop, so a slow drift of the machine spreads over
    all cells instead of biasing the last ones. Within a repetition the closed
    cells come before the open ones that take a fraction of their peak.
    """
    cells = []
    for repetition in range(profile.repeat):
        for scenario in SCENARIOS:
            section = profile.section(scenario)
            if section is not None:
                runs = models if scenario in REFERENCE_SCENARIOS else [
                    m for m in models if get_model(m).reference is None]
                for cell in _EXPANDERS[scenario](section, runs, profile.spec.get("params", {})):
                    cell.repetition = repetition
                    cells.append(cell)
    return cells


def _idle(section: dict[str, Any], models: list[str], params: dict[str, Any]) -> Iterable[Cell]:
    for model in models:
        for connections in section["connections"]:
            p = params.get(model, {})
            yield Cell(f"idle/{model_label(model, p)}/c{connections}", "idle", model, p, "idle",
                       connections, duration_s=section["duration_s"])


def _closed(section: dict[str, Any], models: list[str], params: dict[str, Any]) -> Iterable[Cell]:
    for model in models:
        own = params.get(model, {})
        variants = [{**own, **variant} for variant in section.get("variants", {}).get(model, [])]
        for p in (own, *variants):
            for size in section["sizes_bytes"]:
                for connections in section["connections"]:
                    yield Cell(f"closed/{model_label(model, p)}/c{connections}/s{size}",
                               "closed", model, p, "closed", connections, size_bytes=size,
                               duration_s=section["duration_s"], warmup_s=section["warmup_s"])


def _open(section: dict[str, Any], models: list[str], params: dict[str, Any]) -> Iterable[Cell]:
    connections, size = section["connections"], section["size_bytes"]
    for model in models:
        p = params.get(model, {})
        label = model_label(model, p)
        common = {"duration_s": section["duration_s"], "warmup_s": section["warmup_s"],
                  "size_bytes": size}
        for rate in section["rates_rps"]:
            yield Cell(f"open/{label}/r{rate:g}/c{connections}/s{size}", "open", model, p,
                       "open", connections, rate_rps=rate, **common)
        for fraction in section["peak_fractions"]:
            yield Cell(f"open/{label}/f{fraction:g}/c{connections}/s{size}", "open", model, p,
                       "open", connections, peak_fraction=fraction, **common)


def _interval(section: dict[str, Any], models: list[str],
              params: dict[str, Any]) -> Iterable[Cell]:
    swept = section["model"]
    runs: list[tuple[str, dict[str, Any]]] = []
    if swept in models:
        runs += [(swept, {**params.get(swept, {}), section["param"]: value})
                 for value in section["values"]]
    runs += [(ref, params.get(ref, {})) for ref in section["references"] if ref in models]
    rate, connections, size = section["rate_rps"], section["connections"], section["size_bytes"]
    for model, p in runs:
        yield Cell(f"interval/{model_label(model, p)}/r{rate:g}/c{connections}/s{size}",
                   "interval", model, p, "open", connections, size_bytes=size, rate_rps=rate,
                   duration_s=section["duration_s"], warmup_s=section["warmup_s"])


def _neighbour(section: dict[str, Any], models: list[str],
               params: dict[str, Any]) -> Iterable[Cell]:
    phases, duration = section["phases"], section["duration_s"]
    if "solo" in phases:
        yield Cell("neighbour/solo", "neighbour", None, {}, "idle", 0, phase="solo",
                   duration_s=duration)
    load_models = section["load_models"] or models
    rate, connections, size = section["rate_rps"], section["connections"], section["size_bytes"]
    for model in models:
        p = params.get(model, {})
        label = model_label(model, p)
        if "idle" in phases:
            yield Cell(f"neighbour/{label}/idle", "neighbour", model, p, "idle", 0,
                       phase="idle", duration_s=duration)
        if "load" in phases and model in load_models:
            yield Cell(f"neighbour/{label}/load/r{rate:g}/c{connections}/s{size}", "neighbour",
                       model, p, "open", connections, size_bytes=size, rate_rps=rate,
                       phase="load", duration_s=duration, warmup_s=section["warmup_s"])


def _scale(section: dict[str, Any], models: list[str], params: dict[str, Any]) -> Iterable[Cell]:
    """Per model, each idle count in increasing order, closed loop then the open rates.

    Increasing, so a model's small counts are measured before its large ones
    can fail or be skipped.
    """
    connections, size = section["connections"], section["size_bytes"]
    common = {"duration_s": section["duration_s"], "warmup_s": section["warmup_s"],
              "size_bytes": size}
    for model in models:
        p = params.get(model, {})
        label = model_label(model, p)
        for idle in sorted(section["idle_connections"]):
            yield Cell(f"scale/{label}/i{idle}/c{connections}/s{size}", "scale", model, p,
                       "closed", connections, idle=idle, **common)
            for rate in section["rates_rps"]:
                yield Cell(f"scale/{label}/i{idle}/r{rate:g}/c{connections}/s{size}", "scale",
                           model, p, "open", connections, rate_rps=rate, idle=idle, **common)


def _syscalls(section: dict[str, Any], models: list[str],
              params: dict[str, Any]) -> Iterable[Cell]:
    rate, connections, size = section["rate_rps"], section["connections"], section["size_bytes"]
    for model in models:
        p = params.get(model, {})
        yield Cell(f"syscalls/{model_label(model, p)}/r{rate:g}/c{connections}/s{size}",
                   "syscalls", model, p, "open", connections, size_bytes=size, rate_rps=rate,
                   duration_s=section["duration_s"], warmup_s=section["warmup_s"])


def _article(section: dict[str, Any], models: list[str],
             params: dict[str, Any]) -> Iterable[Cell]:
    from iobench.benchmarks.run import article_scenario

    return article_scenario.expand(section, models, params)


_EXPANDERS: dict[str, Callable[[dict[str, Any], list[str], dict[str, Any]], Iterable[Cell]]] = {
    "idle": _idle, "closed": _closed, "open": _open, "interval": _interval,
    "neighbour": _neighbour, "scale": _scale, "syscalls": _syscalls, "article": _article,
}
