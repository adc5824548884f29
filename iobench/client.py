"""``iobench client HOST:PORT``: the article's interactive client.

Reads a line, sends it, prints the reply. With a terminal it shows a prompt;
with input piped on stdin it just prints the replies, so it scripts well.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from iobench.common.addresses import format_target, parse_target
from iobench.common.errors import UsageError

PROMPT = "> "
CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0


def add_arguments(parser: Any) -> None:
    parser.add_argument("target", metavar="HOST:PORT", help="server address, e.g. 127.0.0.1:8000")


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    """The next ``count`` bytes (the server owes one byte back for each one sent)."""
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def cmd_client(args: Any) -> int:
    host, port = parse_target(args.target)
    address = format_target(host, port)
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise UsageError(f"cannot connect to {address}: {exc.strerror or exc}") from None
    interactive = sys.stdin.isatty()
    with sock:
        sock.settimeout(REPLY_TIMEOUT)
        while True:
            if interactive:
                print(PROMPT, end="", flush=True)
            line = sys.stdin.buffer.readline()
            if not line:
                break
            try:
                sock.sendall(line)
                reply = recv_exactly(sock, len(line))
            except OSError as exc:
                raise UsageError(f"connection to {address} failed: {exc.strerror or exc}") from None
            sys.stdout.buffer.write(reply)
            sys.stdout.flush()
            if len(reply) < len(line):
                raise UsageError(f"{address} closed the connection")
    return 0
