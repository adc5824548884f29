"""Work in the handler: what a real server does between reading a request and answering.

``work=cpu:50us`` computes in Python for that long per request, holding the
GIL as a handler that parses or renders does; the loop that takes that long
is calibrated when the server starts, on the CPU it is pinned to.
``work=block:1ms`` waits that long per request with the GIL released, as a
blocking database driver's call or a file read does (``time.sleep()``).

A request is ``request_bytes`` of a connection's stream (see
``iobench.servers.base.WORK_PARAMS``): :meth:`Work.completed` counts the
requests a read completes, and the caller does their work before it sends
that read's response bytes, so the bytes on the wire do not change.

:class:`Offload` is ``offload=pool``: the event loop hands a request's work
(and its transform) to a thread pool and goes on serving other connections;
the pool queues the answer and wakes the loop, which sends it.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from iobench.servers.base import transform, work_seconds

# Calibration. A first estimate times the spin loop over about a millisecond
# (the fastest of a few trials). On a CPU shared with other processes a trial
# that long is often preempted, which makes the work too short, so the count
# is then refined on runs of the target's own length, by their median: short
# runs mostly fit between preemptions, and the median ignores those that do
# not. Refined only for work up to REFINE_MAX_S, within a budget of time.
ESTIMATE_TRIAL_S = 0.001
ESTIMATE_TRIALS = 5
REFINE_MAX_S = 0.01
REFINE_ROUNDS = 2
REFINE_BUDGET_S = 0.05  # per round: runs = budget / target, between the bounds below
MIN_RUNS, MAX_RUNS = 3, 31

# Calibrated iterations by target seconds, kept for the process: prefork's
# workers are forked after the parent calibrated, and inherit it.
_CALIBRATED: dict[float, dict[str, Any]] = {}


def spin(iterations: int) -> int:
    """Pure-Python computation that holds the GIL throughout, as a handler's parsing does."""
    total = 0
    for i in range(iterations):
        total ^= i  # stays as small as i: a growing sum would slow as it leaves one digit
    return total


def calibrate(seconds: float) -> dict[str, Any]:
    """How many :func:`spin` iterations take ``seconds`` here, and what they measured."""
    if seconds in _CALIBRATED:
        return _CALIBRATED[seconds]
    iterations = 1000
    while _timed(iterations) < ESTIMATE_TRIAL_S:
        iterations *= 2
    per_iteration_s = min(_timed(iterations) for _ in range(ESTIMATE_TRIALS)) / iterations
    target = max(1, round(seconds / per_iteration_s))
    runs = max(MIN_RUNS, min(MAX_RUNS, int(REFINE_BUDGET_S / seconds)))
    if seconds > REFINE_MAX_S:  # long work: the estimate, and one run to record
        runs = 1
    else:
        for _ in range(REFINE_ROUNDS):
            measured = statistics.median(_timed(target) for _ in range(runs))
            target = max(1, round(target * seconds / measured))
    measured = statistics.median(_timed(target) for _ in range(runs))
    record = {"iterations": target, "per_iteration_ns": round(measured / target * 1e9, 3),
              "measured_us": round(measured * 1e6, 2), "runs": runs}
    _CALIBRATED[seconds] = record
    return record


def _timed(iterations: int) -> float:
    start = time.perf_counter()
    spin(iterations)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Work:
    """One request's work, and how many bytes make a request."""

    kind: str  # "cpu" or "block"
    seconds: float
    request_bytes: int
    iterations: int = 0  # cpu: the calibrated spin count
    calibration: dict[str, Any] | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Work | None:
        """The work a model's options ask for, calibrated; None for ``work=none``."""
        if options["work"] == "none":
            return None
        kind, seconds = work_seconds(options["work"])
        if kind == "cpu":
            record = calibrate(seconds)
            return cls(kind, seconds, options["request_bytes"], record["iterations"], record)
        return cls(kind, seconds, options["request_bytes"])

    def completed(self, received_before: int, nbytes: int) -> int:
        """Requests a read of ``nbytes`` completes, ``received_before`` bytes into the stream."""
        size = self.request_bytes
        return (received_before + nbytes) // size - received_before // size

    def run(self, requests: int) -> None:
        """Do ``requests`` requests' work, here, in the calling thread."""
        for _ in range(requests):
            if self.kind == "cpu":
                spin(self.iterations)
            else:
                time.sleep(self.seconds)

    def answer(self, requests: int, data: bytes) -> bytes:
        """The work, then the response: what a pool thread does for the loop."""
        self.run(requests)
        return transform(data)

    def describe(self) -> dict[str, Any]:
        """For the ready line: what was asked, and for cpu work what calibration found."""
        described: dict[str, Any] = {"kind": self.kind, "target_us": round(self.seconds * 1e6, 3),
                                     "request_bytes": self.request_bytes}
        if self.calibration is not None:
            described.update(self.calibration)
        return described


class Offload:
    """A thread pool that does requests' work for a loop and queues the answers.

    ``wake`` is called from the pool thread after an answer is queued: it
    must make the loop look at :meth:`completed` soon (write to its waker
    socketpair, raise its signal). The owner is whatever the loop needs to
    find the connection again.
    """

    def __init__(self, work: Work, threads: int, wake: Callable[[], None]) -> None:
        self.work = work
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="offload")
        self._wake = wake
        # deque.append and popleft are atomic: the pool appends, the loop takes.
        self._done: deque[tuple[Any, bytes]] = deque()
        self._closed = threading.Event()

    def submit(self, owner: Any, requests: int, data: bytes) -> None:
        future = self._pool.submit(self.work.answer, requests, data)
        future.add_done_callback(lambda done: self._finished(owner, done))

    def _finished(self, owner: Any, future: Future[bytes]) -> None:
        if future.cancelled() or self._closed.is_set():
            return
        self._done.append((owner, future.result()))
        self._wake()

    def completed(self) -> list[tuple[Any, bytes]]:
        """Every answer the pool has finished since the last call, oldest first."""
        done = []
        while self._done:
            done.append(self._done.popleft())
        return done

    def close(self) -> None:
        """Drop queued work; a request in progress finishes, unanswered, in its thread."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
