"""Short connections: what a new connection costs each model (the churn scenario).

Every model served K requests per connection (K = 1 and K = 10) in a closed
loop, each connection closed after its K-th response and another opened at
once. The cost that parts the models is the one per connection: an accept
and a registration for an event loop, a thread start for a thread per
connection, a fork for a process per connection; a pool of processes
started beforehand (prefork) pays none of that per connection. Each verdict
is computed from the run's figures against the thresholds below (see
docs/report.md) and says why; the evidence quotes the numbers.
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
from iobench.benchmarks.report.presentation import format_spread, series_label, series_sort_key
from iobench.benchmarks.results.loader import CellGroup, Run, Spread

SCENARIO = "churn"
COST_METRIC = "cpu_us_per_connection"
# A process per connection (fork) against a model that waits for readiness
# (epoll): at least this many times epoll's server CPU per connection, at
# K = 1. A fork copies page tables and runs a child's start and exit; an
# event loop's accept and registration are a few system calls.
PROCESS_COST_MIN = 5.0
# Below this the claim does not hold; between the two it is inconclusive.
PROCESS_COST_FAIL = 2.5
# Prefork does not pay it: its CPU per connection within this factor of epoll's.
PREFORK_COST_MAX = 2.0
# A thread per connection costs less than a process: at most this share of fork's.
THREAD_SHARE_MAX = 0.5
PROCESS_MODEL = "fork"
WAITING_MODEL = "epoll"
POOL_MODEL = "prefork"
THREAD_MODEL = "threads"
# Prefork: the busiest worker's share of the connections its workers accepted
# (one listener shared by every worker wakes them last in, first out; SO_REUSEPORT
# spreads by hash; EPOLLEXCLUSIVE sits between).
BALANCE_METRIC = "busiest_worker_share"
# K of the figures the verdicts read.
SHORTEST = 1


def per_connection_groups(run: Run, k: int) -> dict[str, CellGroup]:
    """The churn cells with K requests per connection, by series label (model and params)."""
    found: dict[str, CellGroup] = {}
    for group in sorted(run.scenario(SCENARIO), key=series_sort_key):
        if group.model is not None and group.requests_per_connection == k:
            found.setdefault(series_label(group), group)
    return found


def ks_of(run: Run) -> list[int]:
    """Every K the run measured, fewest requests per connection first."""
    return sorted({g.requests_per_connection for g in run.scenario(SCENARIO)
                   if g.requests_per_connection is not None})


def plain(run: Run, model: str, k: int = SHORTEST) -> CellGroup | None:
    """The model's churn cell at K without parameters (or its first, if all have some)."""
    groups = [g for g in run.scenario(SCENARIO)
              if g.model == model and g.requests_per_connection == k]
    return next((g for g in groups if not g.params), groups[0] if groups else None)


@dataclass
class Cost:
    """One model's server CPU per connection at K = 1."""

    model: str
    group: CellGroup
    spread: Spread

    def line(self) -> str:
        flags = f" [{', '.join(self.group.flags)}]" if self.group.flags else ""
        return (f"{series_label(self.group)}: {format_spread(COST_METRIC, self.spread)} us of "
                f"server CPU per connection at K = {SHORTEST}{flags}")


def cost(run: Run, model: str, evidence: list[str]) -> Cost | None:
    group = plain(run, model)
    try:
        spread = measured(group, COST_METRIC, f"{model} at K = {SHORTEST}",
                          THROUGHPUT_DISTRUST_FLAGS)
    except Missing as why:
        evidence.append(f"{model}: {why}")
        return None
    assert group is not None
    found = Cost(model, group, spread)
    evidence.append(found.line())
    return found


def ratio(a: Cost, b: Cost) -> float:
    return a.spread.value / b.spread.value if b.spread.value else float("inf")


def process_costs_more(run: Run) -> ClaimResult:
    claim = ("a process per connection (fork) costs the server at least "
             f"{PROCESS_COST_MIN:g}x the CPU per connection of a waiting model (epoll)")
    evidence: list[str] = []
    fork, epoll = cost(run, PROCESS_MODEL, evidence), cost(run, WAITING_MODEL, evidence)
    if fork is None or epoll is None:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           "no K = 1 result for both fork and epoll", evidence)
    found = ratio(fork, epoll)
    why = f"fork {found:.1f}x epoll's server CPU per connection"
    if found >= PROCESS_COST_MIN:
        return ClaimResult(claim, Verdict.HOLDS, f"{why} (at least {PROCESS_COST_MIN:g}x)",
                           evidence)
    if found < PROCESS_COST_FAIL:
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD,
                           f"{why} (under {PROCESS_COST_FAIL:g}x)", evidence)
    return ClaimResult(claim, Verdict.INCONCLUSIVE,
                       f"{why}: above {PROCESS_COST_FAIL:g}x, below the {PROCESS_COST_MIN:g}x "
                       "needed to call it", evidence)


def prefork_does_not_pay(run: Run) -> ClaimResult:
    claim = ("a pool of processes started beforehand (prefork) does not pay it: within "
             f"{PREFORK_COST_MAX:g}x epoll's CPU per connection")
    evidence: list[str] = []
    epoll = cost(run, WAITING_MODEL, evidence)
    prefork = [found for group in per_connection_groups(run, SHORTEST).values()
               if group.model == POOL_MODEL
               if (found := _group_cost(group, evidence)) is not None]
    if epoll is None or not prefork:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           "no K = 1 result for both prefork and epoll", evidence)
    rule = ", ".join(f"{series_label(p.group)} {ratio(p, epoll):.1f}x" for p in prefork)
    over = [p for p in prefork if ratio(p, epoll) > PREFORK_COST_MAX]
    if not over:
        return ClaimResult(claim, Verdict.HOLDS,
                           f"epoll's server CPU per connection times {rule} "
                           f"(within {PREFORK_COST_MAX:g}x)", evidence)
    if all(ratio(p, epoll) >= PROCESS_COST_MIN for p in over):
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD,
                           f"epoll's server CPU per connection times {rule}: as much as a "
                           "process per connection", evidence)
    names = ", ".join(series_label(p.group) for p in over)
    return ClaimResult(claim, Verdict.INCONCLUSIVE,
                       f"epoll's server CPU per connection times {rule}: past "
                       f"{PREFORK_COST_MAX:g}x for {names}", evidence)


def _group_cost(group: CellGroup, evidence: list[str]) -> Cost | None:
    try:
        spread = measured(group, COST_METRIC, f"{series_label(group)} at K = {SHORTEST}",
                          THROUGHPUT_DISTRUST_FLAGS)
    except Missing as why:
        evidence.append(f"{series_label(group)}: {why}")
        return None
    found = Cost(str(group.model), group, spread)
    evidence.append(found.line())
    return found


def thread_costs_less(run: Run) -> ClaimResult:
    claim = (f"a thread per connection costs at most {THREAD_SHARE_MAX:.0%} of a process per "
             "connection")
    evidence: list[str] = []
    threads, fork = cost(run, THREAD_MODEL, evidence), cost(run, PROCESS_MODEL, evidence)
    if threads is None or fork is None:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           "no K = 1 result for both threads and fork", evidence)
    found = ratio(threads, fork)
    why = f"threads {found:.2f}x fork's server CPU per connection"
    if found <= THREAD_SHARE_MAX:
        return ClaimResult(claim, Verdict.HOLDS, f"{why} (at most {THREAD_SHARE_MAX:g}x)",
                           evidence)
    return ClaimResult(claim, Verdict.DOES_NOT_HOLD, f"{why} (more than {THREAD_SHARE_MAX:g}x)",
                       evidence)


def balance_lines(run: Run) -> list[str]:
    """Prefork's balance under churn: each listener's busiest worker's share, per K."""
    lines = []
    for k in ks_of(run):
        for label, group in per_connection_groups(run, k).items():
            spread = None if group.failed else group.metric(BALANCE_METRIC)
            if group.model == POOL_MODEL and spread is not None:
                lines.append(f"{label}, K = {k}: the busiest worker accepted "
                              f"{spread.value:.0%} of the connections")
    return lines


def connection_overhead_us(run: Run, label: str) -> float | None:
    """Server CPU a connection costs beyond its request: per connection at K = 1 less per
    request at the largest K (which spreads a connection over many requests)."""
    ks = ks_of(run)
    if len(ks) < 2:
        return None
    short = per_connection_groups(run, ks[0]).get(label)
    long = per_connection_groups(run, ks[-1]).get(label)
    if short is None or long is None or short.failed or long.failed:
        return None
    per_connection = short.metric(COST_METRIC, plausible_only=True)
    per_request = long.metric("cpu_us_per_request", plausible_only=True)
    if per_connection is None or per_request is None:
        return None
    return per_connection.value - per_request.value


def _figure(group: CellGroup | None, metric: str) -> str:
    if group is None:
        return "-"
    if group.failed:
        return "failed"
    spread = group.metric(metric)
    return format_spread(metric, spread) if spread is not None else "-"


def churn_rows(run: Run) -> tuple[list[str], list[list[str]], tuple[int, ...]]:
    """The section's table: per model (and variant), its figures at each K, and the overhead."""
    ks = ks_of(run)
    header = ["model"]
    for k in ks:
        header += [f"connections/s, K={k}", f"server CPU per connection (us), K={k}"]
    several = len(ks) > 1  # the overhead needs a short and a long K
    if several:
        header += [f"server CPU per request (us), K={ks[-1]}", "connection overhead (us)"]
    header.append(f"connect p99 (us), K={ks[0]}" if ks else "connect p99 (us)")
    balanced = any(g.metric(BALANCE_METRIC) is not None for g in run.scenario(SCENARIO))
    if balanced:
        header.append(f"busiest worker's share of accepts, K={ks[0]}")
    by_k = {k: per_connection_groups(run, k) for k in ks}
    labels = list(dict.fromkeys(label for groups in by_k.values() for label in groups))
    rows = []
    for label in labels:
        row = [label]
        for k in ks:
            group = by_k[k].get(label)
            row += [_figure(group, "connections_per_s"), _figure(group, COST_METRIC)]
        if several:
            overhead = connection_overhead_us(run, label)
            row += [_figure(by_k[ks[-1]].get(label), "cpu_us_per_request"),
                    "-" if overhead is None else f"{overhead:,.1f}"]
        row.append(_figure(by_k[ks[0]].get(label), "connect_p99_us"))
        if balanced:
            row.append(_figure(by_k[ks[0]].get(label), BALANCE_METRIC))
        rows.append(row)
    return header, rows, tuple(range(1, len(header)))


# (key, figures, judge), as in claims.CLAIMS.
CHURN_VERDICTS = (
    ("churn_process_per_connection_costs", (), process_costs_more),
    ("churn_prefork_does_not_pay", (), prefork_does_not_pay),
    ("churn_thread_costs_less_than_process", (), thread_costs_less),
)


def judge_churn(run: Run) -> list[ClaimResult]:
    """The churn verdicts (empty when the run has no churn scenario)."""
    if not run.scenario(SCENARIO):
        return []
    results = []
    for key, figures, judge in CHURN_VERDICTS:
        result = judge(run)
        result.key, result.figures = key, figures
        results.append(result)
    return results
