"""The work scenario's claims: what work in the handler does to each concurrency model.

Every cell of the scenario is a closed loop at the same connections and size,
one model with ``work=block:...`` or ``work=cpu:...``, inline or (event loops)
with ``offload=pool``. The claims compare their throughputs; the thresholds
are below and in docs/report.md.
"""

from __future__ import annotations

from iobench.benchmarks.report.claims import (
    THROUGHPUT_DISTRUST_FLAGS,
    ClaimResult,
    Missing,
    Verdict,
    find,
    flagged,
    measured,
)
from iobench.benchmarks.report.presentation import format_spread
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.servers.base import DEFAULT_POOL_THREADS, work_seconds

SCENARIO = "work"
# Inline blocking work caps a single-threaded loop near 1/block: epoll with
# block:1ms serves at most 1.1 x 1/block (1,100 req/s), the 10% for requests
# whose wait overlaps the loop's own I/O time being impossible; more means
# the wait did not block the loop.
INLINE_BLOCK_CAP_FACTOR = 1.1
# Threads overlap the waits: thread per connection with the same work serves
# at least 8x epoll's figure (16 connections could reach 16x; half of that
# leaves room for the GIL's hand-overs on one CPU).
THREADS_MIN_RATIO_VS_EPOLL = 8.0
# CPU work is serialized by the GIL, not for processes: on two or more server
# CPUs, threads and every offload pool keep at most 1.1 cores busy with the
# calibrated work (throughput x its measured time), while prefork (a worker
# per CPU) keeps at least 1.5. On one server CPU every model is held to one
# core, GIL or not, and the verdict says it cannot tell.
GIL_CAP_FACTOR = 1.1
PROCESSES_MIN_FACTOR = 1.5
# Offloading restores the loop: asyncio with offload=pool serves at least 5x
# asyncio inline with blocking work.
OFFLOAD_MIN_RATIO_VS_INLINE = 5.0

# The single-threaded loops, which an inline wait stops, and the ones that can offload.
LOOPS = ("busy-poll", "poll-sleep", "select", "poll", "epoll", "asyncio", "uvloop", "sigio",
         "io-uring")


def kind_of(group: CellGroup) -> str:
    return work_seconds(str(group.params.get("work", "none")))[0]


def work_s(group: CellGroup) -> float:
    return work_seconds(str(group.params.get("work", "none")))[1]


def pooled(group: CellGroup) -> bool:
    return group.params.get("offload") == "pool"


def variant(run: Run, model: str, kind: str, pool: bool = False) -> CellGroup | None:
    """The work cell of ``model`` with ``kind`` work, inline or offloaded."""
    found = find(run, SCENARIO, model, lambda g: kind_of(g) == kind and pooled(g) == pool)
    return found[0] if found else None


def label(group: CellGroup) -> str:
    offload = ", offload=pool" if pooled(group) else ""
    return f"{group.model} work={group.params.get('work')}{offload}"


def rate(group: CellGroup | None, what: str) -> Spread:
    return measured(group, "throughput_rps", what, THROUGHPUT_DISTRUST_FLAGS)


def shown(group: CellGroup, evidence: list[str]) -> Spread | None:
    """A figure only shown beside the judged ones; a cell that cannot give one is
    named in the evidence and left out, instead of leaving the verdict unjudged."""
    try:
        return rate(group, label(group))
    except Missing as why:
        evidence.append(f"{label(group)}: left out, {why}")
        return None


def cpu_work_us(group: CellGroup) -> float:
    """One request's CPU work as the server calibrated it (its target if unrecorded)."""
    measured_us = [((cell.server or {}).get("work") or {}).get("measured_us")
                   for cell in group.ok_cells]
    values = sorted(v for v in measured_us if isinstance(v, int | float) and v > 0)
    return values[len(values) // 2] if values else work_s(group) * 1e6


def contended(group: CellGroup) -> str:
    """Why a figure below its threshold is no verdict: other processes had the server's CPU.

    Overlapped waits and a pool's hand-overs are bound by the server's CPU,
    an inline wait by the clock: taking the CPU away lowers the one and not
    the other, so the ratio says how busy the machine was.
    """
    other = group.metric("server_cpus_other_percent")
    share = f" ({other.value:.0f}% of it)" if other is not None else ""
    return (f", but other processes took the server's CPU{share} in {label(group)}, which "
            "lowers what the overlapped waits can serve and not the inline wait's figure")


def line(group: CellGroup, spread: Spread, extra: str = "") -> str:
    return (f"{label(group)}: {format_spread('throughput_rps', spread)} req/s{extra}"
            + flagged(group))


def inline_block_caps_loop(run: Run) -> ClaimResult:
    claim = "Inline blocking work caps a single-threaded loop near 1/block req/s"
    evidence: list[str] = []
    try:
        epoll = variant(run, "epoll", "block")
        judged = rate(epoll, "epoll with inline blocking work")
        assert epoll is not None
        cap = INLINE_BLOCK_CAP_FACTOR / work_s(epoll)
        for model in LOOPS:
            group = variant(run, model, "block")
            if group is not None and (spread := shown(group, evidence)) is not None:
                evidence.append(line(group, spread, f" ({spread.value * work_s(group):.2f}"
                                                    " x 1/block)"))
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    rule = (f"epoll with work={epoll.params.get('work')} at {epoll.connections} connections "
            f"serves {judged.value:,.0f} req/s; the cap is {INLINE_BLOCK_CAP_FACTOR:g} x "
            f"1/block = {cap:,.0f}")
    verdict = Verdict.HOLDS if judged.value <= cap else Verdict.DOES_NOT_HOLD
    return ClaimResult(claim, verdict, rule, evidence)


def threads_overlap_waits(run: Run) -> ClaimResult:
    claim = "Threads overlap blocking waits"
    evidence: list[str] = []
    try:
        epoll, threads = variant(run, "epoll", "block"), variant(run, "threads", "block")
        ep = rate(epoll, "epoll with inline blocking work")
        th = rate(threads, "threads with blocking work")
        assert epoll is not None and threads is not None
        for model in ("threads", "threadpool", "fork", "prefork"):
            group = variant(run, model, "block")
            if group is not None and (spread := shown(group, evidence)) is not None:
                evidence.append(line(group, spread, f" ({spread.value / ep.value:.1f}x epoll)"))
        evidence.append(line(epoll, ep))
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    ratio = th.value / ep.value if ep.value else float("inf")
    rule = (f"threads serve {th.value:,.0f} req/s with work={threads.params.get('work')}, "
            f"{ratio:.1f}x epoll's {ep.value:,.0f} (at least {THREADS_MIN_RATIO_VS_EPOLL:g}x)")
    if ratio < THREADS_MIN_RATIO_VS_EPOLL and "client_saturated" in threads.flags:
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           rule + ", but the load generator saturated on threads", evidence)
    if ratio < THREADS_MIN_RATIO_VS_EPOLL and "cpu_contended" in threads.flags:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, rule + contended(threads), evidence)
    verdict = Verdict.HOLDS if ratio >= THREADS_MIN_RATIO_VS_EPOLL else Verdict.DOES_NOT_HOLD
    return ClaimResult(claim, verdict, rule, evidence)


def cores_of_work(group: CellGroup, spread: Spread) -> float:
    """Throughput x one request's calibrated CPU work: the cores its handlers kept busy."""
    return spread.value * cpu_work_us(group) / 1e6


def gil_serializes_cpu_work(run: Run) -> ClaimResult:
    claim = ("CPU work is serialized by the GIL for threads and an offload pool alike, "
             "not for processes")
    evidence: list[str] = []
    try:
        threads, prefork = variant(run, "threads", "cpu"), variant(run, "prefork", "cpu")
        th = rate(threads, "threads with CPU work")
        pf = rate(prefork, "prefork with CPU work")
        assert threads is not None and prefork is not None
        serialized = [(threads, th)]
        for model in ("threads", "threadpool", "fork", "prefork"):
            group = variant(run, model, "cpu")
            if group is not None and (spread := shown(group, evidence)) is not None:
                evidence.append(line(group, spread, f" ({cores_of_work(group, spread):.2f} cores "
                                                    "of work)"))
        for model in LOOPS:
            inline, pool = variant(run, model, "cpu"), variant(run, model, "cpu", pool=True)
            if pool is None or inline is None:
                continue
            po, inl = shown(pool, evidence), shown(inline, evidence)
            if po is None or inl is None:
                continue
            serialized.append((pool, po))
            evidence.append(line(pool, po, f" ({cores_of_work(pool, po):.2f} cores of work, "
                                           f"{po.value / inl.value:.2f}x inline)"))
        if len(serialized) == 1:
            evidence.append("no loop offloaded CPU work to a pool in this run (the full "
                            "profile does): threads stand for both")
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    cpus = prefork.first.server_cpu_count
    busiest = max(serialized, key=lambda pair: cores_of_work(*pair))
    most = cores_of_work(*busiest)
    processes = cores_of_work(prefork, pf)
    if cpus < 2:
        return ClaimResult(
            claim, Verdict.INCONCLUSIVE,
            f"the server ran on {cpus} CPU, which holds every model to one core, GIL or not: "
            f"threads and pools reached at most {most:.2f} cores of work "
            f"({label(busiest[0])}) and prefork {processes:.2f}. Telling the GIL from the CPU "
            f"takes two or more server CPUs, where processes should pass "
            f"{PROCESSES_MIN_FACTOR:g} cores and threads stay under {GIL_CAP_FACTOR:g}",
            evidence)
    rule = (f"on {cpus} server CPUs threads and pools reach at most {most:.2f} cores of work "
            f"(cap {GIL_CAP_FACTOR:g}), prefork {processes:.2f} (at least "
            f"{PROCESSES_MIN_FACTOR:g})")
    holds = most <= GIL_CAP_FACTOR and processes >= PROCESSES_MIN_FACTOR
    return ClaimResult(claim, Verdict.HOLDS if holds else Verdict.DOES_NOT_HOLD, rule, evidence)


def offload_restores_loop(run: Run) -> ClaimResult:
    claim = "Offloading blocking work to a pool restores the loop"
    evidence: list[str] = []
    try:
        inline, pool = variant(run, "asyncio", "block"), variant(run, "asyncio", "block", True)
        inl = rate(inline, "asyncio with inline blocking work")
        po = rate(pool, "asyncio with blocking work on a pool")
        assert inline is not None and pool is not None
        for model in LOOPS:
            model_inline = variant(run, model, "block")
            model_pool = variant(run, model, "block", pool=True)
            if model_pool is None or model_inline is None:
                continue
            a, b = shown(model_inline, evidence), shown(model_pool, evidence)
            if a is None or b is None:
                continue
            evidence.append(line(model_pool, b, f" ({b.value / a.value:.1f}x inline "
                                                f"{a.value:,.0f})"))
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    ratio = po.value / inl.value if inl.value else float("inf")
    rule = (f"asyncio with offload=pool (pool={pool.params.get('pool', DEFAULT_POOL_THREADS)}) "
            f"serves "
            f"{po.value:,.0f} req/s, {ratio:.1f}x inline's {inl.value:,.0f} "
            f"(at least {OFFLOAD_MIN_RATIO_VS_INLINE:g}x)")
    if ratio < OFFLOAD_MIN_RATIO_VS_INLINE and "cpu_contended" in pool.flags:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, rule + contended(pool), evidence)
    verdict = Verdict.HOLDS if ratio >= OFFLOAD_MIN_RATIO_VS_INLINE else Verdict.DOES_NOT_HOLD
    return ClaimResult(claim, verdict, rule, evidence)


# (key, figures, judge), as in claims.CLAIMS.
WORK_VERDICTS = (
    ("work_inline_block_caps_loop", (), inline_block_caps_loop),
    ("work_threads_overlap_waits", (), threads_overlap_waits),
    ("work_gil_serializes_cpu", (), gil_serializes_cpu_work),
    ("work_offload_restores_loop", (), offload_restores_loop),
)


def judge_work(run: Run) -> list[ClaimResult]:
    """The work verdicts (empty when the run has no work scenario)."""
    if not run.scenario(SCENARIO):
        return []
    results = []
    for key, figures, judge in WORK_VERDICTS:
        result = judge(run)
        result.key, result.figures = key, figures
        results.append(result)
    return results


def throughput_table(run: Run) -> tuple[list[str], list[list[str]]]:
    """Models as rows, each work inline and on a pool as columns: req/s figures."""
    groups = run.scenario(SCENARIO)
    works = sorted({str(g.params.get("work")) for g in groups},
                   key=lambda w: (work_seconds(w)[0] != "block", w))
    columns = [(work, pool) for work in works for pool in (False, True)
               if any(str(g.params.get("work")) == work and pooled(g) == pool for g in groups)]
    header = ["model"] + [f"{work}{', pool' if pool else ''} (req/s)" for work, pool in columns]
    rows = []
    for model in dict.fromkeys(g.model for g in groups if g.model is not None):
        row = [model]
        for work, pool in columns:
            group = next((g for g in groups if g.model == model and pooled(g) == pool
                          and str(g.params.get("work")) == work), None)
            spread = group.metric("throughput_rps") if group is not None else None
            row.append("failed" if group is not None and group.failed
                       else format_spread("throughput_rps", spread) if spread else "")
        rows.append(row)
    return header, rows


def calibration_lines(run: Run) -> list[str]:
    """What the servers' CPU work calibration measured, across the run's cells."""
    measured_us, targets = [], set()
    for group in run.scenario(SCENARIO):
        for cell in group.ok_cells:
            work = (cell.server or {}).get("work") or {}
            if work.get("kind") == "cpu" and isinstance(work.get("measured_us"), int | float):
                measured_us.append(float(work["measured_us"]))
                targets.add(work.get("target_us"))
    if not measured_us:
        return []
    measured_us.sort()
    target = ", ".join(f"{t:g}" for t in sorted(t for t in targets if t is not None))
    return [f"CPU work calibrated at each server's start to {target} us: one request's work "
            f"measured {measured_us[len(measured_us) // 2]:.1f} us in the median server "
            f"({measured_us[0]:.1f}-{measured_us[-1]:.1f} us over {len(measured_us)} cells)"]


def balance_lines(run: Run) -> list[str]:
    """How prefork's workers shared the connections in each of its work cells."""
    found = []
    for group in run.scenario(SCENARIO):
        shares = group.values("busiest_worker_share")
        if not shares:
            continue
        accepts = [(cell.server or {}).get("worker_accepts") for cell in group.ok_cells]
        shown = ", ".join(str(a) for a in accepts if a)
        share = sorted(shares)[len(shares) // 2]
        found.append(f"{label(group)}: accepts per worker {shown}, the busiest worker's share "
                     f"{share:.2f}" + (" (one worker took every connection: with inline work, "
                                       "prefork was one loop)" if share == 1.0 else ""))
    return found
