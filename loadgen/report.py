"""The load report: what one load generator run (or the merge of its shards) measured.

One typed owner of the JSON documented in docs/formats.md ("Load generator
JSON"): the load generator builds it (``iobench.loadgen.runner``), the shard
merge builds it from several (``iobench.loadgen.shards``), and the matrix
runner reads it by attribute. It is read tolerantly, because it crosses
hosts and versions: a key this version does not know is kept in ``extra`` and
written back unchanged, and a missing one takes its default. Adding a field
is one line in the class it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _split(cls: type[Any], data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` split into values for the fields of dataclass ``cls`` and the rest.

    A null where the field has a value by default (a count, a flag) takes
    that default, so a reader never meets None where it expects a number.
    """
    by_name = {f.name: f for f in fields(cls) if f.name != "extra"}
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in (data if isinstance(data, dict) else {}).items():
        declared = by_name.get(key)
        if declared is None:
            extra[key] = value
        elif value is not None or declared.default is None:
            known[key] = value
    return known, extra


@dataclass
class ClientReport:
    """The load generator's own side of the run (the report's ``client``)."""

    workers: int = 0
    cpu_percent: list[float] = field(default_factory=list)  # per worker, % of a core
    target_rate_rps: float | None = None
    achieved_rate_rps: float = 0.0
    max_schedule_lag_us: float = 0.0
    event_loop: str | None = None
    connected: int = 0
    unfinished_requests: int = 0
    # Seconds from the measured window's end to the report, and the window on
    # the load generator's host's CLOCK_MONOTONIC (None when nothing was
    # measured, or for merged shards, whose hosts' clocks differ).
    teardown_s: float | None = None
    window_monotonic_s: list[float] | None = None
    idle_connected: int = 0
    idle_open: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> ClientReport:
        known, extra = _split(cls, data)
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**data, **self.extra}


@dataclass
class LoadReport:
    """One run's report; ``to_json`` is the documented JSON, ``from_json`` reads it back."""

    schema: str
    params: dict[str, Any]  # the LoadParams it ran with (LoadParams.record())
    requests: int = 0
    measured_s: float = 0.0
    throughput_rps: float = 0.0
    # Percentiles, max, mean (microseconds) and the encoded histogram; None
    # when not kept (latency_uncorrected in closed loop).
    latency: dict[str, Any] | None = None
    latency_uncorrected: dict[str, Any] | None = None
    errors: dict[str, int] = field(default_factory=dict)  # by kind, and "total"
    client: ClientReport = field(default_factory=ClientReport)
    client_saturated: bool = False
    behind_schedule: bool = False
    connect_error: str | None = None
    ok: bool = False
    # Merged shards: what each host did.
    shards: list[dict[str, Any]] | None = None
    # Why a run broke down before it could measure (a worker crashed, or
    # "starved: N of M connections unanswered after T s").
    failure: str | None = None
    # Connections (iobench.loadgen.connection_report): churn, failed connects
    # by cause, requests unanswered when the window closed, starvation.
    churn: dict[str, Any] | None = None
    connect_errors: dict[str, int] = field(default_factory=dict)
    unanswered: dict[str, Any] | None = None
    starved: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return int(self.errors.get("total") or 0)

    @property
    def histogram(self) -> str | None:
        """The encoded latency histogram (corrected for coordinated omission in open loop)."""
        return (self.latency or {}).get("histogram")

    @property
    def histogram_uncorrected(self) -> str | None:
        return (self.latency_uncorrected or {}).get("histogram")

    def percentile_us(self, name: str) -> float | None:
        """A latency figure by name (``p99_us``, ``max_us``, ``mean_us``), None if absent."""
        value = (self.latency or {}).get(name)
        return float(value) if value is not None else None

    @classmethod
    def from_json(cls, data: Any) -> LoadReport:
        """The report of ``data`` (parsed JSON, of any shape), keeping keys it does not know
        in ``extra``.

        ValueError when ``data`` is not a load report at all.
        """
        if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
            raise ValueError("not a load generator report: no params")
        known, extra = _split(cls, data)
        known["client"] = ClientReport.from_json(known.get("client"))
        known["errors"] = {str(k): int(v) for k, v in (known.get("errors") or {}).items()}
        known.setdefault("schema", "")
        return cls(**known, extra=extra)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("extra", "client", "shards", "failure")}
        data["client"] = self.client.to_json()
        if self.shards is not None:
            data["shards"] = self.shards
        if self.failure is not None:
            data["failure"] = self.failure
        return {**data, **self.extra}

    def without_histograms(self) -> dict[str, Any]:
        """The JSON without its encoded histograms (a cell record keeps those itself)."""
        data = self.to_json()
        for name in ("latency", "latency_uncorrected", "unanswered"):
            if isinstance(data.get(name), dict):
                data[name] = {k: v for k, v in data[name].items() if k != "histogram"}
        churn = data.get("churn")
        if isinstance(churn, dict) and isinstance(churn.get("connect_latency"), dict):
            data["churn"] = {**churn, "connect_latency": {
                k: v for k, v in churn["connect_latency"].items() if k != "histogram"}}
        return data
