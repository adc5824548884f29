"""The article's claim about idle servers, measured with psutil.

A busy-polling server burns a core with no traffic at all. The other side of
the claim (every server that waits uses next to nothing) is in test_idle_cpu.
"""

from __future__ import annotations

import time

from iobench.servers.process import ServerProcess
from tests.helpers import tree_cpu_seconds

IDLE_WINDOW_S = 2.0
SETTLE_S = 0.3


def idle_cpu_percent(model: str) -> float:
    """Server CPU over an idle window, as percent of one core (children included)."""
    with ServerProcess(model) as server:
        time.sleep(SETTLE_S)
        cpu_before, started = tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        cpu_after, elapsed = tree_cpu_seconds(server.pid), time.monotonic() - started
    return 100.0 * (cpu_after - cpu_before) / elapsed


def test_busy_poll_burns_a_core_when_idle() -> None:
    assert idle_cpu_percent("busy-poll") >= 80.0
