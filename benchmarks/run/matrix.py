"""Profiles: the benchmark matrix as TOML, checked, and expanded into cells.

A profile is a small TOML file (the built-in ones are
``benchmarks/run/profiles/quick.toml`` and ``full.toml``) with one table per
scenario. Every key is checked against its scenario's declared keys
(``iobench.benchmarks.run.scenarios``) or the run-wide ones in :data:`RUN_KEYS`,
so a typo gives an error that names the key instead of a silently different
matrix. :func:`expand` turns a checked profile into :class:`Cell` objects whose
``key`` is stable across runs, which is what ``--resume`` and
``iobench compare`` match on. Nothing here knows a scenario by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iobench.benchmarks.results.scenarios import SCENARIOS
from iobench.benchmarks.run.cells import Cell, model_label
from iobench.benchmarks.run.checks import (
    DURATION,
    MAX_CELLS,
    MAX_LOADGEN_TIMEOUT_S,
    MAX_LOADGEN_WORKERS,
    MAX_PLANNED_S,
    MAX_REPEAT,
    Keys,
    ProfileError,
    names,
    number,
    text,
)
from iobench.benchmarks.run.checks import (
    params as params_table,
)
from iobench.benchmarks.run.scenario import RunScenario
from iobench.benchmarks.run.scenarios import RUN_SCENARIOS
from iobench.servers.base import ParamError, ServerModel
from iobench.servers.registry import get_model

__all__ = ["BUILTIN_PROFILES", "MAX_REPEAT", "PROFILE_DIR", "RUN_KEYS", "SCENARIOS",
           "SEED_LIMIT", "Cell", "Profile", "ProfileError", "check_size", "check_spec", "count",
           "expand", "load_profile", "model_label", "select_models"]

PROFILE_DIR = Path(__file__).with_name("profiles")
BUILTIN_PROFILES = ("quick", "full", "precision-probe")
# The seed that orders the models of each round (rounds.py), drawn when a
# profile names none and recorded in the stored matrix.
SEED_LIMIT = 2 ** 31


def optional(check: Any) -> Any:
    """``check``, or None as it is: a key whose default is "not given" (a stored matrix
    holds it as null, and --resume checks it again)."""
    def checked(where: str, value: Any) -> Any:
        return None if value is None else check(where, value)
    return checked


def rounds_table(where: str, value: Any) -> dict[str, int]:
    """``rounds = {closed = 3}``: a scenario's cells measured in at least this many rounds
    (benchmarks/run/rounds.py), beyond ``repeat``."""
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table of scenario = rounds, got {value!r}")
    for scenario, count in value.items():
        if scenario not in SCENARIOS:
            raise ProfileError(f"{where}: unknown scenario {scenario!r} "
                               f"(valid: {', '.join(SCENARIOS)})")
        number(1, MAX_REPEAT, integer=True)(f"{where}.{scenario}", count)
    return dict(value)


# The run-wide keys at the top level, and the run-wide sections: key -> (check,
# default). [params] is free-form (model name -> its parameters, checked by
# the model); every other section is a scenario's.
RUN_KEYS: Keys = {
    "description": (text, ""),
    "repeat": (number(1, MAX_REPEAT, integer=True), 1),
    "models": (names, []),
    "cell_timeout_s": (DURATION, 20.0),
    "rounds": (rounds_table, {}),
    "seed": (optional(number(0, SEED_LIMIT - 1, integer=True)), None),
    # iobench run --precision: the headline metrics it narrows (default: all of
    # them), and its time budget when --budget is not given (default 20 minutes).
    "precision_metrics": (names, []),
    "precision_budget_s": (optional(DURATION), None),
}
SECTIONS: dict[str, Keys] = {
    "loadgen": {
        "workers": (number(1, MAX_LOADGEN_WORKERS, integer=True), 1),
        "timeout_s": (number(0, MAX_LOADGEN_TIMEOUT_S, strict=True), 5.0),
    },
    **{name: scenario.keys for name, scenario in RUN_SCENARIOS.items()},
}


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


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a TOML file by path, checked key by key."""
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
        if key in SECTIONS or key == "params":
            if not isinstance(value, dict):
                raise ProfileError(f"{where}: {key!r} must be a table ([{key}])")
            spec[key] = _check_section(key, value, where)
        elif key in RUN_KEYS:
            spec[key] = RUN_KEYS[key][0](f"{where}: key {key!r}", value)
        else:
            sections = ["params", *SECTIONS]
            valid = ", ".join([*RUN_KEYS, *(f"[{s}]" for s in sections)])
            raise ProfileError(f"{where}: unknown key {key!r} (valid: {valid})")
    for key, (_, default) in RUN_KEYS.items():
        spec.setdefault(key, default)
    if "loadgen" not in spec:
        spec["loadgen"] = _check_section("loadgen", {}, where)
    if not any(s in spec for s in SCENARIOS):
        raise ProfileError(f"{where}: no scenario; add at least one of "
                           + ", ".join(f"[{s}]" for s in SCENARIOS))
    for name, scenario in RUN_SCENARIOS.items():
        if name in spec:
            scenario.check(spec, where)
    return spec


def _check_section(section: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
    if section == "params":
        return params_table(f"{where}: [params]", raw)
    keys = SECTIONS[section]
    checked = {}
    for key, value in raw.items():
        if key not in keys:
            raise ProfileError(f"{where}: unknown key '{section}.{key}' "
                               f"(valid in [{section}]: {', '.join(keys)})")
        checked[key] = keys[key][0](f"{where}: '{section}.{key}'", value)
    for key, (_, default) in keys.items():
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
    given: list[tuple[str, dict[str, Any], str]] = []
    for name, scenario in RUN_SCENARIOS.items():
        section = profile.section(name)
        if section is not None:
            named.update(scenario.named_models(section))
            given += scenario.model_params(section)
    named["params"] = list(profile.spec.get("params", {}))
    for where, listed in named.items():
        for name in listed:
            if name not in registry:
                raise ProfileError(f"unknown model {name!r} in '{where}'; "
                                   f"valid models: {', '.join(registry)}")
    for name, model_params in profile.spec.get("params", {}).items():
        _check_model_params(registry[name], model_params, f"params.{name}")
    for name, model_params, where in given:
        _check_model_params(registry[name], model_params, where)
    chosen = list(requested or []) or list(profile.spec["models"])
    if not chosen:
        return available
    for name in chosen:
        if name not in registry:
            raise ProfileError(f"unknown model {name!r}; valid models: {', '.join(registry)}")
        if name not in available:
            raise ProfileError(f"model {name!r} is not available on this machine: "
                               f"{registry[name].unavailable_reason()}")
    return list(dict.fromkeys(chosen))


def _check_model_params(cls: type[ServerModel], params: dict[str, Any], where: str) -> None:
    try:
        cls.resolve_params(params)
    except ParamError as exc:
        raise ProfileError(f"'{where}': {exc}") from None


# What a cell costs beside its measured time: start the server, connect, stop.
CELL_OVERHEAD_S = 1.0


def models_for(scenario: RunScenario, models: list[str]) -> list[str]:
    """The run's models a scenario gets: a reference model (the article's code as
    printed) only in a scenario made for it, whatever models the run has."""
    if scenario.references:
        return models
    return [model for model in models if get_model(model).reference is None]


def count(profile: Profile, models: list[str]) -> tuple[int, float]:
    """The cells :func:`expand` would build and the seconds they would take, computed
    from the lengths of the profile's lists (each scenario's ``count``), without
    building one."""
    cells, seconds = 0, 0.0
    for name, scenario in RUN_SCENARIOS.items():
        section = profile.section(name)
        if section is not None:
            n = scenario.count(section, models_for(scenario, models))
            cells += n
            seconds += n * (section["duration_s"] + section.get("warmup_s", 0.0)
                            + CELL_OVERHEAD_S)
    return cells * profile.repeat, seconds * profile.repeat


def check_size(profile: Profile, models: list[str]) -> tuple[int, float]:
    """:func:`count`, or a ProfileError naming both figures and their limits when the
    matrix is too large to plan."""
    cells, seconds = count(profile, models)
    if cells > MAX_CELLS or seconds > MAX_PLANNED_S:
        raise ProfileError(f"profile {profile.name!r} expands to {cells:,} cells planned to "
                           f"take {seconds / 3600:,.1f} hours; the limits are {MAX_CELLS:,} "
                           f"cells and {MAX_PLANNED_S / 3600:,.0f} hours: shorten its lists "
                           "or its repetitions")
    return cells, seconds


def expand(profile: Profile, models: list[str]) -> list[Cell]:
    """Every cell of the matrix, repetition by repetition, in the order they run.

    Repetitions are the outer loop, so a slow drift of the machine spreads over
    all cells instead of biasing the last ones. Within a repetition the closed
    cells come before the open ones that take a fraction of their peak.
    """
    cells = []
    for repetition in range(profile.repeat):
        made: dict[str, Cell] = {}
        for name, scenario in RUN_SCENARIOS.items():
            section = profile.section(name)
            if section is not None:
                for cell in scenario.expand(section, models_for(scenario, models),
                                            profile.spec.get("params", {})):
                    cell.repetition = repetition
                    _check_unique(profile, made, cell)
                    cells.append(cell)
    return cells


def _check_unique(profile: Profile, made: dict[str, Cell], cell: Cell) -> None:
    """ProfileError if ``cell`` has the key of a cell already made (a variant that equals
    the model's own parameters, say): --resume and the report would take the two for
    repetitions of one point."""
    other = made.setdefault(cell.key, cell)
    if other is not cell:
        raise ProfileError(f"profile {profile.name!r}: [{cell.scenario}] makes the point "
                           f"{cell.key!r} twice (a value, variant or reference that repeats "
                           "another); give each point once")
