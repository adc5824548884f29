"""The cell record: one typed owner of what a cell of a run holds, and its JSON.

The runner builds a :class:`CellRecord`, the store writes ``to_json()``, the
loader reads ``from_json()``, and the report and the tests' factory use the
same class, so a field is declared once (docs/formats.md describes them).
Every metric is named with its unit; one that does not apply, or could not be
measured, is ``None`` (JSON null), never 0.

Schema history (``SCHEMA_VERSION``):

1. the first format: cells as plain objects, CPU from a sampled time series.
2. adds, per cell, ``notes`` (why a flag was raised or a figure is null),
   ``implausible`` (the plausibility rules a cell broke and what was seen),
   ``cpu_accounting`` (how the server's CPU was counted), and the metrics
   for PSS/USS, steal time and the neighbour's interleaved solo slices.
   Version-1 cells read as version 2 with those left empty. Later in 2,
   ``syscalls`` (system calls by kind) and ``syscalls_per_request``; files
   without them read with both null. Later still, ``server`` (what the server
   reported: work calibration, prefork's accepts per worker) and
   ``busiest_worker_share``; null when absent. Later in 2, the kernel's memory
   (``kernel_bytes``, ``kernel_baseline_bytes``, ``kernel_bytes_per_connection``)
   and ``memory_per_connection_bytes``; files without them read them as null.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any

from iobench.benchmarks.results.scenarios import SCENARIOS
from iobench.common.errors import UsageError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

STATUS_OK = "ok"
STATUS_FAILED = "failed"


class RecordError(UsageError):
    """A cell in a results file that cannot be read as a cell record."""


Number = int | float


@dataclass(frozen=True)
class Metric:
    """What one figure of a cell is, declared once on its field of :class:`Metrics`.

    The field's name carries the unit it is stored in (``_us``, ``_rps``,
    ``_bytes``, ``_percent`` of one core); ``unit`` is the unit people read,
    ``scale`` turns the stored value into it (bytes to MiB) and ``digits`` is
    how many decimals tables print. Tables, CSV columns, the report's units and
    docs/formats.md's field list read it (a test checks the docs).
    """

    title: str
    unit: str
    meaning: str
    scale: float = 1.0
    digits: int = 0
    # Compared by ``iobench compare`` (and gated by --fail-above).
    compared: bool = False
    # A shorter heading for narrow tables (compare's), when the header is long.
    short: str = ""

    @property
    def header(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title


METRIC = "metric"  # the key of a Metrics field's metadata that holds its Metric
MIB = 1 / (1024 * 1024)
KIB = 1 / 1024


def metric(title: str, unit: str, meaning: str, **details: Any) -> Any:
    """A Metrics field, None until measured, with its :class:`Metric` declaration."""
    return field(default=None, metadata={METRIC: Metric(title, unit, meaning, **details)})


CORE = "% of a core"


@dataclass
class Metrics:
    """Every figure of one cell, named with its unit; None where it does not apply."""

    throughput_rps: float | None = metric(
        "throughput", "req/s", "responses per second of the measured window",
        compared=True, short="throughput req/s")
    requests: int | None = metric("requests", "", "responses inside the measured window")
    p50_us: float | None = metric("p50", "us", "median latency (open loop: from the "
                                  "intended send time)")
    p90_us: float | None = metric("p90", "us", "90th percentile latency")
    p99_us: float | None = metric("p99", "us", "99th percentile latency", compared=True,
                                  short="p99 us")
    p99_9_us: float | None = metric("p99.9", "us", "99.9th percentile latency")
    max_us: float | None = metric("max", "us", "highest latency")
    mean_us: float | None = metric("mean", "us", "mean latency", digits=1)
    # Server CPU over the measured window, from cumulative counters read at its
    # edges (cpu_accounting says whose): % of one core, and per request.
    server_cpu_percent: float | None = metric(
        "server CPU", CORE, "user + system CPU of the server's tree over the window",
        digits=1)
    server_user_percent: float | None = metric("user CPU", CORE, "the server's user CPU",
                                               digits=1)
    server_system_percent: float | None = metric("system CPU", CORE,
                                                 "the server's system (kernel) CPU", digits=1)
    cpu_us_per_request: float | None = metric(
        "CPU per request", "us", "server CPU time per response", digits=1, compared=True,
        short="CPU/req us")
    ctx_voluntary_per_request: float | None = metric(
        "voluntary ctx switches", "per request", "times the server's threads waited, per "
        "response", digits=2)
    ctx_involuntary_per_request: float | None = metric(
        "involuntary ctx switches", "per request", "times the server's threads were "
        "preempted, per response", digits=2)
    ctx_voluntary_per_s: float | None = metric(
        "voluntary ctx switches", "per s", "times the server's threads waited, per second")
    ctx_involuntary_per_s: float | None = metric(
        "involuntary ctx switches", "per s", "times the server's threads were preempted, "
        "per second")
    peak_rss_bytes: int | None = metric("peak RSS", "MiB", "highest resident memory of the "
                                        "server's tree", scale=MIB, digits=1)
    peak_threads: int | None = metric("threads", "", "most threads the server's tree had")
    peak_fds: int | None = metric("fds", "", "most descriptors the server's tree held")
    client_cpu_percent: float | None = metric("client CPU", CORE, "the load generator's CPU",
                                              digits=1)
    errors: int | None = metric("errors", "", "requests that failed or came back wrong")
    neighbour_ops_per_s: float | None = metric("neighbour", "ops/s", "the CPU-bound "
                                               "neighbour's rate beside the server")
    neighbour_ratio: float | None = metric("neighbour vs solo", "ratio", "the neighbour's "
                                           "rate beside the server / with it stopped",
                                           digits=2)
    # The neighbour's rate in the slices when the server was stopped (interleaved).
    neighbour_paused_ops_per_s: float | None = metric(
        "neighbour alone", "ops/s", "the neighbour's rate while the server was stopped")
    # Other processes' CPU on the server's CPUs, % of one core (flag cpu_contended).
    server_cpus_other_percent: float | None = metric(
        "others on server CPUs", CORE, "other processes' CPU on the server's CPUs", digits=1)
    # Memory of the server's process tree while it held its connections (under
    # load: the highest of its readings; idle: at its end): PSS counts a page
    # shared by N processes as 1/N in each, USS only pages no other process maps.
    pss_bytes: int | None = metric("PSS", "MiB", "proportional set size of the server's "
                                   "tree while it held its connections", scale=MIB, digits=1)
    uss_bytes: int | None = metric("USS", "MiB", "pages only the server's tree maps",
                                   scale=MIB, digits=1)
    rss_bytes: int | None = metric("RSS", "MiB", "resident memory of the server's tree",
                                   scale=MIB, digits=1)
    # The PSS of its anonymous pages (heap, stacks, buffers), then.
    pss_anon_bytes: int | None = metric("anonymous PSS", "MiB", "PSS of the tree's heap, "
                                        "stacks and buffers", scale=MIB, digits=1)
    # PSS and anonymous PSS of the same server before its first connection, and
    # the growth per connection (see iobench.benchmarks.run.metrics.memory_metrics).
    pss_baseline_bytes: int | None = metric("PSS before", "MiB", "PSS of the server before "
                                            "its first connection", scale=MIB, digits=1)
    pss_anon_baseline_bytes: int | None = metric(
        "anonymous PSS before", "MiB", "anonymous PSS before its first connection",
        scale=MIB, digits=1)
    pss_per_connection_bytes: float | None = metric(
        "PSS per connection", "KiB", "anonymous PSS growth divided by the connections held",
        scale=KIB, digits=1)
    # What the kernel held for the server's tree then, and before its first
    # connection (sockets and their buffers, kernel stacks, epoll and io_uring
    # state, page tables), from its cgroup; null with notes["kernel_memory"]
    # where nothing counts it. Per connection by the same rule as PSS, and
    # the two summed: what one more connection costs in all.
    kernel_bytes: int | None = metric(
        "kernel memory", "MiB", "memory the kernel held for the server's tree (sockets, "
        "kernel stacks...), from its cgroup", scale=MIB, digits=1)
    kernel_baseline_bytes: int | None = metric(
        "kernel memory before", "MiB", "kernel memory before its first connection",
        scale=MIB, digits=1)
    kernel_bytes_per_connection: float | None = metric(
        "kernel memory per connection", "KiB", "kernel memory growth divided by the "
        "connections held", scale=KIB, digits=1)
    memory_per_connection_bytes: float | None = metric(
        "memory per connection", "KiB", "PSS and kernel memory per connection together",
        scale=KIB, digits=1)
    # Time the hypervisor took from the server's and the client's CPUs, % of theirs.
    steal_server_percent: float | None = metric("steal on server CPUs", "%", "time the "
                                                "hypervisor took from the server's CPUs",
                                                digits=1)
    steal_client_percent: float | None = metric("steal on client CPUs", "%", "time the "
                                                "hypervisor took from the client's CPUs",
                                                digits=1)
    # System calls the kernel counted on the server's tree inside the measured
    # window, per request (the record's ``syscalls`` has them by kind, or why not).
    syscalls_per_request: float | None = metric(
        "system calls", "per request", "system calls of the server's tree per response",
        digits=2)
    # The runner's 10 Hz sampling thread's own CPU, % of one core: what watching cost.
    sampler_cpu_percent: float | None = metric("sampler CPU", CORE, "the runner's sampling "
                                               "thread's own CPU", digits=1)
    # Churn (load generator --requests-per-connection): connections closed after
    # their K requests, per second of the window, their connect latency (the
    # handshake), and the server's CPU per connection.
    connections_per_s: float | None = metric(
        "connections", "per s", "connections closed after their K verified responses, per "
        "second of the window (churn)")
    connect_p50_us: float | None = metric("connect p50", "us", "median time from connect() "
                                          "until the socket is writable (churn)")
    connect_p99_us: float | None = metric("connect p99", "us", "99th percentile of the "
                                          "connect latency (churn)")
    cpu_us_per_connection: float | None = metric(
        "CPU per connection", "us", "server CPU over the window divided by the connections "
        "completed in it (churn)", digits=1)
    # Closed loop: requests on the wire when the window closed (their ages are
    # in the latency figures as lower bounds; the load report has them).
    unanswered_requests: int | None = metric(
        "unanswered at the close", "requests", "closed loop: requests on the wire when the "
        "window closed, their ages in the latency figures as lower bounds")
    # Prefork: the busiest worker's share of the connections accepted in the
    # cell (1/N is perfect balance across N workers), from the server's report.
    busiest_worker_share: float | None = metric(
        "busiest worker", "share", "the busiest prefork worker's share of the cell's accepts "
        "(1/N is perfect balance)", digits=2)
    # The article scenario's probes (one client idle, or not reading): the longest
    # any other client's request waited for its answer (to the probe's end if none
    # came), and the requests that got none within the probe's bound; in its
    # closed-loop cells, the requests still owed when the load generator's drain
    # ended (its time-out: a second).
    longest_wait_s: float | None = metric(
        "longest wait", "s", "the longest another client's request waited for its answer "
        "in an article probe", digits=3)
    starved_requests: int | None = metric(
        "starved", "requests", "requests with no answer within the article probe's bound, "
        "or still owed when its closed loop's drain ended")

    def get(self, name: str) -> Number | None:
        """The metric called ``name`` (None if it is not one)."""
        value = getattr(self, name, None) if name in METRIC_NAMES else None
        return value if isinstance(value, int | float) else None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Metrics:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise RecordError(f"{where}: 'metrics' is not an object")
        values: dict[str, Any] = {}
        for name in METRIC_NAMES:
            value = data.get(name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float)
                                      or not math.isfinite(value)):
                raise RecordError(f"{where}: metric {name} is {value!r}, not a number")
            values[name] = value
        return cls(**values)


METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Metrics))
# Each metric's declaration, by name; a field declared without one is left out
# (and a test fails).
METRICS: dict[str, Metric] = {f.name: f.metadata[METRIC] for f in fields(Metrics)
                              if METRIC in f.metadata}


def metric_info(name: str) -> Metric:
    """The declaration of metric ``name``; KeyError naming it if there is none."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a declared metric of the cell record") from None


@dataclass(frozen=True)
class Violation:
    """A plausibility rule a cell broke, and the figures that broke it."""

    rule: str
    seen: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "seen": self.seen}


@dataclass
class CellRecord:
    """One cell of a run (one matrix point, one repetition), as stored."""

    key: str
    scenario: str
    model: str | None
    repetition: int = 0
    status: str = STATUS_OK
    reason: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None
    connections: int | None = None
    size_bytes: int | None = None
    rate_rps: float | None = None
    peak_fraction: float | None = None
    phase: str | None = None
    # Scale scenario: silent connections held beside the active ``connections``.
    idle_connections: int = 0
    # Churn scenario: requests per connection before it is closed and another opened.
    requests_per_connection: int | None = None
    placement: dict[str, list[int]] = field(default_factory=dict)
    started: str | None = None
    duration_s: float | None = None
    # The round's place among those its server measured: 1 on a fresh server, 2 and
    # on for the rounds a server kept in place measured after (null: not recorded).
    server_round: int | None = None
    metrics: Metrics = field(default_factory=Metrics)
    flags: list[str] = field(default_factory=list)
    # Why a flag was raised or a figure is null, by flag: {"cpu_unmeasured": "..."}.
    notes: dict[str, str] = field(default_factory=dict)
    implausible: list[Violation] = field(default_factory=list)
    # How the server's CPU was counted: "cgroup2", "cgroup1" (exact group
    # accounting by the kernel) or "psutil" (the process tree, read by pid).
    cpu_accounting: str | None = None
    histogram: str | None = None
    histogram_uncorrected: str | None = None
    samples: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] | None = None
    # System calls by kind (benchmarks/run/syscalls.py): tool, reason (why they
    # are null), elapsed_s, total, by_kind, per_request, by_kind_per_request.
    syscalls: dict[str, Any] | None = None
    # What the server reported (iobench.servers.process.server_report): the
    # work calibration of its ready line ("work"), and prefork's accepts per
    # worker ("worker_accepts", busiest first) with "busiest_worker_share".
    server: dict[str, Any] | None = None
    # The 95% interval of each headline metric over the rounds of this cell's key
    # so far (iobench.benchmarks.results.stats), written inside "metrics" as
    # "ci95": {"throughput_rps": [low, high], ...}; left out below two rounds.
    ci95: dict[str, list[float]] = field(default_factory=dict)

    @property
    def on_fresh_server(self) -> bool:
        """The first round its server measured; a record written before ``server_round``
        was kept counts as one (its round had a server of its own or is unknown)."""
        return self.server_round in (None, 1)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def server_cpu_count(self) -> int:
        """How many CPUs the server was pinned to (1 when the placement is unknown)."""
        return max(1, len(self.placement.get("server_cpus") or []))

    def flag(self, name: str, note: str | None = None) -> None:
        """Raise ``name`` once; ``note`` says why (kept in ``notes``)."""
        if name not in self.flags:
            self.flags.append(name)
        if note:
            self.notes[name] = note

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ci95"}
        data["metrics"] = self.metrics.to_json()
        if self.ci95:
            data["metrics"]["ci95"] = dict(self.ci95)
        data["implausible"] = [v.to_json() for v in self.implausible]
        data["flags"] = list(self.flags)
        data["notes"] = dict(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "cell") -> CellRecord:
        """A record from its JSON (version 1 or 2); RecordError says what is wrong."""
        if not isinstance(data, dict):
            raise RecordError(f"{where} is not an object")
        missing = [name for name in ("key", "scenario", "model", "status") if name not in data]
        if missing:
            raise RecordError(f"{where} lacks {', '.join(missing)}")
        where = f"{where} {data['key']!r}"
        _expect(data, "key", str, where, nullable=False)
        _expect(data, "scenario", str, where, nullable=False)
        if data["scenario"] not in SCENARIOS:
            raise RecordError(f"{where}: unknown scenario {data['scenario']!r} (this iobench "
                              f"reads {', '.join(SCENARIOS)})")
        _expect(data, "model", str, where)
        _expect(data, "status", str, where, nullable=False)
        _expect(data, "params", dict, where)
        _expect(data, "flags", list, where)
        _expect(data, "notes", dict, where)
        _expect(data, "implausible", list, where)
        _expect(data, "placement", dict, where)
        _expect(data, "server", dict, where)
        for name in ("connections", "size_bytes", "repetition", "idle_connections",
                     "requests_per_connection", "server_round"):
            _expect(data, name, int, where)
        for name in ("rate_rps", "peak_fraction", "duration_s"):
            _expect(data, name, int | float, where)
        implausible = []
        for item in data.get("implausible") or []:
            if not isinstance(item, dict) or not isinstance(item.get("rule"), str):
                raise RecordError(f"{where}: an 'implausible' entry has no rule")
            implausible.append(Violation(item["rule"], str(item.get("seen", ""))))
        known = {f.name for f in fields(cls)} - {"metrics", "implausible", "ci95"}
        values = {name: data[name] for name in known
                  if name in data and (data[name] is not None or name == "model")}
        return cls(**values, metrics=Metrics.from_json(data.get("metrics"), where),
                   implausible=implausible, ci95=_intervals(data.get("metrics"), where))


def _intervals(metrics: Any, where: str) -> dict[str, list[float]]:
    """metrics.ci95, checked: metric name -> [low, high] (absent before intervals were kept)."""
    found = metrics.get("ci95") if isinstance(metrics, dict) else None
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise RecordError(f"{where}: metrics.ci95 is not an object")
    for name, pair in found.items():
        if (name not in METRIC_NAMES or not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in pair)):
            raise RecordError(f"{where}: metrics.ci95.{name} is {pair!r}, not [low, high]")
    return {name: [float(v) for v in pair] for name, pair in found.items()}


def _expect(data: dict[str, Any], name: str, kind: Any, where: str,
            nullable: bool = True) -> None:
    value = data.get(name)
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, kind):
        raise RecordError(f"{where}: {name} is {value!r}, of the wrong type")


def check_version(version: Any, where: str) -> None:
    """RecordError unless this iobench reads results of ``version``."""
    if version not in READABLE_VERSIONS:
        raise RecordError(f"{where} has schema_version {version!r}; this iobench reads "
                          f"versions {', '.join(map(str, READABLE_VERSIONS))}")
