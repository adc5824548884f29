"""Beyond the article: what watching many connections costs (the scale scenario).

The article's first and fourth claims are both about watching connections: a
loop that tries every socket, and select() watching many. The scale scenario
measures it directly: 16 active connections beside a growing crowd of idle
ones. A model that scans every connection it watches on every pass (busy-poll,
poll-sleep, select, poll, sigio) pays for the crowd on every request; one the
kernel tells which connections are ready (epoll, uvloop, io-uring) does not.
As with the claims, each verdict is computed from the run's figures against the
thresholds below, and says why; the evidence quotes the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from iobench.benchmarks.report.claims import (
    THROUGHPUT_DISTRUST_FLAGS,
    ClaimResult,
    Missing,
    Verdict,
    measured,
)
from iobench.benchmarks.report.presentation import (
    format_spread,
    plural,
    series_label,
    series_sort_key,
)
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.servers.base import Watching
from iobench.servers.registry import all_models

SCENARIO = "scale"


def either(names: tuple[str, ...]) -> str:
    """'epoll, uvloop or io-uring'."""
    return " or ".join(filter(None, [", ".join(names[:-1]), *names[-1:]]))


def models_that(watching: Watching) -> tuple[str, ...]:
    """The registered models that watch their connections so (their own metadata),
    in registry order: those that scan every one on every pass, or those told
    which are ready."""
    return tuple(name for name, model in all_models().items() if model.watching == watching)


# Scanning: CPU per request at the most idle connections at least this many
# times the 0-idle figure (Gammo, Brecht et al., OLS 2004: select and poll lose
# up to 79% of their throughput at 10,000 idle connections).
SCAN_GROWTH_MIN = 3.0
# Waiting: within this factor of the 0-idle figure; a scanning model that stays
# within it has not grown at all.
WAIT_GROWTH_MAX = 1.5
COST_METRIC = "cpu_us_per_request"
# Memory per idle connection: PSS where the run has it, RSS otherwise (RSS
# counts pages a forked child shares with its parent once per child).
MEMORY_METRICS = ("pss_bytes", "peak_rss_bytes")
# The kernel's side of the same memory, from the server's cgroup.
KERNEL_METRIC = "kernel_bytes"


def idle_of(group: CellGroup) -> int:
    return group.idle_connections


def closed_series(run: Run) -> dict[str, list[CellGroup]]:
    """The closed-loop scale cells per model (series label), fewest idle connections first."""
    series: dict[str, list[CellGroup]] = {}
    for group in sorted(run.scenario(SCENARIO), key=series_sort_key):
        if group.mode == "closed" and group.model is not None:
            series.setdefault(series_label(group), []).append(group)
    for members in series.values():
        members.sort(key=idle_of)
    return series


@dataclass
class Growth:
    """A model's cost per request beside the most idle connections it served, vs none."""

    model: str
    base: CellGroup
    top: CellGroup
    base_cost: Spread
    top_cost: Spread

    @property
    def ratio(self) -> float:
        return self.top_cost.value / self.base_cost.value if self.base_cost.value else \
            float("inf")

    def line(self) -> str:
        return (f"{self.model}: {format_spread(COST_METRIC, self.base_cost)} us per request "
                f"with no idle connection, {format_spread(COST_METRIC, self.top_cost)} us "
                f"beside {plural(self.top.idle_connections, 'idle connection')} "
                f"({self.ratio:.1f}x)" + cells_flagged(self.base, self.top))


def cells_flagged(*groups: CellGroup) -> str:
    """' [0 idle: cpu_contended; 10,000 idle: cpu_contended]': the flags of quoted cells."""
    parts = [f"{g.idle_connections:,} idle: {', '.join(g.flags)}" for g in groups if g.flags]
    return f" [{'; '.join(parts)}]" if parts else ""


def growth(model: str, members: list[CellGroup], evidence: list[str]) -> Growth | None:
    """The model's cost growth to its most idle successful cell; failures go to evidence."""
    base = next((g for g in members if idle_of(g) == 0), None)
    if base is None:
        evidence.append(f"{model}: no cell without idle connections")
        return None
    for group in members:
        if group.failed and idle_of(group) > 0:
            evidence.append(f"{model} beside {plural(idle_of(group), 'idle connection')}: "
                            f"failed ({'; '.join(group.failures)})")
    tops = [g for g in members if idle_of(g) > 0 and not g.failed]
    if not tops:
        return None
    try:
        base_cost = measured(base, COST_METRIC, f"{model} with no idle connection",
                             THROUGHPUT_DISTRUST_FLAGS)
        top_cost = measured(tops[-1], COST_METRIC, f"{model} beside idle connections",
                            THROUGHPUT_DISTRUST_FLAGS)
    except Missing as why:
        evidence.append(f"{model}: {why}")
        return None
    found = Growth(model, base, tops[-1], base_cost, top_cost)
    evidence.append(found.line())
    return found


def scanning_cost_grows(run: Run) -> ClaimResult:
    claim = "a model that scans every connection pays for idle ones on every request"
    evidence: list[str] = []
    series = closed_series(run)
    found = [g for model in models_that(Watching.SCANS) if model in series
             if (g := growth(model, series[model], evidence)) is not None]
    if not found:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           "no scanning model has both a 0-idle and an idle-crowd result",
                           evidence)
    rule = ", ".join(f"{g.model} {g.ratio:.1f}x" for g in found)
    flat = [g for g in found if g.ratio < WAIT_GROWTH_MAX]
    if flat:
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD,
                           f"CPU per request grew by {rule}; "
                           f"{', '.join(g.model for g in flat)} stayed within "
                           f"{WAIT_GROWTH_MAX:g}x", evidence)
    if all(g.ratio >= SCAN_GROWTH_MIN for g in found):
        return ClaimResult(claim, Verdict.HOLDS,
                           f"CPU per request grew by {rule} (at least {SCAN_GROWTH_MIN:g}x)",
                           evidence)
    return ClaimResult(claim, Verdict.INCONCLUSIVE,
                       f"CPU per request grew by {rule}: more than {WAIT_GROWTH_MAX:g}x, but "
                       f"not all by the {SCAN_GROWTH_MIN:g}x needed to call it", evidence)


def waiting_cost_holds(run: Run) -> ClaimResult:
    claim = "a model the kernel tells which connections are ready does not"
    evidence: list[str] = []
    series = closed_series(run)
    found = [g for model in models_that(Watching.IS_TOLD) if model in series
             if (g := growth(model, series[model], evidence)) is not None]
    if not found:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           f"no {either(models_that(Watching.IS_TOLD))} result both "
                           "without and beside idle connections", evidence)
    rule = ", ".join(f"{g.model} {g.ratio:.2f}x" for g in found)
    grown = [g for g in found if g.ratio > WAIT_GROWTH_MAX]
    if grown:
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD,
                           f"CPU per request changed by {rule}; "
                           f"{', '.join(g.model for g in grown)} past {WAIT_GROWTH_MAX:g}x",
                           evidence)
    missing = [m for m in models_that(Watching.IS_TOLD) if m not in {g.model for g in found}]
    why = f"CPU per request changed by {rule} (within {WAIT_GROWTH_MAX:g}x)"
    if missing:
        why += f"; no result for {', '.join(missing)}"
    return ClaimResult(claim, Verdict.HOLDS, why, evidence)


@dataclass(frozen=True)
class MemoryPerConnection:
    """Memory one idle connection adds to a model's server: (top - base) / idle.

    ``bytes_per_connection`` is the process's side (its pages); the kernel's
    (sockets, kernel stacks...) is ``kernel_bytes_per_connection``, None where
    the run could not count it.
    """

    model: str
    bytes_per_connection: float
    metric: str  # pss_bytes or peak_rss_bytes
    idle: int
    kernel_bytes_per_connection: float | None = None

    @property
    def total_bytes_per_connection(self) -> float | None:
        """The process's and the kernel's together; None without the kernel's."""
        if self.kernel_bytes_per_connection is None:
            return None
        return self.bytes_per_connection + self.kernel_bytes_per_connection


def memory_per_connection(run: Run) -> list[MemoryPerConnection]:
    """Per model, from its 0-idle cell and its most idle successful one, by PSS if measured,
    and the kernel's memory from the same two cells where it was counted.

    A difference in the same run, so the interpreter, libraries and the
    active connections cancel out; a null figure is left out, never taken as 0.
    """
    found = []
    for model, members in closed_series(run).items():
        base = next((g for g in members if idle_of(g) == 0 and not g.failed), None)
        tops = [g for g in members if idle_of(g) > 0 and not g.failed]
        if base is None or not tops:
            continue
        top = tops[-1]
        kernel_low, kernel_high = base.metric(KERNEL_METRIC), top.metric(KERNEL_METRIC)
        kernel = ((kernel_high.value - kernel_low.value) / idle_of(top)
                  if kernel_low is not None and kernel_high is not None else None)
        for metric in MEMORY_METRICS:
            low, high = base.metric(metric), top.metric(metric)
            if low is not None and high is not None:
                found.append(MemoryPerConnection(model, (high.value - low.value) / idle_of(top),
                                                 metric, idle_of(top), kernel))
                break
    return found


# (key, figures, judge), as in claims.CLAIMS.
SCALE_VERDICTS = (
    ("scale_scanning_cost_grows", ("scale",), scanning_cost_grows),
    ("scale_waiting_cost_flat", ("scale",), waiting_cost_holds),
)


def judge_scale(run: Run) -> list[ClaimResult]:
    """The scale verdicts (empty when the run has no scale scenario)."""
    if not run.scenario(SCENARIO):
        return []
    results = []
    for key, figures, judge in SCALE_VERDICTS:
        result = judge(run)
        result.key, result.figures = key, figures
        results.append(result)
    return results
