"""The contract every server model implements, and the settings they all share.

A model owns one thing: how it waits for sockets to become ready (spinning,
sleeping, select, a thread blocked in recv, ...). Everything else is shared:
the harness (``iobench.servers.harness``) parses options, binds the listening socket,
prints the ready line and installs the signal handlers; ``iobench.servers.connection``
holds the non-blocking read/transform/write code with backpressure.
"""

from __future__ import annotations

import enum
import math
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from iobench.servers.work import Offload


class Family(enum.StrEnum):
    """The five I/O models of Stevens, UNIX Network Programming vol. 1, 6.2."""

    BLOCKING = "blocking"
    NONBLOCKING = "non-blocking"
    MULTIPLEXING = "I/O multiplexing"
    SIGNAL_DRIVEN = "signal-driven"
    ASYNCHRONOUS = "asynchronous"


class Watching(enum.StrEnum):
    """How a model learns which of its connections have something to say."""

    # It looks at every connection it watches on every pass (busy-poll,
    # select, poll): idle connections cost it on every request.
    SCANS = "scans"
    # The kernel tells it which connections are ready (epoll, io_uring): a
    # wait costs by ready connections, not watched ones.
    IS_TOLD = "is told"


class ParamError(ValueError):
    """A model parameter is unknown or has a value the model cannot use."""


def parse_duration(text: str) -> float:
    """Parse ``"10ms"``, ``"100us"``, ``"0.5s"`` or plain seconds into seconds."""
    text = text.strip().lower()
    for suffix, scale in (("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


# Work per request: its kinds, and the longest a request's work may take. A
# handler that waits a second per request is a different benchmark, and a
# typo of hours would hold a stop (SIGTERM waits for the handler) that long.
WORK_KINDS = ("cpu", "block")
MAX_WORK_S = 1.0
WORK_UNITS = (("us", 1e-6), ("ms", 1e-3), ("s", 1.0))
OFFLOAD_CHOICES = ("inline", "pool")


def parse_work(text: str) -> str:
    """``none``, ``cpu:50us`` or ``block:1ms``, checked; returned in that canonical form.

    The value stays text (it goes into the ready line and the results as given);
    :func:`work_seconds` reads its duration.
    """
    text = text.strip().lower()
    if text == "none":
        return text
    kind, sep, amount = text.partition(":")
    if not sep or kind not in WORK_KINDS:
        raise ValueError("expected none, cpu:DURATION or block:DURATION, e.g. cpu:50us")
    number, suffix = amount.rstrip("usm"), amount.lstrip("0123456789.+-e")
    if suffix not in dict(WORK_UNITS):
        raise ValueError(f"unknown unit in {amount!r}: write us, ms or s, e.g. {kind}:50us")
    seconds = float(number) * dict(WORK_UNITS)[suffix]
    if not 0 < seconds <= MAX_WORK_S:
        raise ValueError(f"{kind} work must be more than 0 and at most {MAX_WORK_S:g}s")
    return f"{kind}:{number}{suffix}"


def work_seconds(work: str) -> tuple[str, float]:
    """The kind and the duration in seconds of a canonical ``work`` value."""
    kind, _, amount = work.partition(":")
    for suffix, scale in WORK_UNITS:
        if amount.endswith(suffix):
            return kind, float(amount[: -len(suffix)]) * scale
    return kind, 0.0


def parse_offload(text: str) -> str:
    text = text.strip().lower()
    if text not in OFFLOAD_CHOICES:
        raise ValueError(f"expected one of {', '.join(OFFLOAD_CHOICES)}")
    return text


@dataclass(frozen=True)
class Param:
    """One tunable of a model: ``--param name=value`` on the command line."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    minimum: float | None = None
    unit: str = ""
    # The largest value that makes sense: a worker count that would exhaust the
    # machine, or a sleep that would delay SIGTERM by hours, is refused at the door.
    maximum: float | None = None

    def convert(self, raw: str | Any) -> Any:
        """``raw`` (text from ``--param``, or a TOML value) as this parameter's value.

        A value that is not text must already be of the default's type (an
        integer for an integer parameter; for a float, an int is accepted);
        numbers must be finite and within [minimum, maximum].
        """
        if isinstance(raw, str):
            try:
                value = self.parse(raw)
            except (ValueError, OverflowError) as exc:
                # A parser's own message says what a good value looks like;
                # int() and float() only say they could not read it.
                own = str(exc) if self.parse not in (int, float) else ""
                detail = f": {own}" if own and "literal" not in own else ""
                raise ParamError(f"parameter {self.name!r}: cannot parse {raw!r}{detail}") \
                    from None
        elif isinstance(raw, bool) or not isinstance(raw, _accepted_types(self.default)):
            raise ParamError(f"parameter {self.name!r} must be "
                             f"{_type_name(self.default)}, got {raw!r}")
        else:
            # A float parameter takes an int too (_accepted_types), as a float.
            value = (float(raw) if isinstance(self.default, float) and isinstance(raw, int | float)
                     else raw)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"parameter {self.name!r} must be a finite number, got {raw!r}")
        if self.minimum is not None and value < self.minimum:
            raise ParamError(
                f"parameter {self.name!r} must be >= {self.minimum}{self.unit}, got {raw!r}"
            )
        if self.maximum is not None and value > self.maximum:
            raise ParamError(
                f"parameter {self.name!r} must be <= {self.maximum:g}{self.unit}, got {raw!r}"
            )
        return value

    def describe(self) -> str:
        return f"{self.name}={self.default}{self.unit}"


# Every model takes these: work in the handler per request, and what counts as
# one. The protocol has no framing, so the server cannot see where a request
# ends; it counts bytes instead. A request is what the load generator sends at
# once, ``request_bytes`` of it (its --size, 64 by default); a read may hold
# part of a request or several. Each time the bytes received on a connection
# reach a multiple of ``request_bytes``, one request's work is done, before
# the response bytes of that read are sent. The bytes on the wire are the same
# as without work.
WORK_PARAMS: tuple[Param, ...] = (
    Param("work", "none", "work per request in the handler: none, cpu:DURATION (Python "
          "computation, calibrated at start) or block:DURATION (a wait that releases the GIL)",
          parse=parse_work),
    Param("request_bytes", 64, "bytes of one request, for counting requests (the load "
          "generator's --size)", parse=int, minimum=1, maximum=64 * 1024 * 1024),
)
# The models whose loop is one thread that must not block (can_offload) also
# take these: ``offload=pool`` hands each request's work to a thread pool and
# answers when it is done, the idiom of asyncio's run_in_executor().
DEFAULT_POOL_THREADS = 16  # Little's law: ~10,000 req/s one CPU serves x 1 ms waits = 10
OFFLOAD_PARAMS: tuple[Param, ...] = (
    Param("offload", "inline", "inline (the loop does the work itself) or pool (a thread "
          "pool does it, the loop answers when it is done)", parse=parse_offload),
    Param("pool", DEFAULT_POOL_THREADS, "threads of the offload pool", parse=int,
          minimum=1, maximum=1024),
)


def _accepted_types(default: Any) -> tuple[type, ...]:
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, int):
        return (int,)
    if isinstance(default, float):
        return (int, float)
    return (type(default),)


def _type_name(default: Any) -> str:
    if isinstance(default, int) and not isinstance(default, bool):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    return f"a {type(default).__name__}"


class ServerModel(ABC):
    """A server that uppercase-echoes every byte on every connection.

    The harness constructs the model with an already bound and listening
    socket and the parsed parameters, then calls :meth:`serve` from the main
    thread. :meth:`serve` runs until :meth:`shutdown` is called (from a signal
    handler or another thread); it must then return promptly, within a few
    hundred milliseconds, having closed every client connection. The harness
    closes the listening socket.

    Class attributes describe the model for ``iobench models`` and the report:

    name         registry key, e.g. ``"busy-poll"``
    family       the Stevens I/O model (:class:`Family`)
    mechanism    how concurrency is had: one thread, thread per connection, ...
    description  one line that says what the model does
    params       the tunables, as :class:`Param` objects
    spins        True if the model never waits, so it burns CPU when idle
    watching     whether it scans every connection or is told which are ready
    reference    None, or why the model is a reference (as printed, not conforming)

    Socket settings are the same for every model, so a comparison measures the
    I/O model and nothing else.
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    mechanism: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    # True for a model that never waits (busy-poll): it burns a core even when
    # idle, by design, so idle-CPU checks leave it out.
    spins: ClassVar[bool] = False
    # True for a model that forks a process per connection: before thousands
    # of connections, the scale scenario projects its memory from a few.
    process_per_connection: ClassVar[bool] = False
    # True for a model that starts a thread or a process per connection: the
    # kernel's task limits (pid_max, threads-max) cap its connections.
    task_per_connection: ClassVar[bool] = False
    # True for a single-threaded loop that can hand blocking work to a pool
    # (``offload=pool``); a model that blocks per connection has nothing to offload.
    can_offload: ClassVar[bool] = False
    # Its connections spread over worker processes as the kernel hands them out
    # (prefork's accepts): each server started shares them its own way, so its
    # rounds are measured on a server of their own each, not in place (the
    # runner's Member), for the rounds to sample that spread as well.
    spreads_over_workers: ClassVar[bool] = False
    # Whether it scans its connections or is told which are ready, for the
    # scale scenario's verdicts; None for a model that is neither to judge
    # (a thread or process per connection, asyncio's loop).
    watching: ClassVar[Watching | None] = None
    # None for a conforming model. A reference model runs published code as
    # printed, to measure what it really does, and does not keep the contract
    # above; this says why. The conformance suite skips it with this reason,
    # `iobench models` lists it as a reference, and a matrix runs it only in a
    # scenario made for it (see available_models in the registry).
    reference: ClassVar[str | None] = None

    recv_size: ClassVar[int] = 64 * 1024
    backlog: ClassVar[int] = 4096
    tcp_nodelay: ClassVar[bool] = True
    # Output a client has not read yet, per connection. Past it, the server
    # stops reading from that client (backpressure), so a client that sends
    # and never reads cannot make the server's memory grow without bound.
    max_pending_output: ClassVar[int] = 1024 * 1024

    def __init__(self, listener: socket.socket, /, **params: Any) -> None:
        self.listener = listener
        self.options = self.resolve_params(params)
        # Imported here: iobench.servers.work reads the declarations above.
        from iobench.servers.work import Work

        # The handler's work per request, calibrated now (None: no work).
        self.work = Work.from_options(self.options)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this model cannot run here (a missing module or syscall), or None."""
        return None

    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        """The model's own parameters, then the ones every model (or loop) takes."""
        return cls.params + WORK_PARAMS + (OFFLOAD_PARAMS if cls.can_offload else ())

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each converted and checked."""
        known = {p.name: p for p in cls.all_params()}
        unknown = sorted(set(given) - set(known))
        if unknown:
            if unknown[0] in {p.name for p in OFFLOAD_PARAMS}:
                raise ParamError(f"model {cls.name!r} cannot offload: it has no single "
                                 "loop to keep free (offload and pool are for event loops)")
            valid = ", ".join(known) or "none"
            raise ParamError(
                f"model {cls.name!r} has no parameter {unknown[0]!r} (valid: {valid})"
            )
        options = {
            name: param.convert(given[name]) if name in given else param.default
            for name, param in known.items()
        }
        cls.check_options(options)
        return options

    @classmethod
    def reuse_port(cls, options: dict[str, Any]) -> bool:
        """True if the listener must be bound with SO_REUSEPORT (it opens more on its port)."""
        return False

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Refuse (ParamError) a combination of valid values the model cannot run."""
        return None

    @classmethod
    def starved_by(cls, params: dict[str, Any], idle: int) -> str | None:
        """Why ``idle`` silent connections, opened first, keep this model from serving the
        connections after them; None if they do not (the usual case)."""
        return None

    @classmethod
    def configure_client_socket(cls, sock: socket.socket) -> None:
        """Settings applied to every accepted connection, in every model."""
        if cls.tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start_offload(self, wake: Callable[[], None]) -> Offload | None:
        """The pool that does requests' work for the loop under ``offload=pool``, else None.

        ``wake`` makes the loop look at the pool's answers; see
        :class:`iobench.servers.work.Offload`.
        """
        if self.work is None or self.options.get("offload") != "pool":
            return None
        from iobench.servers.work import Offload

        return Offload(self.work, self.options["pool"], wake)

    def prepare(self) -> None:
        """Start what the model holds from the outset (a pool of threads), before the harness
        says it is ready, so a launcher's first reading of its memory includes it."""
        return None

    @abstractmethod
    def serve(self) -> None:
        """Serve connections until :meth:`shutdown`; close them all, then return."""

    @abstractmethod
    def shutdown(self) -> None:
        """Make :meth:`serve` return soon. Safe to call from a signal handler."""


def transform(data: bytes) -> bytes:
    """The protocol: every byte comes back ASCII-uppercased."""
    return data.upper()
