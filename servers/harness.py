"""Runs one model: parse its options, bind, announce readiness, serve, stop.

The ready line is one JSON object on stdout, for launchers to wait on::

    {"event": "ready", "model": "select", "host": "127.0.0.1", "port": 40123,
     "pid": 4242, "params": {...}}

With work per request, it also carries ``"work"``: the kind, the target and,
for ``cpu``, what the calibration found (iterations, measured_us). Processes
may print more JSON lines as they stop (prefork's workers their accepts).

SIGTERM and SIGINT make the model's serve loop return; the process then
closes its sockets and exits 0.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import signal
import socket
import sys
from typing import Any

from iobench.common.addresses import format_target
from iobench.common.errors import UsageError
from iobench.common.processes import raise_fd_limit
from iobench.servers.base import ParamError, ServerModel
from iobench.servers.exhaustion import reserve_spare
from iobench.servers.registry import UnknownModelError, get_model


def parse_param_args(items: list[str]) -> dict[str, str]:
    """``["interval=10ms", ...]`` to ``{"interval": "10ms"}``."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"bad --param {item!r}: expected NAME=VALUE, e.g. interval=10ms")
        params[name.strip()] = value.strip()
    return params


def load_model(name: str, raw_params: dict[str, Any]) -> tuple[type[ServerModel], dict[str, Any]]:
    """The model class and its checked parameters, or a UsageError saying what is wrong."""
    try:
        cls = get_model(name)
        options = cls.resolve_params(raw_params)
    except (UnknownModelError, ParamError) as exc:
        raise UsageError(str(exc.args[0])) from None
    reason = cls.unavailable_reason()
    if reason:
        raise UsageError(f"model {name!r} is not available here: {reason}")
    return cls, options


def bind_listener(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind(address)
        listener.listen(backlog)
    except OSError as exc:
        listener.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UsageError(f"cannot listen on {format_target(host, port)}: {reason}") from None
    return listener


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bound address) is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def serve(model_name: str, host: str = "127.0.0.1", port: int = 0,
          raw_params: dict[str, Any] | None = None) -> int:
    """Run ``model_name`` until SIGTERM or SIGINT; return the exit code."""
    cls, options = load_model(model_name, raw_params or {})
    raise_fd_limit()
    listener = bind_listener(host, port, cls.backlog, cls.reuse_port(options))
    try:
        model = cls(listener, **options)
        # Taken while descriptors are plentiful: the one to refuse with at the limit.
        reserve_spare()

        def stop(signum: int, frame: object) -> None:
            model.shutdown()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        bound_host, bound_port = listener.getsockname()[:2]
        if not is_loopback(bound_host):
            print(f"iobench serve: warning: {cls.name} listens on "
                  f"{format_target(bound_host, bound_port)}, not a loopback address: anyone "
                  "who can reach it can connect; firewall it to the load generator's hosts",
                  file=sys.stderr, flush=True)
        ready = {"event": "ready", "model": cls.name, "host": bound_host, "port": bound_port,
                 "pid": os.getpid(), "params": options}
        if model.work is not None:
            ready["work"] = model.work.describe()
        model.prepare()
        print(json.dumps(ready), flush=True)
        model.serve()
    finally:
        listener.close()
    return 0


def add_serve_arguments(parser: Any) -> None:
    parser.add_argument("model", help="model name (see `iobench models`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind (default 0: an ephemeral port, shown in the ready line)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a model parameter, e.g. interval=10ms; repeatable")


def cmd_serve(args: Any) -> int:
    if not 0 <= args.port < 65536:
        raise UsageError(f"bad --port {args.port}: must be 0-65535")
    return serve(args.model, args.host, args.port, parse_param_args(args.param))
