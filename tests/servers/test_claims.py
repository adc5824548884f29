"""The article's claim about idle servers, measured with psutil.

A busy-polling server burns a core with no traffic at all; a server that
waits in the kernel (select, a blocked thread) or sleeps long enough between
polls uses next to nothing. Margins are wide, so these hold on a noisy machine.
"""

from __future__ import annotations

import time

import pytest

from servers.process import ServerProcess
from tests.helpers import tree_cpu_seconds

IDLE_WINDOW_S = 2.0
SETTLE_S = 0.3


def idle_cpu_percent(model: str, params: dict | None = None) -> float:
    """Server CPU over an idle window, as percent of one core (children included)."""
    with ServerProcess(model, params) as server:
        time.sleep(SETTLE_S)
        cpu_before, started = tree_cpu_seconds(server.pid), time.monotonic()
        time.sleep(IDLE_WINDOW_S)
        cpu_after, elapsed = tree_cpu_seconds(server.pid), time.monotonic() - started
    return 100.0 * (cpu_after - cpu_before) / elapsed


def test_busy_poll_burns_a_core_when_idle() -> None:
    assert idle_cpu_percent("busy-poll") >= 80.0


@pytest.mark.parametrize(("model", "params"), [
    ("select", None),
    ("threads", None),
    ("poll-sleep", {"interval": "10ms"}),
])
def test_waiting_servers_are_nearly_free_when_idle(model: str, params: dict | None) -> None:
    assert idle_cpu_percent(model, params) <= 10.0
