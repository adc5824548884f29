"""The forking models (fork, prefork) leave no process behind.

Only the parent's pid is signalled here, never the group: the model itself
must stop its children and wait for them before it exits.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time

import psutil
import pytest

from iobench.servers.process import ServerProcess

SETTLE_TIMEOUT = 3.0


def echo_once(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(len(payload) - len(received))
        if not chunk:
            break
        received += chunk
    return received


def open_connections(server: ServerProcess, count: int) -> list[socket.socket]:
    """``count`` connections, each proven served by one round trip."""
    sockets = [socket.create_connection(server.address, timeout=5) for _ in range(count)]
    for sock in sockets:
        assert echo_once(sock, b"ping") == b"PING"
    return sockets


def children_of(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def gone(proc: psutil.Process) -> bool:
    """Exited (a zombie counts: its parent is dead and cannot reap it)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, timeout: float = SETTLE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.parametrize(("model", "params", "expected_children"), [
    ("fork", {}, 3),
    ("prefork", {}, 2),
    ("prefork", {"processes": 3}, 3),
])
def test_sigterm_to_the_parent_leaves_no_child(model: str, params: dict,
                                               expected_children: int) -> None:
    with ServerProcess(model, params) as server:
        sockets = open_connections(server, 3)
        try:
            children = children_of(server.pid)
            assert len(children) == expected_children
            os.kill(server.pid, signal.SIGTERM)  # the parent only, not the group
            assert server.proc.wait(timeout=5) == 0
            # The parent waited for them: not even a zombie is left.
            assert not [child.pid for child in children if child.is_running()]
        finally:
            for sock in sockets:
                sock.close()


def test_fork_reaps_children_of_closed_connections() -> None:
    with ServerProcess("fork") as server:
        for sock in open_connections(server, 4):
            sock.close()
        assert wait_until(lambda: not children_of(server.pid)), \
            [(c.pid, c.status()) for c in children_of(server.pid)]
        with socket.create_connection(server.address, timeout=5) as sock:
            assert echo_once(sock, b"again") == b"AGAIN"


@pytest.mark.parametrize("model", ["fork", "prefork"])
def test_children_die_with_a_killed_parent(model: str) -> None:
    with ServerProcess(model) as server:
        sockets = open_connections(server, 2)
        try:
            children = children_of(server.pid)
            assert children
            os.kill(server.pid, signal.SIGKILL)  # no chance to clean up
            server.proc.wait(timeout=5)
            assert wait_until(lambda: all(gone(child) for child in children))
        finally:
            for sock in sockets:
                sock.close()


def test_prefork_keeps_all_workers_through_a_client_reset() -> None:
    with ServerProcess("prefork", {"processes": 2}) as server:
        sockets = open_connections(server, 20)
        try:
            rude = sockets.pop()
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            rude.close()
            for sock in sockets:
                assert echo_once(sock, b"still") == b"STILL"
            assert len(children_of(server.pid)) == 2
        finally:
            for sock in sockets:
                sock.close()


PARENT_OF_A_SERVER = """
import sys, time
from iobench.servers.process import ServerProcess
server = ServerProcess(sys.argv[1])
print(server.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("model", ["busy-poll", "prefork"])
def test_a_server_dies_with_the_process_that_started_it(model: str) -> None:
    """SIGKILL leaves the starter no clean-up: PR_SET_PDEATHSIG must end the server."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT_OF_A_SERVER, model],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        server = psutil.Process(int(parent.stdout.readline()))
        tree = [server, *server.children(recursive=True)]
    finally:
        parent.kill()
        parent.wait()
    _, left = psutil.wait_procs(tree, timeout=3.0)
    for proc in left:
        proc.kill()
    assert not left, [p.pid for p in left]
