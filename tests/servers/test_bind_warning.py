"""A server bound to an address other hosts can reach says so, in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from iobench.servers.harness import is_loopback
from iobench.servers.process import ServerProcess

# RFC 2544's benchmarking range, on the loopback device of a namespace of the test's own.
BENCH_ADDRESS = "198.18.0.1"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), (BENCH_ADDRESS, False), ("fe80::1%eth0", False),
])
def test_loopback_addresses_are_told_from_the_others(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_loopback_server_warns_of_nothing() -> None:
    with ServerProcess("select") as server:
        server.stop()
        assert "warning" not in server.stderr_text()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("ip") is None,
                    reason="needs root, unshare and ip for a network namespace")
def test_a_server_bound_elsewhere_warns_in_one_line() -> None:
    script = (f"ip link set lo up && ip addr add {BENCH_ADDRESS}/32 dev lo && "
              f"exec timeout -s TERM 2 {sys.executable} -m iobench.servers select "
              f"--host {BENCH_ADDRESS}")
    # A namespace of its own: the address exists nowhere else, and goes with it.
    proc = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                          text=True, timeout=30)
    assert f'"host": "{BENCH_ADDRESS}"' in proc.stdout, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr
    assert f"{BENCH_ADDRESS}:" in warnings[0] and "not a loopback address" in warnings[0]
