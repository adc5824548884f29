"""Plausibility rules: figures a cell cannot have shown, checked in one place.

A figure a reader can see is impossible discredits every figure beside it.
Each rule looks at one recorded cell and returns what it saw when the cell
breaks it. The runner applies them to every cell it records, and the loader
applies them again to every cell it reads (so a file written before a rule
existed is judged by it too). A cell that breaks a rule keeps its numbers,
gains the flag ``implausible`` and a :class:`~record.Violation` naming the
rule, is left out of claim verdicts, and is listed in the report.
"""

from __future__ import annotations

from collections.abc import Callable

from iobench.benchmarks.results.record import CellRecord, Violation

IMPLAUSIBLE = "implausible"
# A tree cannot use more than its CPUs; counters read at slightly different
# moments may overshoot a little.
CPU_TOLERANCE = 1.05
# Serving requests costs CPU: a Python server spends tens of microseconds of
# CPU on a round trip, so less than one microsecond per request means the CPU
# was not measured, whatever the figure says.
MIN_CPU_US_PER_REQUEST = 1.0
# A CPU-bound job is never faster beside a server than alone.
MAX_NEIGHBOUR_RATIO = 1.05
# Open loop never completes more requests than it offers.
OFFERED_RATE_TOLERANCE = 1.05
# Little's law in closed loop: connections = throughput x mean latency.
LITTLES_LAW_TOLERANCE = 0.10

# What the kernel must hold for a connection the server accepted, charged to
# the server's cgroup by every kernel that counts kernel memory: its file
# (filp, ~190 B on x86-64 Linux 6) and its socket inode (sock_inode_cache,
# ~770 B), both allocated by accept() in the server's own context. The
# socket's struct itself (TCP, ~2.3 KB) is charged too only where accept()
# charges it (Linux 6.12+, or v1 with TCP accounting on), so it is left out.
SOCKET_MIN_BYTES = 950
# A thread or a process per connection holds a kernel stack each: THREAD_SIZE,
# 16 KiB on x86-64 (and arm64 with 4 KiB pages) since Linux 3.15.
KERNEL_STACK_BYTES = 16 * 1024
# A cgroup's kernel count also moves for reasons other than connections (a
# page table for a heap that grew, objects cached per CPU): this much over
# the whole cell, divided among its connections, is allowed below a minimum.
KERNEL_NOISE_BYTES = 64 * 1024

Rule = Callable[[CellRecord], str | None]


def cpu_within_cpus(cell: CellRecord) -> str | None:
    cpu = cell.metrics.server_cpu_percent
    limit = 100.0 * cell.server_cpu_count * CPU_TOLERANCE
    if cpu is not None and cpu > limit:
        return (f"server CPU {cpu:.1f}% of one core on {cell.server_cpu_count} CPU(s); "
                f"at most {limit:.0f}% is possible")
    return None


def cpu_when_serving(cell: CellRecord) -> str | None:
    metrics = cell.metrics
    if not metrics.throughput_rps or metrics.server_cpu_percent is None:
        return None
    per_request = metrics.server_cpu_percent / 100.0 * 1e6 / metrics.throughput_rps
    if per_request < MIN_CPU_US_PER_REQUEST:
        return (f"server CPU {metrics.server_cpu_percent:.1f}% while serving "
                f"{metrics.throughput_rps:.0f} req/s ({per_request:.2f} us per request; "
                f"serving costs at least {MIN_CPU_US_PER_REQUEST:g} us)")
    return None


def neighbour_not_faster(cell: CellRecord) -> str | None:
    ratio = cell.metrics.neighbour_ratio
    if cell.phase != "solo" and ratio is not None and ratio > MAX_NEIGHBOUR_RATIO:
        return (f"the neighbour ran at {ratio:.2f}x its speed alone; "
                f"at most {MAX_NEIGHBOUR_RATIO:g}x is possible")
    return None


def open_within_offered(cell: CellRecord) -> str | None:
    throughput, offered = cell.metrics.throughput_rps, cell.rate_rps
    if (cell.mode == "open" and throughput is not None and offered
            and throughput > offered * OFFERED_RATE_TOLERANCE):
        return f"{throughput:.0f} req/s completed at an offered {offered:.0f} req/s"
    return None


def littles_law(cell: CellRecord) -> str | None:
    metrics = cell.metrics
    if cell.mode != "closed" or not cell.connections:
        return None
    if metrics.throughput_rps is None or metrics.mean_us is None:
        return None
    # The histogram also holds the requests unanswered when the window closed
    # (at their ages then): the mean is over those samples too.
    samples_per_s = metrics.throughput_rps
    if metrics.unanswered_requests and metrics.requests:
        samples_per_s *= 1 + metrics.unanswered_requests / metrics.requests
    in_flight = samples_per_s * metrics.mean_us / 1e6
    what = "throughput x mean latency"
    connecting = _connecting(cell)
    if connecting is not None:
        # Churn: a connection spends part of its time in its handshake.
        in_flight += connecting
        what += " + connections/s x mean connect latency"
    low = (1 - LITTLES_LAW_TOLERANCE) * cell.connections
    high = (1 + LITTLES_LAW_TOLERANCE) * cell.connections + _opening(cell, metrics.mean_us)
    if not low <= in_flight <= high:
        return (f"{what} = {in_flight:.2f} requests in flight "
                f"with {cell.connections} connections")
    return None


def held_connections(cell: CellRecord) -> int:
    """Connections the server held all at once, its memory read then; 0 where they come
    and go (churn: a connection closes after its K requests, a forked child exits)."""
    if cell.requests_per_connection is not None:
        return 0
    return (cell.connections or 0) + cell.idle_connections


def kernel_holds_socket(cell: CellRecord) -> str | None:
    """Every connection the server holds costs the kernel at least a socket's file and inode."""
    per_connection = cell.metrics.kernel_bytes_per_connection
    connections = held_connections(cell)
    if per_connection is None or not connections:
        return None
    least = SOCKET_MIN_BYTES - KERNEL_NOISE_BYTES / connections
    if per_connection < least:
        return (f"{per_connection:.0f} kernel bytes per connection over {connections} "
                f"connections; a socket's file and inode alone take {SOCKET_MIN_BYTES} B")
    return None


def kernel_holds_stack(cell: CellRecord) -> str | None:
    """A thread or a process per connection holds a kernel stack per connection."""
    per_connection = cell.metrics.kernel_bytes_per_connection
    connections = held_connections(cell)
    if per_connection is None or not connections or not _task_per_connection(cell.model):
        return None
    least = KERNEL_STACK_BYTES + SOCKET_MIN_BYTES - KERNEL_NOISE_BYTES / connections
    if per_connection < least:
        return (f"{per_connection:.0f} kernel bytes per connection for {cell.model}, which "
                f"starts a task per connection; its kernel stack alone takes "
                f"{KERNEL_STACK_BYTES} B and its socket {SOCKET_MIN_BYTES} B")
    return None


def _task_per_connection(model: str | None) -> bool:
    """Whether ``model`` starts a thread or a process per connection (False if unknown)."""
    from iobench.servers.registry import get_model

    if model is None:
        return False
    try:
        return get_model(model).task_per_connection
    except LookupError:  # a model this iobench does not know
        return False


def _opening(cell: CellRecord, mean_us: float) -> float:
    """How far the requests in flight when the window opened may lift the estimate.

    Their whole latency is in the histogram, the part before the window too:
    about one mean latency each, over the window's length. Nothing where the
    window holds thousands of latencies; a third where a slow model (fork at
    150 ms a request) fits a few into half a second.
    """
    metrics = cell.metrics
    if not metrics.requests or not metrics.throughput_rps or cell.connections is None:
        return 0.0
    window_s = metrics.requests / metrics.throughput_rps
    return cell.connections * mean_us / 1e6 / window_s


def _connecting(cell: CellRecord) -> float | None:
    """Churn: connections in their handshake on average (rate x mean connect latency)."""
    churn = (cell.load or {}).get("churn") or {}
    per_s = cell.metrics.connections_per_s
    mean_us = (churn.get("connect_latency") or {}).get("mean_us")
    if per_s is None or mean_us is None:
        return None
    return float(per_s) * float(mean_us) / 1e6


RULES: dict[str, Rule] = {
    "cpu_within_cpus": cpu_within_cpus,
    "cpu_when_serving": cpu_when_serving,
    "neighbour_not_faster": neighbour_not_faster,
    "open_within_offered": open_within_offered,
    "littles_law": littles_law,
    "kernel_holds_socket": kernel_holds_socket,
    "kernel_holds_stack": kernel_holds_stack,
}


def violations(cell: CellRecord) -> list[Violation]:
    """Every rule the cell breaks (none for a failed cell: it has no figures to judge)."""
    if not cell.ok:
        return []
    found = []
    for name, rule in RULES.items():
        seen = rule(cell)
        if seen is not None:
            found.append(Violation(name, seen))
    return found


def judge(cell: CellRecord) -> CellRecord:
    """Record the rules the cell breaks in ``implausible`` and flag it; returns the cell."""
    cell.implausible = violations(cell)
    if cell.implausible:
        cell.flag(IMPLAUSIBLE)
    elif IMPLAUSIBLE in cell.flags:
        cell.flags.remove(IMPLAUSIBLE)
    return cell
