"""Open-loop schedules: when each connection's requests are meant to go out."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from iobench.loadgen.plan import WorkerPlan


def open_schedule(plan: WorkerPlan, start_ns: int
                  ) -> tuple[list[tuple[int, int]], Callable[[int], int]]:
    """The first intended send time of each connection, and a 'next after' function.

    Uniform: connection g of C sends every C/R seconds, offset by g/R, so
    the total is a steady R. Poisson: exponential gaps at R/C per connection,
    whose superposition is a Poisson stream at R.
    """
    total_rate = plan.total_rate_rps or 0.0
    worker_rate = plan.rate_rps or 0.0
    per_connection_rate = worker_rate / max(len(plan.connection_indices), 1)
    heap: list[tuple[int, int]] = []
    if plan.arrival == "uniform":
        interval_ns = round(1e9 / per_connection_rate)
        for slot, index in enumerate(plan.connection_indices):
            heap.append((start_ns + round(index * 1e9 / total_rate), slot))

        def next_after(due_ns: int) -> int:
            return due_ns + interval_ns
    else:
        rng = random.Random(plan.seed * 1_000_003 + plan.worker_index)
        expovariate = rng.expovariate
        for slot in range(len(plan.connection_indices)):
            heap.append((start_ns + int(expovariate(per_connection_rate) * 1e9), slot))

        def next_after(due_ns: int) -> int:
            return due_ns + int(expovariate(per_connection_rate) * 1e9)
    heapq.heapify(heap)
    return heap, next_after
