"""The load generator's counts against independent ones: what the server saw, and when.

``requests``, ``measured_s`` and ``throughput_rps`` are checked against a server
that counts and times every message it receives, not against the load
generator's own formula; a throughput off by 10% fails here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iobench.loadgen import LoadParams, run
from tests.loadgen.faulty_servers import FaultyServer, Handler, MessageCounter

StartServer = Callable[[Handler], FaultyServer]
SIZE = 100
CONNECTIONS = 4
# Two independent clocks of the same window agree this closely: the server's
# span misses the first round trip and the edges hold at most a few requests.
RATE_TOLERANCE = 0.05


@pytest.mark.parametrize("workers", [1, 2])
def test_closed_loop_counts_match_the_server(faulty_server: StartServer, workers: int) -> None:
    counter = MessageCounter(SIZE)
    server = faulty_server(counter)
    # No warm-up: every request the server sees is one the window sent.
    result = run(LoadParams(target=server.target, connections=CONNECTIONS, duration_s=1.0,
                            warmup_s=0.0, size_bytes=SIZE, workers=workers)).to_json()
    # The first exchange (one request per connection, before the start) is
    # not the window's: the server saw those first.
    arrivals = counter.snapshot()[CONNECTIONS:]
    seen, requests = len(arrivals), result["requests"]
    assert result["errors"]["total"] == 0
    assert requests > 100, result
    # Each response counted had its request seen; a request may be seen without its
    # response counted: one per connection sent at the start before the window
    # opened, and one per connection still on the wire when it closed.
    assert requests <= seen <= requests + 2 * CONNECTIONS, (requests, seen)
    span_s = (arrivals[-1] - arrivals[0]) / 1e9
    assert result["measured_s"] == pytest.approx(span_s, rel=RATE_TOLERANCE), (
        f"load generator measured {result['measured_s']:.3f} s, the server saw "
        f"requests over {span_s:.3f} s")
    server_rate = seen / span_s
    assert result["throughput_rps"] == pytest.approx(server_rate, rel=RATE_TOLERANCE), (
        f"throughput {result['throughput_rps']:.0f} req/s, the server saw "
        f"{server_rate:.0f} req/s")


def test_open_loop_sends_exactly_its_schedule(faulty_server: StartServer) -> None:
    """Uniform arrivals at 400 req/s for 1 s: 400 requests, no more, no fewer."""
    counter = MessageCounter(SIZE)
    server = faulty_server(counter)
    rate, duration = 400.0, 1.0
    result = run(LoadParams(target=server.target, mode="open", rate_rps=rate,
                            connections=CONNECTIONS, duration_s=duration, warmup_s=0.0,
                            size_bytes=SIZE)).to_json()
    arrivals = counter.snapshot()
    intended = round(rate * duration)
    assert result["errors"]["total"] == 0
    assert result["behind_schedule"] is False, result["client"]
    assert len(arrivals) == intended, f"the server saw {len(arrivals)} of {intended} requests"
    # Responses that arrived in the window: all but those still on the wire at its end.
    assert intended - CONNECTIONS <= result["requests"] <= intended
    assert result["client"]["achieved_rate_rps"] == pytest.approx(rate, rel=0.01)
    span_s = (arrivals[-1] - arrivals[0]) / 1e9
    # The server saw the first and the last of 400 sends 2.5 ms apart: 399 gaps.
    assert span_s == pytest.approx((intended - 1) / rate, rel=0.02)
    assert result["throughput_rps"] == pytest.approx(result["requests"] / duration, rel=0.02)
    assert result["measured_s"] == pytest.approx(span_s, rel=RATE_TOLERANCE)
