"""The open loop: requests go out at intended times, whatever the responses do."""

from __future__ import annotations

import heapq
import select
import time

from iobench.loadgen.histograms import histogram_from_counts
from iobench.loadgen.schedule import open_schedule
from iobench.loadgen.worker import EPOLLOUT, NS_PER_US, SWEEP_INTERVAL_NS, Connection, Worker


class OpenLoopWorker(Worker):
    """A fixed (or Poisson) rate, with coordinated omission corrected."""

    def _opened(self, connection: Connection, now: int) -> None:
        """Churn: the slot's next connection is up; send what fell due meanwhile, if anything."""
        if not connection.queue:
            connection.busy = False
            return
        churn = self.churn
        assert churn is not None, "only a churning worker opens a slot's next connection"
        measure_ns, end_ns = churn.window_ns
        if measure_ns <= now < end_ns:
            self.result.sent_in_window += 1
        connection.intended_ns = connection.queue.popleft()
        self._start_request(connection, now)

    def _run(self, start_ns: int, measure_ns: int, end_ns: int) -> None:
        """Open loop: fire requests at their intended times until ``end_ns``, then drain.

        ``requests`` (and so throughput) counts responses that arrived in the
        window. The histograms hold every request *meant* for the window: the
        ones queued behind a slow server are waited for up to --timeout after
        the window, so the worst latencies are not cut off at its end.
        """
        heap, next_after = open_schedule(self.plan, start_ns)
        connections = self.connections
        poll = self.epoll.poll
        epoll_fd = self.epoll.fileno()
        wait_readable = select.select
        by_fd = self.by_fd
        monotonic_ns = time.monotonic_ns
        heappop = heapq.heappop
        heapreplace = heapq.heapreplace
        expected = self.expected
        payload = self.payload
        size = len(payload)
        corrected: dict[int, int] = {}
        uncorrected: dict[int, int] = {}
        corrected_get = corrected.get
        uncorrected_get = uncorrected.get
        completed = 0
        sent_in_window = 0
        mismatches = 0
        max_lag_ns = 0
        process = self.process
        cpu_start: float | None = None
        cpu_end: float | None = None
        drain_deadline = end_ns + self.timeout_ns
        result = self.result
        churn = self.churn
        now = monotonic_ns()
        next_sweep = now + SWEEP_INTERVAL_NS
        while True:
            # Fire every request that is due.
            while heap and heap[0][0] <= now:
                due, slot = heap[0]
                if due >= end_ns:
                    heap.clear()
                    break
                connection = connections[slot]
                if connection is None or connection.dead:
                    heappop(heap)
                    continue
                if due >= measure_ns and now - due > max_lag_ns:
                    max_lag_ns = now - due
                if connection.busy:
                    connection.queue.append(due)
                else:
                    if measure_ns <= now < end_ns:
                        sent_in_window += 1
                    connection.busy = True
                    connection.intended_ns = due
                    connection.sent_ns = now
                    try:
                        sent = connection.send(payload)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        self._lost(connection, exc)
                        heappop(heap)
                        continue
                    if sent != size:
                        self._send_rest(connection, sent)
                heapreplace(heap, (next_after(due), slot))
            if cpu_start is None and now >= measure_ns:
                cpu_start = sum(process.cpu_times()[:2])
            if now >= end_ns:
                if cpu_end is None:
                    cpu_end = sum(process.cpu_times()[:2])
                owed = (any(connection.busy for connection in by_fd.values())
                        or (churn is not None and churn.owed()))
                if not owed or now >= drain_deadline:
                    break
            # Wait for a response or the next due time. epoll_wait rounds its
            # time-out to milliseconds, too coarse for a schedule; select() on
            # the epoll descriptor waits with microsecond precision.
            wake_ns = min(heap[0][0] if heap else drain_deadline, next_sweep, drain_deadline)
            events = poll(0)
            if not events and wake_ns > now:
                wait_readable((epoll_fd,), (), (), (wake_ns - now) / 1e9)
                events = poll(0)
            for fd, mask in events:
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
                if not connection.busy:
                    if received:
                        self._unexpected(connection)
                    else:
                        self._lost(connection, None)
                    continue
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
                intended = connection.intended_ns
                if measure_ns <= intended < end_ns:
                    latency_us = (now - intended) // NS_PER_US
                    corrected[latency_us] = corrected_get(latency_us, 0) + 1
                    latency_us = (now - connection.sent_ns) // NS_PER_US
                    uncorrected[latency_us] = uncorrected_get(latency_us, 0) + 1
                in_window = measure_ns <= now < end_ns
                if in_window:
                    completed += 1
                if churn is not None:
                    connection.left -= 1
                    if not connection.left:
                        # Requests still queued go out on the next connection.
                        churn.done(connection, now)
                        continue
                if connection.queue:
                    if in_window:
                        sent_in_window += 1
                    # The next request has waited for this response; send it now.
                    connection.intended_ns = connection.queue.popleft()
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
                else:
                    connection.busy = False
            now = monotonic_ns()
            if now >= next_sweep:
                self._sweep_timeouts(now)
                next_sweep = now + SWEEP_INTERVAL_NS
        # Still owed after the drain: each request on the wire has waited less
        # than --timeout (the sweep catches the rest), so it is no error, and
        # neither is a request still queued: the server is merely behind. They
        # are counted, and missing from the histograms.
        for connection in list(by_fd.values()):
            if connection.busy:
                result.unfinished += 1 + len(connection.queue)
                connection.queue.clear()
                self._close(connection)
        if churn is not None:
            result.unfinished += churn.queued()
        self.errors["mismatch"] += mismatches
        result.requests = completed
        result.sent_in_window += sent_in_window  # churn adds what new connections sent
        result.max_schedule_lag_us = max_lag_ns / NS_PER_US
        end_cpu = cpu_end if cpu_end is not None else sum(process.cpu_times()[:2])
        result.cpu_s = end_cpu - (cpu_start if cpu_start is not None else end_cpu)
        result.histogram = histogram_from_counts(corrected).encode().decode("ascii")
        result.histogram_uncorrected = histogram_from_counts(uncorrected).encode().decode("ascii")
