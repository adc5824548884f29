"""Little's law for churn cells and short windows."""

from __future__ import annotations

from iobench.benchmarks.results import plausibility
from iobench.benchmarks.results.record import CellRecord


def test_littles_law_counts_a_churned_connections_handshake() -> None:
    cell = CellRecord(key="k", scenario="churn", model="epoll", mode="closed", connections=16,
                      requests_per_connection=1)
    cell.metrics.throughput_rps = 8000.0
    cell.metrics.requests = 4000
    cell.metrics.mean_us = 1500.0  # 12 requests in flight
    cell.metrics.connections_per_s = 8000.0
    assert plausibility.littles_law(cell) is not None
    cell.load = {"churn": {"connect_latency": {"mean_us": 500.0}}}  # and 4 connecting
    assert plausibility.littles_law(cell) is None


def test_littles_law_allows_for_the_requests_in_flight_when_a_short_window_opened() -> None:
    """Fork at K = 1: 47 requests at 150 ms in a 0.5 s window, 16 still unanswered."""
    cell = CellRecord(key="k", scenario="churn", model="fork", mode="closed", connections=16,
                      requests_per_connection=1)
    cell.metrics.throughput_rps = 94.0
    cell.metrics.requests = 47
    cell.metrics.unanswered_requests = 16
    cell.metrics.mean_us = 149_000.0  # 18.8 in flight: whole latencies from before the window
    assert plausibility.littles_law(cell) is None
    cell.metrics.mean_us = 100_000.0  # 12.6 in flight: requests missing, never allowed
    assert plausibility.littles_law(cell) is not None


def test_the_kernel_per_connection_rules_leave_churn_cells_alone() -> None:
    """A reading of a churning server holds only the connections open at that moment."""
    cell = CellRecord(key="k", scenario="churn", model="threads", mode="closed", connections=16,
                      requests_per_connection=10)
    cell.metrics.kernel_bytes_per_connection = 100.0
    assert plausibility.kernel_holds_stack(cell) is None
    assert plausibility.kernel_holds_socket(cell) is None
    cell.requests_per_connection = None
    assert plausibility.kernel_holds_stack(cell) is not None
