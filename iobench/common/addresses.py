"""Parsing of HOST:PORT targets, IPv4 and IPv6 alike."""

from __future__ import annotations

from iobench.common.errors import UsageError


def parse_target(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"``, ``"localhost:8000"`` or ``"[::1]:8000"`` to (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise UsageError(f"bad target {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"bad target {text!r}: write an IPv6 address in brackets, [::1]:8000")
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"bad target {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise UsageError(f"bad target {text!r}: port must be 1-65535")
    return host, port


def format_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
