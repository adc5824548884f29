"""The closed loop: each connection sends, waits for the whole response, sends again."""

from __future__ import annotations

import time

from iobench.loadgen.histograms import histogram_from_counts
from iobench.loadgen.worker import EPOLLOUT, NS_PER_US, SWEEP_INTERVAL_NS, Worker


class ClosedLoopWorker(Worker):
    """Peak throughput: as many requests as the server (or this client) can turn around."""

    def _run(self, start_ns: int, measure_ns: int, end_ns: int) -> None:
        now = time.monotonic_ns()
        for connection in list(self.by_fd.values()):
            self._start_request(connection, now)
        process = self.process
        self._loop(measure_ns, None)
        cpu_start = sum(process.cpu_times()[:2])
        counts: dict[int, int] = {}
        self.result.requests = self._loop(end_ns, counts)
        self.result.cpu_s = sum(process.cpu_times()[:2]) - cpu_start
        self._count_unanswered(end_ns, counts)
        if self.churn is not None:
            self.churn.recording = False
            self.churn.close()
        self.result.timed_out_connections += self._drain(end_ns + self.timeout_ns)
        self.result.sent_in_window = self.result.requests
        self.result.histogram = histogram_from_counts(counts).encode().decode("ascii")

    def _count_unanswered(self, end_ns: int, counts: dict[int, int]) -> None:
        """Requests on the wire when the window closes: counted, with their ages, never dropped.

        Each one's waiting time so far goes into the latency figures too, as
        a lower bound of its latency: a connection the server starves shows
        as a long latency instead of vanishing from them. (Its response is
        still checked in the drain, but not timed again.)
        """
        ages: dict[int, int] = {}
        for connection in self.by_fd.values():
            if connection.busy and connection.sent_ns < end_ns:
                age_us = (end_ns - connection.sent_ns) // NS_PER_US
                ages[age_us] = ages.get(age_us, 0) + 1
                counts[age_us] = counts.get(age_us, 0) + 1
        self.result.unanswered = sum(ages.values())
        self.result.unanswered_histogram = histogram_from_counts(ages).encode().decode("ascii")

    def _loop(self, until_ns: int, counts: dict[int, int] | None) -> int:
        """Closed loop until ``until_ns``; latencies go into ``counts`` unless it is None."""
        poll = self.epoll.poll
        by_fd = self.by_fd
        monotonic_ns = time.monotonic_ns
        expected = self.expected
        payload = self.payload
        size = len(payload)
        recording = counts is not None
        # The dict and its get() bound once, outside the loop (a lookup saved per request).
        recorded: dict[int, int] = counts if counts is not None else {}
        count_get = recorded.get
        churn = self.churn
        if churn is not None:
            churn.recording = recording
        completed = 0
        mismatches = 0
        now = monotonic_ns()
        next_sweep = now + SWEEP_INTERVAL_NS
        while now < until_ns:
            if not by_fd and not self._alive():
                time.sleep((until_ns - now) / 1e9)
                break
            for fd, mask in poll((min(until_ns, next_sweep) - now) / 1e9):
                connection = by_fd.get(fd)
                if connection is None:
                    if churn is not None:
                        churn.connected(fd)
                    continue
                if mask & EPOLLOUT:
                    self._flush(connection)
                    if not mask & ~EPOLLOUT or fd not in by_fd:
                        continue
                try:
                    data = connection.recv(size - connection.got)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                received = len(data)
                if received == size:
                    if data != expected:
                        mismatches += 1
                elif received == 0:
                    self._lost(connection, None)
                    continue
                elif self._partial(connection, data):
                    if connection.corrupt:
                        connection.corrupt = False
                        mismatches += 1
                else:
                    continue
                now = monotonic_ns()
                if recording:
                    latency_us = (now - connection.sent_ns) // NS_PER_US
                    recorded[latency_us] = count_get(latency_us, 0) + 1
                    completed += 1
                if churn is not None:
                    connection.left -= 1
                    if not connection.left:
                        churn.done(connection, now)
                        continue
                connection.sent_ns = now
                try:
                    sent = connection.send(payload)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    self._lost(connection, exc)
                    continue
                if sent != size:
                    self._send_rest(connection, sent)
            now = monotonic_ns()
            if now >= next_sweep:
                self._sweep_timeouts(now)
                next_sweep = now + SWEEP_INTERVAL_NS
        self.errors["mismatch"] += mismatches
        return completed
