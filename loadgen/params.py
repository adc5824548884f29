"""The parameters of one load run, checked once, before any socket is opened."""

from __future__ import annotations

import math
import socket
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from iobench.common.addresses import format_target, parse_target
from iobench.common.errors import UsageError

# The histograms track latencies up to this many seconds (the format promises >= 60 s).
from iobench.common.histograms import MAX_LATENCY_S

Mode = Literal["closed", "open"]
Arrival = Literal["uniform", "poisson"]
Expect = Literal["upper", "echo"]

MODES: tuple[Mode, ...] = ("closed", "open")
ARRIVALS: tuple[Arrival, ...] = ("uniform", "poisson")
EXPECTS: tuple[Expect, ...] = ("upper", "echo")

# One message must fit the histogram's patience and the process's memory;
# 64 MiB is far beyond any scenario the benchmark runs.
MAX_SIZE_BYTES = 64 * 1024 * 1024
# Far beyond what one machine can drive, and low enough that every send
# interval (C / R seconds per connection) stays a whole number of nanoseconds
# above zero: a schedule that never advances would grow memory without bound.
MAX_RATE_RPS = 10_000_000.0
MAX_CONNECTIONS = 1_000_000
MAX_WORKERS = 1024
# A load run is bounded in time; a day is far beyond any cell.
MAX_DURATION_S = 24 * 3600.0
# Requests on one connection before it is closed and opened again (churn); a
# million is persistent in all but name.
MAX_REQUESTS_PER_CONNECTION = 1_000_000
# How long to try each address of a name that resolves to several.
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class LoadParams:
    """What to run: the exact parameters recorded in the JSON's ``params``."""

    target: str
    mode: Mode = "closed"
    connections: int = 16
    duration_s: float = 5.0
    warmup_s: float = 1.0
    size_bytes: int = 64
    rate_rps: float | None = None
    arrival: Arrival = "uniform"
    workers: int = 1
    timeout_s: float = 5.0
    expect: Expect = "upper"
    # Connections held open beside the active ones, sending nothing (the C10K axis).
    idle: int = 0
    # Churn: close each connection after this many requests and open another
    # (None: connections stay open for the whole run).
    requests_per_connection: int | None = None
    # Not part of the recorded params: the seed only shapes Poisson arrivals.
    seed: int = field(default=0, compare=False)

    def validate(self) -> LoadParams:
        """Raise UsageError on the first thing that is wrong; return self so calls chain."""
        parse_target(self.target)
        if self.mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.arrival not in ARRIVALS:
            raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}, "
                             f"not {self.arrival!r}")
        if self.expect not in EXPECTS:
            raise UsageError(f"--expect must be one of {', '.join(EXPECTS)}, not {self.expect!r}")
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise UsageError(f"--connections must be 1-{MAX_CONNECTIONS}, not {self.connections}")
        if not 0 <= self.idle <= MAX_CONNECTIONS:
            raise UsageError(f"--idle must be 0-{MAX_CONNECTIONS} connections, not {self.idle}")
        churn = self.requests_per_connection
        if churn is not None and not 1 <= churn <= MAX_REQUESTS_PER_CONNECTION:
            raise UsageError(f"--requests-per-connection must be 1-{MAX_REQUESTS_PER_CONNECTION}"
                             f", not {churn}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be 1-{MAX_WORKERS}, not {self.workers}")
        if self.workers > self.connections:
            raise UsageError(f"--workers {self.workers} is more than --connections "
                             f"{self.connections}: every worker needs a connection")
        if not 1 <= self.size_bytes <= MAX_SIZE_BYTES:
            raise UsageError(f"--size must be 1-{MAX_SIZE_BYTES} bytes, not {self.size_bytes}")
        for name, value in (("--duration", self.duration_s), ("--timeout", self.timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a positive number of seconds, not {value}")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise UsageError(f"--warmup must be zero or more seconds, not {self.warmup_s}")
        for name, value in (("--duration", self.duration_s), ("--warmup", self.warmup_s)):
            if value > MAX_DURATION_S:
                raise UsageError(f"{name} must be at most {MAX_DURATION_S:.0f} s, not {value}")
        if self.timeout_s > MAX_LATENCY_S:
            raise UsageError(f"--timeout must be at most {MAX_LATENCY_S:.0f} s "
                             f"(the histograms' range), not {self.timeout_s}")
        if self.mode == "open":
            if self.rate_rps is None:
                raise UsageError("--mode open needs --rate R (total requests per second)")
            if not (math.isfinite(self.rate_rps) and 0 < self.rate_rps <= MAX_RATE_RPS):
                raise UsageError(f"--rate must be a positive number up to {MAX_RATE_RPS:g}, "
                                 f"not {self.rate_rps}")
        else:
            if self.rate_rps is not None:
                raise UsageError("--rate applies to open loop only: add --mode open")
            if self.arrival != "uniform":
                raise UsageError("--arrival applies to open loop only: add --mode open")
        return self

    def record(self) -> dict[str, Any]:
        """The ``params`` object of the JSON (field names fixed by docs/formats.md)."""
        recorded = asdict(self)
        del recorded["seed"]
        return recorded


@dataclass(frozen=True)
class ResolvedTarget:
    """A target resolved to one socket address, so every worker connects to the same one."""

    text: str
    family: int
    sockaddr: tuple[Any, ...]


def resolve_target(target: str) -> ResolvedTarget:
    """Resolve ``HOST:PORT`` once; an unknown host is a UsageError naming it."""
    host, port = parse_target(target)
    text = format_target(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {text}: {exc.strerror}") from None
    candidates = list(dict.fromkeys((family, tuple(sockaddr))
                                    for family, _, _, _, sockaddr in infos))
    family, sockaddr = candidates[0]
    if len(candidates) > 1:
        # "localhost" may name both 127.0.0.1 and ::1 while the server listens on
        # one: pick the first that accepts, as socket.create_connection would.
        family, sockaddr = next((c for c in candidates if _accepts(*c)), candidates[0])
    return ResolvedTarget(text=text, family=family, sockaddr=sockaddr)


def _accepts(family: int, sockaddr: tuple[Any, ...]) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT_S)
        return probe.connect_ex(sockaddr) == 0


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]
