"""The article-as-printed verdicts, computed from cell records with known figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iobench.benchmarks.report import article
from iobench.benchmarks.report.claims import Verdict
from iobench.benchmarks.results.loader import Run, group_cells
from iobench.benchmarks.results.record import STATUS_FAILED, CellRecord, Metrics

# What the article's code and busy-poll did on a 2-CPU machine (issue figures).
STORY: dict[tuple[str, str, int | None], dict[str, Any]] = {
    ("article", "no-client", None): {"server_cpu_percent": 99.1},
    ("article", "idle-client", None): {"server_cpu_percent": 0.0},
    ("article", "second-client", None): {"longest_wait_s": 1.31, "starved_requests": 1},
    ("article", "closed-loop", None): {"throughput_rps": 60000.0, "starved_requests": 0},
    ("article", "non-reader", None): {"longest_wait_s": 1.36, "starved_requests": 2},
    ("busy-poll", "no-client", None): {"server_cpu_percent": 99.5},
    ("busy-poll", "idle-client", None): {"server_cpu_percent": 99.4},
    ("busy-poll", "second-client", None): {"longest_wait_s": 0.004,
                                           "starved_requests": 0},
    ("busy-poll", "closed-loop", None): {"throughput_rps": 50000.0, "starved_requests": 0},
    ("busy-poll", "non-reader", None): {"longest_wait_s": 0.08, "starved_requests": 0},
}


FAILED = "the server exited with code 1"


def make_run(changes: dict[tuple[str, str, int | None], dict[str, Any]] | None = None,
             failed: tuple[str, str, int | None] | None = None, reason: str = FAILED,
             flags: dict[tuple[str, str, int | None], list[str]] | None = None) -> Run:
    records = []
    for point, figures in STORY.items():
        model, phase, connections = point
        figures = {**figures, **(changes or {}).get(point, {})}
        record = CellRecord(key=f"article/{model}/{phase}/c{connections}", scenario="article",
                            model=model, phase=phase, connections=connections,
                            metrics=Metrics(**figures))
        if point == failed:
            record.status, record.reason = STATUS_FAILED, reason
        for flag in (flags or {}).get(point, []):
            record.flag(flag, "other processes used 60% of the server's CPU")
        if phase == "second-client" and model == "article":
            record.notes[article.CAUSE_NOTE] = "the server was asleep in recvfrom()"
        records.append(record)
    return Run(Path("."), {}, group_cells(records))


def verdicts(run: Run) -> dict[str, Verdict]:
    return {result.key: result.verdict for result in article.judge_article(run)}


def test_every_verdict_holds_on_the_issues_figures() -> None:
    results = article.judge_article(make_run())
    assert [r.key for r in results] == [key for key, _, _ in article.ARTICLE_VERDICTS]
    assert all(r.verdict is Verdict.HOLDS for r in results), [(r.key, r.reason) for r in results]
    second = next(r for r in results if r.key == "article_second_client_starved")
    assert "recvfrom" in " ".join(second.evidence)
    assert any("busy-poll" in line for line in second.evidence)


def test_thresholds_decide_each_verdict() -> None:
    run = make_run({("article", "no-client", None): {"server_cpu_percent": 89.0},
                    ("article", "idle-client", None): {"server_cpu_percent": 5.1},
                    ("article", "second-client", None): {"longest_wait_s": 0.99},
                    ("article", "closed-loop", None): {"starved_requests": 3},
                    ("article", "non-reader", None): {"starved_requests": 0}})
    assert set(verdicts(run).values()) == {Verdict.DOES_NOT_HOLD}


def test_a_failed_cell_leaves_its_verdict_inconclusive() -> None:
    found = {r.key: r for r in article.judge_article(
        make_run(failed=("article", "non-reader", None)))}
    assert found["article_non_reader_stalls_all"].verdict is Verdict.INCONCLUSIVE
    assert "failed" in found["article_non_reader_stalls_all"].reason
    assert found["article_second_client_starved"].verdict is Verdict.HOLDS


def test_contention_excuses_a_low_spin_figure_only() -> None:
    """Other processes on its CPU can only lower the server's figure: below the
    threshold that is inconclusive, above it the claim still holds."""
    contended = {("article", "no-client", None): ["cpu_contended"]}
    low = {("article", "no-client", None): {"server_cpu_percent": 37.6,
                                    "server_cpus_other_percent": 60.0}}
    found = {r.key: r for r in article.judge_article(make_run(low, flags=contended))}
    spin = found["article_spins_while_empty"]
    assert spin.verdict is Verdict.INCONCLUSIVE and "60.0%" in spin.reason
    assert verdicts(make_run(flags=contended))["article_spins_while_empty"] is Verdict.HOLDS
    assert verdicts(make_run(low))["article_spins_while_empty"] is Verdict.DOES_NOT_HOLD


def test_a_run_without_the_scenario_has_no_verdicts_and_no_finding() -> None:
    empty = Run(Path("."), {}, [])
    assert article.judge_article(empty) == []
    assert article.finding(empty) is None


def test_the_finding_is_two_sentences_from_the_figures() -> None:
    text = article.finding(make_run())
    assert text is not None
    assert text.count(". ") + text.endswith(".") == 2, text
    for figure in ("99.1%", "0.0%", "1.310 s", "1.360 s"):
        assert figure in text
    contended = article.finding(make_run(
        {("article", "no-client", None): {"server_cpu_percent": 40.0,
                                      "server_cpus_other_percent": 58.0}},
        flags={("article", "no-client", None): ["cpu_contended"]}))
    assert contended is not None and "inconclusive in this run" in contended
    assert "0.0%" in contended and "1.310 s" in contended


def test_the_figures_table_puts_busy_poll_beside_the_article_and_no_zero_for_a_gap() -> None:
    run = make_run(failed=("busy-poll", "closed-loop", None))
    headers, rows = article.figure_table(run)
    assert headers[2:] == ["the article's code", "busy-poll"]
    by_figure = {(row[0], row[1]): row[2:] for row in rows}
    assert by_figure[("no client", "server CPU (% of a core)")] == ["99.1", "99.5"]
    assert by_figure[("second client beside an idle one", "its wait (s)")] == ["1.310", "0.004"]
    assert by_figure[("closed loop", "throughput (req/s)")][1] == "failed"
    lines = article.causes(run)
    assert not any("recvfrom" in line for line in lines)  # quoted by its verdict
    assert any("busy-poll, closed-loop: failed" in line for line in lines)


def test_busy_poll_idle_cpu_comes_from_the_idle_scenario() -> None:
    run = make_run()
    run.groups = [g for g in run.groups
                  if not (g.model == "busy-poll" and g.phase in article.IDLE_CONNECTIONS)]
    run.groups += group_cells([CellRecord(key="idle/busy-poll/c0", scenario="idle",
                                          model="busy-poll", mode="idle", connections=0,
                                          metrics=Metrics(server_cpu_percent=98.7))])
    _, rows = article.figure_table(run)
    assert rows[0][2:] == ["99.1", "98.7"] and rows[1][3] == "-"


def test_a_closed_loop_the_load_generator_called_off_as_starved_does_not_hold() -> None:
    starved = ("starved: 3 of 4 connections unanswered after 1 s; the load generator "
               "reported 3 errors (timeout=3)")
    found = {r.key: r for r in article.judge_article(
        make_run(failed=("article", "closed-loop", None), reason=starved))}
    closed = found["article_closed_loop_answers_all"]
    assert closed.verdict is Verdict.DOES_NOT_HOLD
    assert closed.reason.startswith("starved: 3 of 4 connections unanswered after 1 s")
    assert any("busy-poll: 50,000 req/s" in line for line in closed.evidence)
    other = {r.key: r for r in article.judge_article(
        make_run(failed=("article", "closed-loop", None)))}["article_closed_loop_answers_all"]
    assert other.verdict is Verdict.INCONCLUSIVE
