"""The article's claims, each judged from a run's numbers.

A verdict is computed, never written: each claim names the cells it needs,
compares them against the thresholds below, and says "holds", "does not
hold", or "inconclusive" with the reason (cells missing, failed, or flagged so
that the comparison cannot be trusted). Where the cells were measured in
rounds, a comparison between two models is the trimmed (geometric) mean of their
per-round ratios (or differences) with its 95% interval, and a verdict holds only when
that interval clears its threshold: one that straddles it is inconclusive,
and says so. A cell measured once has no interval; its figure decides, and
the verdict says it rests on one round. The evidence lines quote the numbers
the verdict was computed from, so a reader can check it, and every number a
claim reads through :func:`measured` is kept as a :class:`Quoted` figure (the
cell it came from, figure and range), which claims.json publishes for citing.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from iobench.benchmarks.report.points import describe_point
from iobench.benchmarks.report.presentation import format_duration_s, format_spread, plural
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.benchmarks.results.stats import Interval

# Busy polling drives CPU up: idle busy-poll uses at least half a core and at
# least ten times what select uses (select's figure floored at the sampler's
# resolution, so a 0.0% reading does not make every ratio infinite).
BUSY_POLL_MIN_IDLE_CPU_PERCENT = 50.0
BUSY_POLL_MIN_CPU_RATIO_VS_SELECT = 10.0
CPU_RESOLUTION_PERCENT = 0.1

# Sleeping raises latency: a request that arrives during a sleep waits for the
# rest of it, interval/2 on average; at least a quarter interval must show.
MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL = 0.25

# Sleeping lowers throughput: poll-sleep at most 80% of select's closed-loop
# throughput holds; 95% or more does not; in between is too small to call.
THROUGHPUT_DROP_HOLDS = 0.20
THROUGHPUT_DROP_NONE = 0.05

# select watches many connections efficiently: with idle connections open its
# CPU stays under 5% of a core, and with many busy connections its throughput
# is at least 80% of thread-per-connection's.
SELECT_MAX_IDLE_CPU_PERCENT = 5.0
SELECT_MIN_THROUGHPUT_VS_THREADS = 0.80

# Flags that make a latency or throughput figure untrustworthy.
LATENCY_DISTRUST_FLAGS = frozenset({"errors", "behind_schedule"})
THROUGHPUT_DISTRUST_FLAGS = frozenset({"errors"})


def default_poll_interval_s() -> float:
    """poll-sleep's default interval, from its declaration, not a copy of it."""
    from iobench.servers.registry import get_model

    params = {p.name: p.default for p in get_model("poll-sleep").params}
    return float(params["interval"])


class Verdict(enum.StrEnum):
    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Quoted:
    """One number a verdict was computed from: what it is, where from, its spread."""

    what: str
    metric: str
    cell: str
    spread: Spread
    interval: Interval | None = None


@dataclass
class ClaimResult:
    """One claim, its verdict, why, and the numbers behind it.

    ``key`` names the claim for citing (claims.json), ``figures`` the plots that
    show it, first the one the report puts beside the verdict; :func:`judge_claims`
    fills both in, and ``quoted`` with every number the judge read.
    """

    claim: str
    verdict: Verdict
    reason: str
    evidence: list[str] = field(default_factory=list)
    key: str = ""
    figures: tuple[str, ...] = ()
    quoted: list[Quoted] = field(default_factory=list)


# The numbers the claim being judged has read so far (see judge_claims).
_quoted: contextvars.ContextVar[list[Quoted] | None] = contextvars.ContextVar(
    "quoted", default=None)


def quote(group: CellGroup, metric: str, what: str, spread: Spread) -> None:
    """Keep a number the verdict or its evidence uses, for claims.json."""
    quoted = _quoted.get()
    if quoted is not None and not any(q.cell == group.key and q.metric == metric
                                       for q in quoted):
        quoted.append(Quoted(what, metric, group.key, spread,
                             group.interval(metric, plausible_only=True)))


class Missing(Exception):
    """A cell the claim needs is absent, failed or flagged; the message says which."""


def find(run: Run, scenario: str, model: str,
         where: Callable[[CellGroup], bool] = lambda g: True) -> list[CellGroup]:
    return [g for g in run.scenario(scenario) if g.model == model and where(g)]


def with_connections(count: int) -> Callable[[CellGroup], bool]:
    """A filter for :func:`find`: the groups with ``count`` connections (idle: 0 for none)."""
    return lambda g: (g.connections or 0) == count


def at_load_of(other: CellGroup) -> Callable[[CellGroup], bool]:
    """A filter for :func:`find`: the groups measured at ``other``'s load (connections,
    payload and offered rate), to compare another model with it."""
    return lambda g: (g.rate_rps == other.rate_rps and g.connections == other.connections
                      and g.size_bytes == other.size_bytes)


def measured(group: CellGroup | None, metric: str, what: str,
             distrust: frozenset[str] = frozenset()) -> Spread:
    """The metric's spread, or Missing naming what is wrong with the cell."""
    if group is None:
        raise Missing(f"no {what} cell in this run")
    if group.failed:
        raise Missing(f"{what} failed ({'; '.join(group.failures)})")
    bad = sorted(distrust & set(group.flags))
    if bad:
        raise Missing(f"{what} is flagged {', '.join(bad)}")
    spread = group.metric(metric, plausible_only=True)
    if spread is None:
        broken = implausible_rules(group)
        if broken:
            raise Missing(f"{what} is implausible ({', '.join(broken)})")
        raise Missing(f"{what} has no {metric}")
    quote(group, metric, what, spread)
    return spread


def paired(a: CellGroup, b: CellGroup, metric: str) -> Interval | None:
    """``a``'s metric over ``b``'s, round by round, with its interval (None below 2 rounds)."""
    ratio = a.ratio_to(b, metric, plausible_only=True)
    return ratio if ratio is not None and ratio.n >= 2 else None


def paired_difference(a: CellGroup, b: CellGroup, metric: str) -> Interval | None:
    """``a``'s metric minus ``b``'s, round by round, with its interval (None below 2)."""
    return a.difference_to(b, metric, plausible_only=True)


def interval_text(interval: Interval, digits: int = 2, suffix: str = "x") -> str:
    """'0.62x [0.58, 0.66] over 5 rounds' (', on 3 servers' when over servers)."""
    servers = f" on {interval.servers} servers" if interval.servers else ""
    return (f"{interval.value:,.{digits}f}{suffix} [{interval.low:,.{digits}f}, "
            f"{interval.high:,.{digits}f}] over {interval.n} rounds{servers}")


def one_round(*groups: CellGroup) -> str:
    """' (one round: no interval)' when a compared cell has fewer than two rounds."""
    return (" (one round: no interval, the figure decides)"
            if any(len(g.plausible_cells) < 2 for g in groups) else "")


def implausible_rules(group: CellGroup) -> list[str]:
    """The plausibility rules the group's successful repetitions broke."""
    return sorted({v.rule for c in group.ok_cells for v in c.implausible})


def flagged(*groups: CellGroup | None) -> str:
    """' [select: cpu_contended]': the flags of the cells a line of evidence quotes."""
    parts = [f"{g.model}: {', '.join(g.flags)}" for g in groups if g is not None and g.flags]
    return f" [{'; '.join(parts)}]" if parts else ""


def default_params(group: CellGroup) -> bool:
    """A cell run with the model's default parameters (no sweep value)."""
    interval = group.params.get("interval")
    return interval is None or interval == default_poll_interval_s()


def neighbour_lines(run: Run) -> list[str]:
    """What the idle server's CPU costs a CPU-bound neighbour: supporting evidence only."""
    ratios = []
    for model in ("busy-poll", "select"):
        group = next(iter(find(run, "neighbour", model, lambda g: g.phase == "idle")), None)
        spread = group.metric("neighbour_ratio") if group is not None else None
        if group is not None and spread is not None:
            quote(group, "neighbour_ratio", f"neighbour beside idle {model}", spread)
            ratios.append(f"{model} {format_spread('neighbour_ratio', spread)}"
                          + flagged(group))
    if not ratios:
        return []
    return ["a CPU-bound neighbour beside the idle server ran at this fraction of its solo "
            "speed: " + ", ".join(ratios)]


def busy_polling_drives_cpu_up(run: Run) -> ClaimResult:
    claim = "Busy polling drives CPU up"
    evidence: list[str] = []
    try:
        busy = find(run, "idle", "busy-poll")
        if not busy:
            raise Missing("no idle busy-poll cell in this run")
        verdicts = []
        for group in sorted(busy, key=lambda g: g.connections or 0):
            count = group.connections or 0
            select = next(iter(find(run, "idle", "select", with_connections(count))), None)
            busy_cpu = measured(group, "server_cpu_percent", f"idle busy-poll, {count} conns")
            select_cpu = measured(select, "server_cpu_percent", f"idle select, {count} conns")
            ratio = busy_cpu.value / max(select_cpu.value, CPU_RESOLUTION_PERCENT)
            figures = (f"{busy_cpu.value:.1f}% vs {select_cpu.value:.1f}% with "
                       f"{plural(count, 'connection')}")
            evidence.append(
                f"idle with {plural(count, 'connection')}: busy-poll "
                f"{format_spread('server_cpu_percent', busy_cpu)} % of a core, select "
                f"{format_spread('server_cpu_percent', select_cpu)} % ({ratio:,.0f}x)"
                + flagged(group, select))
            holds = (busy_cpu.value >= BUSY_POLL_MIN_IDLE_CPU_PERCENT
                     and ratio >= BUSY_POLL_MIN_CPU_RATIO_VS_SELECT)
            if not holds and "cpu_contended" in group.flags:
                raise Missing(f"busy-poll idle with {plural(count, 'connection')} used less "
                              "than the threshold while other processes took its CPU")
            verdicts.append(holds)
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence + neighbour_lines(run))
    evidence += neighbour_lines(run)
    rule = (f">= {BUSY_POLL_MIN_IDLE_CPU_PERCENT:g}% of a core and >= "
            f"{BUSY_POLL_MIN_CPU_RATIO_VS_SELECT:g}x select's, idle ({figures})")
    if all(verdicts):
        return ClaimResult(claim, Verdict.HOLDS, f"busy-poll uses {rule}", evidence)
    return ClaimResult(claim, Verdict.DOES_NOT_HOLD, f"busy-poll does not use {rule}", evidence)


def latency_pairs(run: Run) -> list[tuple[CellGroup, CellGroup | None]]:
    """(poll-sleep, select at the same load) pairs: the interval sweep, else open loop."""
    for scenario in ("interval", "open"):
        sleepers = find(run, scenario, "poll-sleep")
        if sleepers:
            pairs = []
            for group in sorted(sleepers, key=lambda g: g.params.get("interval") or 0):
                select = next(iter(find(run, scenario, "select", at_load_of(group))), None)
                pairs.append((group, select))
            return pairs
    return []


def sleep_raises_latency(run: Run) -> ClaimResult:
    claim = "Polling with a sleep raises latency"
    pairs = latency_pairs(run)
    if not pairs:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           "no poll-sleep cell in an 'interval' or 'open' scenario")
    evidence: list[str] = []
    judged: tuple[float, float, CellGroup, CellGroup | None] | None = None
    default_pair = next((p for p in pairs if default_params(p[0])), pairs[-1])
    try:
        for sleeper, select in pairs:
            interval = float(sleeper.params.get("interval") or default_poll_interval_s())
            what = f"poll-sleep (interval={format_duration_s(interval)})"
            sleeper_p50 = measured(sleeper, "p50_us", what, LATENCY_DISTRUST_FLAGS)
            select_p50 = measured(select, "p50_us", "select at the same load",
                                  LATENCY_DISTRUST_FLAGS)
            added = sleeper_p50.value - select_p50.value
            evidence.append(
                f"{sleeper.scenario} loop at {sleeper.rate_rps or 0:,.0f} req/s: {what} p50 "
                f"{format_spread('p50_us', sleeper_p50)} us vs select "
                f"{format_spread('p50_us', select_p50)} us: {added:+,.0f} us "
                f"(interval/2 = {interval * 1e6 / 2:,.0f} us)" + flagged(sleeper, select))
            if sleeper is default_pair[0]:
                judged = (added, interval * 1e6, sleeper, select)
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    assert judged is not None
    added, interval_us, sleeper, select = judged
    threshold = MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL * interval_us
    rule = (f"p50 at interval {format_duration_s(interval_us / 1e6)} is {added:,.0f} us above "
            f"select's; the threshold is {MIN_ADDED_LATENCY_FRACTION_OF_INTERVAL:g} x interval "
            f"= {threshold:,.0f} us")
    assert select is not None
    rounds = paired_difference(sleeper, select, "p50_us")
    if rounds is None:
        verdict = Verdict.HOLDS if added >= threshold else Verdict.DOES_NOT_HOLD
        return ClaimResult(claim, verdict, rule + one_round(sleeper, select), evidence)
    rule += f"; paired, {interval_text(rounds, digits=0, suffix=' us')}"
    if rounds.low >= threshold:
        return ClaimResult(claim, Verdict.HOLDS, rule, evidence)
    if rounds.high < threshold:
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD, rule, evidence)
    return ClaimResult(claim, Verdict.INCONCLUSIVE, rule + f"; the interval straddles "
                       f"{threshold:,.0f} us", evidence)


def sleep_lowers_throughput(run: Run) -> ClaimResult:
    claim = "Polling with a sleep lowers throughput"
    sleepers = sorted(find(run, "closed", "poll-sleep", default_params),
                      key=lambda g: (g.size_bytes or 0, g.connections or 0))
    if not sleepers:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, "no closed-loop poll-sleep cell")
    evidence: list[str] = []
    judged = None
    no_drop: list[str] = []
    try:
        for sleeper in sleepers:
            select = next(iter(find(run, "closed", "select", at_load_of(sleeper))), None)
            where = describe_point(sleeper)
            if select is None:
                raise Missing(f"no closed select cell at {where} in this run")
            ps = measured(sleeper, "throughput_rps", f"closed poll-sleep, {where}",
                          THROUGHPUT_DISTRUST_FLAGS)
            sel = measured(select, "throughput_rps", f"closed select, {where}",
                           THROUGHPUT_DISTRUST_FLAGS)
            ratio = ps.value / sel.value if sel.value else float("inf")
            evidence.append(f"closed loop, {where}: poll-sleep "
                            f"{format_spread('throughput_rps', ps)} req/s vs select "
                            f"{format_spread('throughput_rps', sel)} req/s ({ratio:.2f}x)"
                            + flagged(sleeper, select))
            if judged is None:  # fewest connections: every round trip waits for a poll
                judged = (ps, sel, ratio, sleeper, select, where)
            elif ratio >= 1 - THROUGHPUT_DROP_NONE:
                no_drop.append(f"{where} ({ratio:.0%})")
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    assert judged is not None
    ps, sel, ratio, sleeper, select, where = judged
    summary = f"at {where}, poll-sleep reaches {ratio:.0%} of select's throughput"
    # The article's case is a lone client: every round trip then waits for a poll.
    unmeasured = (" (1 connection, where every round trip waits for a poll, was not measured)"
                  if (sleeper.connections or 0) > 1 else "")
    rounds = paired(sleeper, select, "throughput_rps")
    if rounds is not None:
        return paired_throughput_verdict(claim, rounds, sleeper, select, where, no_drop,
                                         unmeasured, evidence)
    summary += one_round(sleeper, select)
    if ratio <= 1 - THROUGHPUT_DROP_HOLDS and not ps.overlaps(sel):
        if "client_saturated" in sleeper.flags:
            return ClaimResult(claim, Verdict.INCONCLUSIVE,
                               summary + ", but the load generator saturated on poll-sleep",
                               evidence)
        summary += f" (<= {1 - THROUGHPUT_DROP_HOLDS:.0%} holds)"
        if no_drop:
            summary += ("; only with few connections: with more, a pass rarely finds nothing "
                        "to do and poll-sleep keeps up with select, at " + ", ".join(no_drop))
        return ClaimResult(claim, Verdict.HOLDS, summary, evidence)
    if ratio >= 1 - THROUGHPUT_DROP_NONE:
        if "client_saturated" in select.flags:
            return ClaimResult(claim, Verdict.INCONCLUSIVE,
                               summary + ", but the load generator saturated on select, so "
                               "select's figure is only a lower bound", evidence)
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD, summary
                           + f" (>= {1 - THROUGHPUT_DROP_NONE:.0%}: no drop){unmeasured}",
                           evidence)
    if ps.overlaps(sel):
        because = "; the two min-max ranges overlap, so the drop is within the runs' spread"
    else:
        because = (f"; a drop of {1 - ratio:.0%} is between the {THROUGHPUT_DROP_NONE:.0%} "
                   f"called noise and the {THROUGHPUT_DROP_HOLDS:.0%} needed to call it")
    return ClaimResult(claim, Verdict.INCONCLUSIVE, summary + because + unmeasured, evidence)


def paired_throughput_verdict(claim: str, rounds: Interval, sleeper: CellGroup,
                              select: CellGroup, where: str, no_drop: list[str],
                              unmeasured: str, evidence: list[str]) -> ClaimResult:
    """sleep_lowers_throughput's verdict from the paired ratio's interval."""
    summary = (f"at {where}, poll-sleep reaches {rounds.value:.0%} of select's throughput, "
               f"paired {interval_text(rounds)}")
    evidence.append(f"poll-sleep / select throughput at {where}, round by round: "
                    f"{interval_text(rounds)}")
    if rounds.high <= 1 - THROUGHPUT_DROP_HOLDS:
        if "client_saturated" in sleeper.flags:
            return ClaimResult(claim, Verdict.INCONCLUSIVE,
                               summary + ", but the load generator saturated on poll-sleep",
                               evidence)
        summary += f" (the interval lies at or below {1 - THROUGHPUT_DROP_HOLDS:.0%}: holds)"
        if no_drop:
            summary += ("; only with few connections: with more, a pass rarely finds nothing "
                        "to do and poll-sleep keeps up with select, at " + ", ".join(no_drop))
        return ClaimResult(claim, Verdict.HOLDS, summary, evidence)
    if rounds.low >= 1 - THROUGHPUT_DROP_NONE:
        if "client_saturated" in select.flags:
            return ClaimResult(claim, Verdict.INCONCLUSIVE,
                               summary + ", but the load generator saturated on select, so "
                               "select's figure is only a lower bound", evidence)
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD, summary
                           + f" (the interval lies at or above {1 - THROUGHPUT_DROP_NONE:.0%}: "
                           f"no drop){unmeasured}", evidence)
    return ClaimResult(claim, Verdict.INCONCLUSIVE, summary
                       + f"; the interval reaches past {1 - THROUGHPUT_DROP_HOLDS:.0%} (a drop) "
                       f"or {1 - THROUGHPUT_DROP_NONE:.0%} (none) without clearing either"
                       + unmeasured, evidence)


def select_scales(run: Run) -> ClaimResult:
    claim = "select watches many connections efficiently"
    evidence: list[str] = []
    try:
        idle = sorted(find(run, "idle", "select"), key=lambda g: g.connections or 0)
        if not idle:
            raise Missing("no idle select cell in this run")
        most_idle = idle[-1]
        idle_cpu = measured(most_idle, "server_cpu_percent",
                            f"idle select with {plural(most_idle.connections, 'connection')}")
        evidence.append(f"idle with {plural(most_idle.connections, 'connection')}: select "
                        f"{format_spread('server_cpu_percent', idle_cpu)} % of a core"
                        + flagged(most_idle))
        counts = sorted({g.connections or 0 for g in find(run, "closed", "select")})
        if not counts:
            raise Missing("no closed-loop select cell in this run")
        compared = None
        for count in reversed(counts):
            def at(g: CellGroup, c: int = count) -> bool:
                return g.connections == c and default_params(g)
            candidates = find(run, "closed", "select", at)
            if not candidates:
                continue
            select = min(candidates, key=lambda g: g.size_bytes or 0)

            def beside(g: CellGroup, c: int = count, s: CellGroup = select) -> bool:
                return at(g, c) and g.size_bytes == s.size_bytes
            threads = next(iter(find(run, "closed", "threads", beside)), None)
            if select.failed:
                evidence.append(f"closed loop, {plural(count, 'connection')}: select failed "
                                f"({'; '.join(select.failures)})")
                continue
            if threads is None or threads.failed:
                continue
            # A point whose figures broke a plausibility rule is no ground for
            # the verdict: say so, and compare at the next count down.
            broken = [f"{g.model} implausible ({', '.join(implausible_rules(g))})"
                      for g in (select, threads) if not g.plausible_cells]
            if broken:
                evidence.append(f"closed loop, {plural(count, 'connection')}: "
                                f"{'; '.join(broken)}")
                continue
            compared = (count, select, threads)
            break
        if compared is None:
            raise Missing("no connection count where select and threads both succeeded "
                          "with plausible figures")
        count, select, threads = compared
        sel = measured(select, "throughput_rps", "closed select", THROUGHPUT_DISTRUST_FLAGS)
        thr = measured(threads, "throughput_rps", "closed threads", THROUGHPUT_DISTRUST_FLAGS)
        ratio = sel.value / thr.value if thr.value else float("inf")
        line = (f"closed loop, {plural(count, 'connection')}: select "
                f"{format_spread('throughput_rps', sel)} req/s vs threads "
                f"{format_spread('throughput_rps', thr)} req/s ({ratio:.2f}x)")
        sel_cpu, thr_cpu = (g.metric("cpu_us_per_request") for g in (select, threads))
        if sel_cpu and thr_cpu:
            quote(select, "cpu_us_per_request", "closed select", sel_cpu)
            quote(threads, "cpu_us_per_request", "closed threads", thr_cpu)
            line += (f"; CPU per request {format_spread('cpu_us_per_request', sel_cpu)} us "
                     f"vs {format_spread('cpu_us_per_request', thr_cpu)} us")
        evidence.append(line + flagged(select, threads))
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    idle_ok = idle_cpu.value <= SELECT_MAX_IDLE_CPU_PERCENT
    throughput_ok = ratio >= SELECT_MIN_THROUGHPUT_VS_THREADS
    rule = (f"idle CPU {idle_cpu.value:.1f}% (limit {SELECT_MAX_IDLE_CPU_PERCENT:g}%), "
            f"throughput at {plural(count, 'connection')} {ratio:.0%} of threads' "
            f"(at least {SELECT_MIN_THROUGHPUT_VS_THREADS:.0%})")
    rounds = paired(select, threads, "throughput_rps")
    idle_interval = most_idle.interval("server_cpu_percent", plausible_only=True)
    if rounds is not None:
        rule += f", paired {interval_text(rounds)}"
        evidence.append(f"select / threads throughput at {plural(count, 'connection')}, "
                        f"round by round: {interval_text(rounds)}")
        if rounds.low < SELECT_MIN_THROUGHPUT_VS_THREADS <= rounds.high:
            return ClaimResult(claim, Verdict.INCONCLUSIVE, rule + "; the interval straddles "
                               f"{SELECT_MIN_THROUGHPUT_VS_THREADS:.0%}", evidence)
        throughput_ok = rounds.low >= SELECT_MIN_THROUGHPUT_VS_THREADS
    else:
        rule += one_round(select, threads)
    if idle_interval is not None:
        if idle_interval.low <= SELECT_MAX_IDLE_CPU_PERCENT < idle_interval.high:
            return ClaimResult(claim, Verdict.INCONCLUSIVE, rule + "; the idle CPU's interval "
                               f"straddles {SELECT_MAX_IDLE_CPU_PERCENT:g}%", evidence)
        idle_ok = idle_interval.high <= SELECT_MAX_IDLE_CPU_PERCENT
    if not throughput_ok and idle_ok and "client_saturated" in select.flags:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           rule + ", but the load generator saturated on select, so select's "
                           "figure is only a lower bound", evidence)
    if not (idle_ok and throughput_ok):
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD, rule, evidence)
    if count != counts[-1]:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           rule + f", but select and threads could not be compared at "
                                  f"{counts[-1]} connections (see the evidence)",
                           evidence)
    return ClaimResult(claim, Verdict.HOLDS, rule, evidence)


# (key, the figures that show it, the judge), in the article's order. The key is
# what documentation cites (claims.json); never rename one.
CLAIMS: tuple[tuple[str, tuple[str, ...], Callable[[Run], ClaimResult]], ...] = (
    ("busy_poll_burns_cpu", ("idle_cpu",), busy_polling_drives_cpu_up),
    ("sleep_raises_latency", ("poll_sleep_tradeoff", "latency_vs_rate"),
     sleep_raises_latency),
    ("sleep_lowers_throughput", ("throughput_vs_connections",), sleep_lowers_throughput),
    ("select_scales", ("throughput_vs_connections", "idle_cpu"), select_scales),
)


def judge_claims(run: Run) -> list[ClaimResult]:
    """Every claim's verdict, in the article's order, with its key, figures and numbers."""
    results = []
    for key, figures, judge in CLAIMS:
        quoted: list[Quoted] = []
        token = _quoted.set(quoted)
        try:
            result = judge(run)
        finally:
            _quoted.reset(token)
        result.key, result.figures, result.quoted = key, figures, quoted
        results.append(result)
    return results
