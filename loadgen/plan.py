"""What a worker is told (its plan) and what it hands back (its result).

Both cross between processes as JSON lines, so they hold plain values only.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# idle_closed: an idle connection (--idle) found closed by the server at the end.
ERROR_KINDS = ("mismatch", "connect", "reset", "timeout", "short", "idle_closed")


@dataclass(frozen=True)
class WorkerPlan:
    """One worker's share of a run."""

    worker_index: int
    family: int
    sockaddr: tuple
    connection_indices: tuple[int, ...]  # global indices, they stagger open-loop schedules
    mode: str
    size_bytes: int
    expect: str
    rate_rps: float | None  # this worker's share of the total rate
    total_rate_rps: float | None
    arrival: str
    timeout_s: float
    warmup_s: float
    duration_s: float
    seed: int
    # This worker's share of the idle connections, by global index: the index
    # picks the source address, so shards on one host never collide.
    idle_first: int = 0
    idle_count: int = 0
    idle_total: int = 0
    # Churn: requests per connection before it is closed and another opened (None: never).
    requests_per_connection: int | None = None


@dataclass
class WorkerResult:
    """What a worker hands back: counters and its latency histograms, encoded."""

    worker_index: int
    connected: int = 0
    idle_connected: int = 0  # idle connections established before the start
    idle_open: int = 0  # of those, still open at the end
    requests: int = 0  # completed in the measured window
    unfinished: int = 0  # open loop: meant for the window, still owed when the drain ended
    sent_in_window: int = 0  # requests actually sent during the measured window
    measured_s: float = 0.0
    window_end_ns: int = 0  # CLOCK_MONOTONIC at the end of the measured window (this host)
    cpu_s: float = 0.0  # this process's user + system CPU during the measured window
    max_schedule_lag_us: float = 0.0
    histogram: str | None = None
    histogram_uncorrected: str | None = None
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    first_connect_error: str | None = None
    # Connections, their churn and the window's edges (see iobench.loadgen.connection_report).
    connect_errors: dict[str, int] = field(default_factory=dict)  # by errno name, whole run
    connects: int = 0  # churn: connections established in the measured window
    connections_completed: int = 0  # churn: closed after their K-th response, in the window
    connect_histogram: str | None = None  # churn: connect latency in the window
    unanswered: int = 0  # closed loop: requests on the wire when the window closed
    unanswered_histogram: str | None = None  # their ages at that moment
    starved: int = 0  # connections without an answer when the first exchange gave up
    starved_after_s: float = 0.0  # how long the first exchange waited
    timed_out_connections: int = 0  # closed for a request unanswered past --timeout


def plan_to_json(plan: WorkerPlan) -> str:
    """Plans and results cross to and from worker processes as JSON lines."""
    return json.dumps(dataclasses.asdict(plan))


def plan_from_json(text: str) -> WorkerPlan:
    fields: dict[str, Any] = json.loads(text)
    fields["sockaddr"] = tuple(fields["sockaddr"])
    fields["connection_indices"] = tuple(fields["connection_indices"])
    return WorkerPlan(**fields)


def result_from_json(text: str) -> WorkerResult:
    return WorkerResult(**json.loads(text))
