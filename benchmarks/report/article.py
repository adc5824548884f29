"""The article's code as printed: what it really does, judged from a run's figures.

busy-poll is the article's loop done correctly; the ``article`` reference
model is the article's own server, re-typed as printed. Its listener is
non-blocking, but the sockets ``accept()`` returns are blocking on Linux, so
the loop spins only while nobody is connected, sleeps in ``recv()`` on the
first idle client, and sleeps in ``send()`` beside a client that does not
read. Each verdict below is computed from the article scenario's cells
against the thresholds here (docs/report.md lists them), with busy-poll's
figures beside as the evidence of what a correct loop does.
"""

from __future__ import annotations

from iobench.benchmarks.report.claims import (
    ClaimResult,
    Missing,
    Verdict,
    measured,
)
from iobench.benchmarks.report.presentation import format_spread
from iobench.benchmarks.results.loader import CellGroup, Run, Spread
from iobench.benchmarks.results.scenarios import (
    ARTICLE_CLOSED_LOOP,
    ARTICLE_IDLE_CLIENT,
    ARTICLE_NO_CLIENT,
    ARTICLE_NON_READER,
    ARTICLE_SECOND_CLIENT,
    PROBE_NOTE,
    SERVER_EXIT_NOTE,
)

SCENARIO = "article"
MODEL = "article"
REFERENCE = "busy-poll"
# The article's first claim, for its own code: spinning means at least this
# share of a core with no client connected...
SPIN_MIN_CPU_PERCENT = 90.0
# ...and it no longer spins once one idle client is connected: at most this.
IDLE_CLIENT_MAX_CPU_PERCENT = 5.0
# A client is starved when its request gets no answer for at least this long.
STARVED_MIN_WAIT_S = 1.0
# How the load generator words a run it called off because connections went unanswered.
STARVED = "starved: "
# The note each probe cell carries: what the probe saw, in one line.
CAUSE_NOTE = PROBE_NOTE
# Where busy-poll's idle CPU comes from.
IDLE_SCENARIO = "idle"
# The probes, as the run side names them in each cell's phase.
NO_CLIENT = ARTICLE_NO_CLIENT
IDLE_CLIENT = ARTICLE_IDLE_CLIENT
# The idle connections of each idle-CPU probe (busy-poll's are the idle scenario's).
IDLE_CONNECTIONS = {NO_CLIENT: 0, IDLE_CLIENT: 1}
CLOSED = ARTICLE_CLOSED_LOOP
SECOND_CLIENT = ARTICLE_SECOND_CLIENT
NON_READER = ARTICLE_NON_READER
# Other processes on the server's CPU: they can only push its figure down, so a
# figure below SPIN_MIN_CPU_PERCENT with this flag is not held against the claim.
CONTENDED = "cpu_contended"


def probe(run: Run, model: str, phase: str) -> CellGroup | None:
    """The article scenario's cell of ``model`` for ``phase``.

    busy-poll's idle CPU is the idle scenario's (the article scenario does not
    measure it again): its cell with as many idle connections, without parameters.
    """
    for group in run.scenario(SCENARIO):
        if group.model == model and group.phase == phase:
            return group
    if phase in IDLE_CONNECTIONS and model != MODEL:
        for group in run.scenario(IDLE_SCENARIO):
            if (group.model == model and group.connections == IDLE_CONNECTIONS[phase]
                    and not group.params):
                return group
    return None


def _cpu(run: Run, model: str, phase: str, what: str) -> Spread:
    return measured(probe(run, model, phase), "server_cpu_percent", what)


def _reference_line(run: Run, evidence: list[str], phase: str, metric: str, what: str,
                    unit: str = "") -> None:
    """busy-poll's figure for the same probe into the evidence: the figure, why there is
    none if its cell failed, nothing if the run did not measure it."""
    group = probe(run, REFERENCE, phase)
    if group is None:
        return
    try:
        spread = measured(group, metric, what)
    except Missing as why:
        evidence.append(f"{REFERENCE}: {why}")
        return
    evidence.append(f"{what}: {format_spread(metric, spread)}{unit}")


def spins_while_empty(run: Run) -> ClaimResult:
    claim = "with nobody connected, the article's code spins"
    evidence: list[str] = []
    try:
        empty = _cpu(run, MODEL, NO_CLIENT, "the article's code with no client")
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    evidence.append(f"the article's code with no client: {_percent(empty)} of a core")
    _reference_line(run, evidence, NO_CLIENT, "server_cpu_percent",
                    f"{REFERENCE} with no client", "% of a core")
    rule = (f"{_percent(empty)} of a core with no client "
            f"(spinning: at least {SPIN_MIN_CPU_PERCENT:g}%)")
    if empty.value >= SPIN_MIN_CPU_PERCENT:
        return ClaimResult(claim, Verdict.HOLDS, rule, evidence)
    group = probe(run, MODEL, NO_CLIENT)
    if group is not None and CONTENDED in group.flags:
        others = group.metric("server_cpus_other_percent")
        took = f" ({_percent(others)} of a core)" if others is not None else ""
        return ClaimResult(claim, Verdict.INCONCLUSIVE,
                           rule + f", but other processes took the server's CPU{took}",
                           evidence)
    return ClaimResult(claim, Verdict.DOES_NOT_HOLD, rule, evidence)


def sleeps_beside_an_idle_client(run: Run) -> ClaimResult:
    claim = ("with one idle client connected, it stops spinning: it sleeps in recv() on "
             "that client")
    evidence: list[str] = []
    try:
        idle = _cpu(run, MODEL, IDLE_CLIENT, "the article's code with one idle client")
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    evidence.append(f"the article's code with one idle client: {_percent(idle)} of a core")
    _reference_line(run, evidence, IDLE_CLIENT, "server_cpu_percent",
                    f"{REFERENCE} with one idle client", "% of a core")
    rule = (f"{_percent(idle)} of a core with one idle client "
            f"(asleep: at most {IDLE_CLIENT_MAX_CPU_PERCENT:g}%)")
    return ClaimResult(claim, Verdict.HOLDS if idle.value <= IDLE_CLIENT_MAX_CPU_PERCENT
                       else Verdict.DOES_NOT_HOLD, rule, evidence)


def _starved(run: Run, phase: str, claim: str, what: str) -> ClaimResult:
    """Holds when the article's probe left a request unanswered for STARVED_MIN_WAIT_S."""
    evidence: list[str] = []
    group = probe(run, MODEL, phase)
    try:
        wait = measured(group, "longest_wait_s", what)
        unanswered = measured(group, "starved_requests", what)
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    assert group is not None
    evidence.append(f"the article's code: longest wait {_seconds(wait)}, "
                    f"{format_spread('starved_requests', unanswered)} unanswered "
                    f"request(s)" + _cause(group))
    _reference_line(run, evidence, phase, "longest_wait_s", f"{REFERENCE}'s longest wait",
                    unit=" s")
    rule = (f"longest wait {_seconds(wait)}, {unanswered.value:g} unanswered "
            f"(starved: no answer for at least {STARVED_MIN_WAIT_S:g} s)")
    holds = unanswered.value >= 1 and wait.value >= STARVED_MIN_WAIT_S
    return ClaimResult(claim, Verdict.HOLDS if holds else Verdict.DOES_NOT_HOLD, rule,
                       evidence)


def second_client_starved(run: Run) -> ClaimResult:
    return _starved(run, SECOND_CLIENT,
                    "a second client gets no answer while the first one is idle",
                    "the second client's request")


def non_reader_stalls_the_rest(run: Run) -> ClaimResult:
    return _starved(run, NON_READER,
                    "a client that sends without reading stalls every other client "
                    "(the loop sleeps in send())",
                    "the other clients' requests")


def closed_loop_answers_everyone(run: Run) -> ClaimResult:
    claim = "in a closed loop it answers every request, including the last ones"
    evidence: list[str] = []
    group = probe(run, MODEL, CLOSED)
    reference = probe(run, REFERENCE, CLOSED)
    try:
        spread = measured(reference, "throughput_rps", f"{REFERENCE} in closed loop")
        evidence.append(f"{REFERENCE}: {format_spread('throughput_rps', spread)} req/s")
    except Missing as why:
        if reference is not None:
            evidence.append(f"{REFERENCE}: {why}")
    starved = [f for f in group.failures if f.startswith(STARVED)] if group else []
    if group is not None and group.failed and starved and len(starved) == len(group.failures):
        # The load generator opens its window once every connection has been answered
        # once: each sends one request and then waits, which is an idle client.
        evidence.insert(0, f"the article's code: {starved[0]}")
        return ClaimResult(claim, Verdict.DOES_NOT_HOLD,
                           f"{starved[0].split(';')[0]} in the load generator's first "
                           "exchange (one request per connection, then each waits for the "
                           "rest to be answered)", evidence)
    try:
        # Its load-generator errors are the starved requests, counted apart.
        throughput = measured(group, "throughput_rps", "the article's code in closed loop")
        unanswered = measured(group, "starved_requests", "the article's code in closed loop")
    except Missing as why:
        return ClaimResult(claim, Verdict.INCONCLUSIVE, str(why), evidence)
    evidence.insert(0, f"the article's code: {format_spread('throughput_rps', throughput)} "
                       f"req/s, {unanswered.value:g} request(s) unanswered at the end")
    rule = f"{unanswered.value:g} request(s) unanswered when the load ended"
    return ClaimResult(claim, Verdict.HOLDS if unanswered.value == 0
                       else Verdict.DOES_NOT_HOLD, rule, evidence)


# (key, figures, judge), as in claims.CLAIMS. The key is what documentation
# cites (claims.json); never rename one.
ARTICLE_VERDICTS = (
    ("article_spins_while_empty", (), spins_while_empty),
    ("article_sleeps_beside_idle_client", (), sleeps_beside_an_idle_client),
    ("article_second_client_starved", (), second_client_starved),
    ("article_closed_loop_answers_all", (), closed_loop_answers_everyone),
    ("article_non_reader_stalls_all", (), non_reader_stalls_the_rest),
)


def judge_article(run: Run) -> list[ClaimResult]:
    """The article-as-printed verdicts (empty when the run has no article scenario)."""
    if not run.scenario(SCENARIO):
        return []
    results = []
    for key, figures, judge in ARTICLE_VERDICTS:
        result = judge(run)
        result.key, result.figures = key, figures
        results.append(result)
    return results


# The figures table: (probe, what, phase, metric), in the order shown.
FIGURE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("no client", "server CPU (% of a core)", NO_CLIENT, "server_cpu_percent"),
    ("one idle client", "server CPU (% of a core)", IDLE_CLIENT, "server_cpu_percent"),
    ("second client beside an idle one", "its wait (s)", SECOND_CLIENT, "longest_wait_s"),
    ("second client beside an idle one", "unanswered within the bound", SECOND_CLIENT,
     "starved_requests"),
    ("closed loop", "throughput (req/s)", CLOSED, "throughput_rps"),
    ("closed loop", "unanswered at the end", CLOSED, "starved_requests"),
    ("beside a client that does not read", "the others' longest wait (s)", NON_READER,
     "longest_wait_s"),
    ("beside a client that does not read", "the others' unanswered requests", NON_READER,
     "starved_requests"),
)


def figure_table(run: Run) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each probe's figures, the article's code beside busy-poll's.

    A cell that was not run shows "-", a failed one "failed", never a 0.
    """
    rows = []
    for probe_name, what, phase, metric in FIGURE_ROWS:
        row = [probe_name, what]
        for model in (MODEL, REFERENCE):
            group = probe(run, model, phase)
            spread = group.metric(metric) if group is not None else None
            if group is not None and group.failed and spread is None:
                row.append("failed")
            else:
                row.append(format_spread(metric, spread) if spread is not None else "-")
        rows.append(row)
    return ["probe", "figure", "the article's code", REFERENCE], rows


def causes(run: Run) -> list[str]:
    """What the probes saw that the verdicts' evidence does not quote (busy-poll's probes,
    a server that died once its clients left), one line per cell, and why a cell failed."""
    lines = []
    for group in run.scenario(SCENARIO):
        notes = group.notes(SERVER_EXIT_NOTE)
        if group.model != MODEL:
            notes = group.notes(CAUSE_NOTE) + notes
        for note in notes:
            lines.append(f"{group.model}, {group.phase}: {note}")
        if group.failed:
            lines.append(f"{group.model}, {group.phase}: failed ({'; '.join(group.failures)})")
    return lines


def finding(run: Run) -> str | None:
    """Two sentences for README's findings: what the article's code really does.

    Made from the verdicts and their figures alone: one sentence on its CPU,
    one on the clients it leaves waiting. A verdict that does not hold or was
    not reached is named with its reason instead of its figure. None when the
    run has no article scenario.
    """
    verdicts = {result.key: result for result in judge_article(run)}
    if not verdicts:
        return None

    def held(key: str) -> bool:
        return verdicts[key].verdict is Verdict.HOLDS

    def unsettled(key: str) -> str:
        return f"{verdicts[key].verdict} in this run: {verdicts[key].reason}"

    if held("article_sleeps_beside_idle_client"):
        one = _percent(_cpu(run, MODEL, IDLE_CLIENT, "one idle client"))
        first = (f"The article's own server sleeps in recv() as soon as one idle client is "
                 f"connected ({one} of a core), because the sockets accept() returns are "
                 f"blocking on Linux")
        if held("article_spins_while_empty"):
            empty = _percent(_cpu(run, MODEL, NO_CLIENT, "no client"))
            first += f"; it spins ({empty}) only while nobody is connected."
        else:
            first += (f" (that it spins while nobody is connected was "
                      f"{unsettled('article_spins_while_empty')}).")
    else:
        first = ("The article's own server was measured with one idle client connected, but "
                 f"its sleeping in recv() was {unsettled('article_sleeps_beside_idle_client')}.")
    waits = []
    for key, phase, what in (
            ("article_second_client_starved", SECOND_CLIENT,
             "a second client went {} without an answer beside an idle one"),
            ("article_non_reader_stalls_all", NON_READER,
             "the others waited {} beside a client that did not read, the server asleep in "
             "send()")):
        if held(key):
            waits.append(what.format(_seconds(measured(probe(run, MODEL, phase),
                                                       "longest_wait_s", what))))
        else:
            waits.append(f"{verdicts[key].claim}: {unsettled(key)}")
    second = f"Every other client waits behind such a client: {'; '.join(waits)}."
    return f"{first} {second}"


def _cause(group: CellGroup) -> str:
    notes = group.notes(CAUSE_NOTE)
    return f": {notes[0]}" if notes else ""



def _percent(spread: Spread) -> str:
    return f"{format_spread('server_cpu_percent', spread)}%"


def _seconds(spread: Spread) -> str:
    return f"{format_spread('longest_wait_s', spread)} s"
