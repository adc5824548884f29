"""The scenarios a run can hold: one list of names, in the order a repetition runs them.

Each name has a run-side declaration, ``iobench.benchmarks.run.scenarios.NAME``
(its profile keys and their checks, its cells, how one of them runs), and a
report-side one, ``iobench.benchmarks.report.scenarios.NAME`` (its title,
metrics, figures and section). Both registries are read from this list, and
a test checks that each side declares every name and nothing else, so a
scenario cannot be half added. The order matters: within a repetition the
closed cells run before the open ones that take a fraction of their peak.
"""

from __future__ import annotations

import importlib
from typing import Protocol, TypeVar

SCENARIOS: tuple[str, ...] = (
    "idle",
    "closed",
    "open",
    "interval",
    "neighbour",
    "scale",
    "churn",
    "syscalls",
    "work",
    "article",
)

# What a cell of the article scenario holds: one probe of the article's code as
# printed (or of busy-poll beside it), named by the cell's phase.
ARTICLE_NO_CLIENT = "no-client"
ARTICLE_IDLE_CLIENT = "idle-client"
ARTICLE_SECOND_CLIENT = "second-client"
ARTICLE_CLOSED_LOOP = "closed-loop"
ARTICLE_NON_READER = "non-reader"
# The note a probe cell carries (what the probe saw, in one line), and the one a
# closed-loop cell carries when the server died once the load generator had left.
PROBE_NOTE = "probe"
SERVER_EXIT_NOTE = "server_exit"


class UnknownScenario(ValueError):
    """A scenario name that is not in :data:`SCENARIOS`."""


def check_scenario(name: str) -> str:
    """``name`` if it is a scenario; UnknownScenario naming the valid ones otherwise."""
    if name not in SCENARIOS:
        raise UnknownScenario(f"unknown scenario {name!r} (this iobench knows "
                              f"{', '.join(SCENARIOS)})")
    return name


class Declared(Protocol):
    """A scenario's declaration on either side: it knows its name."""

    @property
    def name(self) -> str: ...


D = TypeVar("D", bound=Declared)


def declarations(package: str, kind: type[D]) -> dict[str, D]:
    """Each name's ``SCENARIO`` from the module of that name in ``package``, in list order.

    A side of the registry (run or report) is one module a scenario: adding a
    scenario adds a module, never an entry in a table. TypeError if a module
    declares something else, or under another name.
    """
    found: dict[str, D] = {}
    for name in SCENARIOS:
        declared = importlib.import_module(f"{package}.{name}").SCENARIO
        if not isinstance(declared, kind) or declared.name != name:
            raise TypeError(f"{package}.{name}.SCENARIO must be a {kind.__name__} named "
                            f"{name!r}")
        found[name] = declared
    return found
