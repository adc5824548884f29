"""Each plausibility rule fires on a cell crafted to break it, and only on that one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iobench.benchmarks.report.claims import Verdict, judge_claims
from iobench.benchmarks.report.document import write_all
from iobench.benchmarks.results.loader import load_run
from iobench.benchmarks.results.plausibility import IMPLAUSIBLE, RULES, judge, violations
from iobench.benchmarks.results.record import CellRecord, Metrics
from tests.benchmarks.results_factory import make_results, write_run

ONE_CPU = {"server_cpus": [0], "client_cpus": [1]}


def closed(**metrics: Any) -> CellRecord:
    """A plausible closed-loop cell at 16 connections, with ``metrics`` changed."""
    values = {"throughput_rps": 16000.0, "mean_us": 1000.0, "server_cpu_percent": 80.0}
    return CellRecord(key="closed/select/c16/s64", scenario="closed", model="select",
                      mode="closed", connections=16, size_bytes=64, placement=ONE_CPU,
                      metrics=Metrics(**{**values, **metrics}))


def scale(model: str, **metrics: Any) -> CellRecord:
    """A plausible scale cell: 16 active connections beside 10,000 idle ones."""
    values = {"throughput_rps": 16000.0, "mean_us": 1000.0, "server_cpu_percent": 80.0}
    return CellRecord(key=f"scale/{model}/i10000/c16/s64", scenario="scale", model=model,
                      mode="closed", connections=16, idle_connections=10_000, size_bytes=64,
                      placement=ONE_CPU, metrics=Metrics(**{**values, **metrics}))


CRAFTED = {
    # fork's 114.2% of one core while pinned to one CPU
    "cpu_within_cpus": closed(server_cpu_percent=114.2),
    # busy-poll's 0.0% at 190,000 req/s
    "cpu_when_serving": closed(server_cpu_percent=0.0, throughput_rps=190_000.0,
                               mean_us=16 / 190_000 * 1e6),
    "neighbour_not_faster": CellRecord(
        key="neighbour/select/load/r200/c4/s64", scenario="neighbour", model="select",
        mode="open", phase="load", connections=4, rate_rps=200.0, placement=ONE_CPU,
        metrics=Metrics(neighbour_ratio=1.22, throughput_rps=200.0)),
    "open_within_offered": CellRecord(
        key="open/select/r500/c4/s64", scenario="open", model="select", mode="open",
        connections=4, rate_rps=500.0, placement=ONE_CPU,
        metrics=Metrics(throughput_rps=800.0, server_cpu_percent=10.0)),
    "littles_law": closed(mean_us=300.0),
    # epoll holding 10,016 connections for 300 kernel bytes each
    "kernel_holds_socket": scale("epoll", kernel_bytes_per_connection=300.0),
    # a thread per connection for 4 KB each: less than its kernel stack
    "kernel_holds_stack": scale("threads", kernel_bytes_per_connection=4000.0),
}


def test_every_rule_has_a_crafted_cell() -> None:
    assert set(CRAFTED) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CRAFTED))
def test_the_rule_fires_on_its_crafted_cell_and_no_other_does(rule: str) -> None:
    cell = judge(CRAFTED[rule])
    assert [v.rule for v in cell.implausible] == [rule]
    assert IMPLAUSIBLE in cell.flags
    assert cell.implausible[0].seen  # what was seen, for the report


def test_a_plausible_cell_breaks_nothing() -> None:
    assert violations(closed()) == []
    assert violations(CellRecord(key="k", scenario="closed", model="select", mode="closed",
                                 connections=16)) == []  # nothing measured, nothing judged


def test_cpu_limit_scales_with_the_server_cpus() -> None:
    two = closed(server_cpu_percent=180.0)
    two.placement = {"server_cpus": [0, 1], "client_cpus": [2]}
    assert violations(two) == []
    assert [v.rule for v in violations(closed(server_cpu_percent=180.0))] == ["cpu_within_cpus"]


def test_unmeasured_cpu_is_not_judged_as_zero() -> None:
    assert violations(closed(server_cpu_percent=None)) == []


def test_a_failed_cell_is_not_judged() -> None:
    cell = closed(server_cpu_percent=500.0)
    cell.status = "failed"
    assert judge(cell).implausible == [] and IMPLAUSIBLE not in cell.flags


def test_an_implausible_cell_is_left_out_of_verdicts(tmp_path: Path) -> None:
    def zero_cpu_busy_poll(cell: dict[str, Any]) -> None:
        # An idle busy poller that "used 150% of its one CPU": the claim may not rest on it.
        if cell["model"] == "busy-poll" and cell["scenario"] == "idle":
            cell["metrics"]["server_cpu_percent"] = 150.0
    run = load_run(write_run(tmp_path, make_results(tweak=zero_cpu_busy_poll)))
    assert {c.key for c in run.implausible} == {"idle/busy-poll/c0", "idle/busy-poll/c100"}
    verdicts = {c.claim: c for c in judge_claims(run)}
    busy = verdicts["Busy polling drives CPU up"]
    assert busy.verdict == Verdict.INCONCLUSIVE
    assert "implausible (cpu_within_cpus)" in busy.reason


def test_the_report_lists_what_was_set_aside(tmp_path: Path) -> None:
    def broken(cell: dict[str, Any]) -> None:
        if cell["key"] == "closed/select/c16/s64" and cell["repetition"] == 0:
            cell["metrics"]["server_cpu_percent"] = 0.0  # at thousands of requests/s
        if cell["key"] == "idle/threads/c0" and cell["repetition"] == 0:
            cell["metrics"]["server_cpu_percent"] = None
            cell["flags"].append("cpu_unmeasured")
            cell["notes"]["cpu_unmeasured"] = "the server had exited before an edge"
    run_dir = write_run(tmp_path, make_results(tweak=broken))
    write_all(run_dir)
    text = (run_dir / "REPORT.md").read_text(encoding="utf-8")
    section = text.split("## Figures set aside", 1)[1].split("\n## ", 1)[0]
    assert "| `closed/select/c16/s64` | 0 | `cpu_when_serving` | server CPU 0.0% while " \
           "serving" in section
    assert "`idle/threads/c0` (repetition 0): the server had exited before an edge" in section
    assert "`closed/select/c1/s64`" not in section  # plausible cells are not listed


def test_a_claim_steps_down_past_an_implausible_point(tmp_path: Path) -> None:
    def threads_off_at_the_top(cell: dict[str, Any]) -> None:
        # threads at 128 connections with a third of them in flight (Little's law)
        if cell["key"] == "closed/threads/c128/s64":
            cell["metrics"]["mean_us"] /= 3
    run = load_run(write_run(tmp_path, make_results(tweak=threads_off_at_the_top)))
    select = {c.claim: c for c in judge_claims(run)}[
        "select watches many connections efficiently"]
    assert select.verdict == Verdict.INCONCLUSIVE
    assert "closed loop, 128 connections: threads implausible (littles_law)" in select.evidence
    assert any(line.startswith("closed loop, 16 connections: select") for line in select.evidence)


def test_kernel_memory_that_the_kernel_must_hold_is_plausible() -> None:
    # measured here: epoll 3.6 KB and threads 28 KB of kernel memory per idle connection
    assert violations(scale("epoll", kernel_bytes_per_connection=3600.0)) == []
    assert violations(scale("threads", kernel_bytes_per_connection=28_000.0)) == []
    # a pool of threads does not start one per connection: a socket's worth is enough
    assert violations(scale("threadpool", kernel_bytes_per_connection=3600.0)) == []
    # nothing counted the kernel's memory: nothing to judge
    assert violations(scale("threads", kernel_bytes_per_connection=None)) == []


def test_kernel_minimums_allow_for_the_cgroups_noise_over_few_connections() -> None:
    # Over 16 connections a page table or a per-CPU cache moves the figure by
    # kilobytes a connection; over 10,016 it cannot hide a missing stack.
    few = closed(kernel_bytes_per_connection=-500.0)
    assert violations(few) == []
    many = scale("epoll", kernel_bytes_per_connection=-500.0)
    assert [v.rule for v in violations(many)] == ["kernel_holds_socket"]


def test_a_model_this_iobench_does_not_know_is_judged_by_the_socket_alone() -> None:
    assert violations(scale("someone-elses", kernel_bytes_per_connection=3600.0)) == []


def test_connections_that_come_and_go_are_not_held_to_the_kernels_minimum() -> None:
    # churn: fork's children exit with their connection, so little is held at once
    churned = scale("fork", kernel_bytes_per_connection=512.0)
    churned.requests_per_connection = 1
    assert violations(churned) == []
