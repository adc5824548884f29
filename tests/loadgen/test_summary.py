"""The human summary of a load run: every figure it prints is the one in the JSON."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from iobench.loadgen import LoadParams, run
from iobench.loadgen.summary import format_summary, format_us
from tests.loadgen.faulty_servers import FaultyServer, Handler, upper_echo

StartServer = Callable[[Handler], FaultyServer]


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (0, "0us"), (999.4, "999us"), (1000, "1.00ms"), (12_345, "12.35ms"),
    (999_999, "1000.00ms"), (1_000_000, "1.00s"), (2_500_000, "2.50s"),
])
def test_format_us_picks_the_unit(value: float | None, text: str) -> None:
    assert format_us(value) == text


@pytest.fixture(scope="module")
def open_result() -> dict[str, Any]:
    server = FaultyServer(upper_echo)
    try:
        return run(LoadParams(target=server.target, mode="open", rate_rps=300.0,
                              connections=3, duration_s=0.4, warmup_s=0.1, size_bytes=80)).to_json()
    finally:
        server.stop()


def lines_of(result: dict[str, Any]) -> dict[str, str]:
    """Summary lines by their first word (the header under 'header')."""
    lines = format_summary(result).splitlines()
    table = {"header": lines[0]}
    for line in lines[1:]:
        words = line.split()
        table.setdefault(words[0], line)
    return table


def test_summary_figures_are_the_results(open_result: dict[str, Any]) -> None:
    result = open_result
    lines = lines_of(result)
    target = result["params"]["target"]
    assert lines["header"] == (
        f"open loop against {target}: 3 connections, 80 B messages, 1 worker(s), 0.4 s "
        "measured after 0.1 s warm-up, target 300 req/s (uniform)")
    assert lines["requests"].split() == ["requests", str(result["requests"]), "in",
                                         f"{result['measured_s']:.3f}", "s"]
    assert lines["throughput"].split() == ["throughput", f"{result['throughput_rps']:.1f}",
                                           "req/s"]
    client = result["client"]
    assert f"{client['achieved_rate_rps']:.1f} req/s of 300" in lines["sent"]
    assert lines["errors"].split() == ["errors", "0"]
    assert lines["client"].startswith(f"  client CPU   {client['cpu_percent'][0]:.0f}% per worker")
    text = format_summary(result)
    for title, latency in (("latency (from intended send time)", result["latency"]),
                           ("latency, uncorrected (from actual send time)",
                            result["latency_uncorrected"])):
        block = text.split(f"  {title}\n", 1)[1].splitlines()
        assert block[0].split() == ["50%", "90%", "99%", "99.9%", "99.99%", "max", "mean"]
        assert block[1].split() == [format_us(latency[name]) for name in (
            "p50_us", "p90_us", "p99_us", "p99_9_us", "p99_99_us", "max_us", "mean_us")]
    assert "WARNING" not in text


def test_errors_and_warnings_appear_only_when_set(open_result: dict[str, Any]) -> None:
    result = copy.deepcopy(open_result)
    result["errors"].update(mismatch=2, timeout=1, total=3)
    result["client_saturated"] = True
    result["behind_schedule"] = True
    result["client"]["achieved_rate_rps"] = 250.0
    lines = format_summary(result).splitlines()
    assert "  errors       3 (mismatch 2, timeout 1)" in lines
    assert any(line.startswith("  WARNING: the load generator used nearly all its CPU")
               for line in lines)
    assert "  WARNING: the open loop could not keep its rate (sent 250 of 300 req/s)" in lines


def test_closed_loop_summary_has_no_open_loop_lines(faulty_server: StartServer) -> None:
    server = faulty_server(upper_echo)
    result = run(LoadParams(target=server.target, connections=2, duration_s=0.3,
                            warmup_s=0.0, size_bytes=64)).to_json()
    text = format_summary(result)
    assert text.startswith(f"closed loop against {server.target}: 2 connections, 64 B")
    assert "target" not in text.splitlines()[0] and "sent rate" not in text
    assert "uncorrected" not in text and "\n  latency\n" in text
