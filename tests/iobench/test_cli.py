"""The command line as a user meets it: tables, clear errors, the client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from iobench.servers.process import ServerProcess
from iobench.servers.registry import all_models

IOBENCH = [sys.executable, "-m", "iobench"]


def iobench(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IOBENCH, *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.count("\n") == 0, message  # one line
    for fragment in fragments:
        assert fragment in message


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("iobench")
    assert script.exists()
    assert subprocess.run([script, "--help"], capture_output=True, timeout=30).returncode == 0


def test_models_lists_every_model_with_family_and_mechanism() -> None:
    result = iobench("models", "--markdown")
    assert result.returncode == 0
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(all_models())
    for name, cls in all_models().items():
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert str(cls.family) in row and cls.mechanism in row
    for name in ("busy-poll", "poll-sleep", "select", "threads"):
        assert f"| {name} |" in result.stdout


def test_models_table_for_people() -> None:
    result = iobench("models")
    assert result.returncode == 0
    assert "busy-poll" in result.stdout and "interval=0.001s" in result.stdout


def test_unknown_model_lists_the_valid_names() -> None:
    result = iobench("serve", "nope")
    assert_clean_error(result, "unknown model 'nope'", "busy-poll", "select", "threads")


@pytest.mark.parametrize(("params", "fragment"), [
    (["--param", "nope=1"], "no parameter 'nope'"),
    (["--param", "interval"], "expected NAME=VALUE"),
    (["--param", "interval=-1ms"], "must be >= 0"),
    (["--param", "interval=soon"], "cannot parse 'soon'"),
])
def test_bad_params_are_refused(params: list[str], fragment: str) -> None:
    assert_clean_error(iobench("serve", "poll-sleep", *params), fragment)


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = iobench("serve", "select", "--port", str(port))
    assert_clean_error(result, f"127.0.0.1:{port}", "address already in use")


@pytest.mark.parametrize("interval", ["10ms", "0.1ms", "0.001"])
def test_poll_sleep_intervals(interval: str) -> None:
    with ServerProcess("poll-sleep", {"interval": interval}) as server:
        result = iobench("client", f"127.0.0.1:{server.port}", stdin="abc\n")
    assert result.stdout == "ABC\n"


def test_client_with_piped_input_prints_the_replies() -> None:
    with ServerProcess("select") as server:
        result = iobench("client", f"127.0.0.1:{server.port}", stdin="abc\nmixed Case 42\n")
    assert result.returncode == 0
    assert result.stdout == "ABC\nMIXED CASE 42\n"


def test_client_to_a_closed_port_fails_clearly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: nobody accepts
    assert_clean_error(iobench("client", f"127.0.0.1:{port}", stdin="x\n"),
                       f"cannot connect to 127.0.0.1:{port}")


@pytest.mark.parametrize("target", ["nonsense", "127.0.0.1:", "127.0.0.1:99999", "::1:80"])
def test_client_rejects_bad_targets(target: str) -> None:
    assert_clean_error(iobench("client", target, stdin=""), "bad target")


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    # As in `iobench models --markdown | head -1` once head has exited: the pipe
    # has no reader left, so the first write fails with EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        writer = subprocess.run([*IOBENCH, "models", "--markdown"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert "Traceback" not in writer.stderr, writer.stderr
    assert writer.stderr == ""
    assert writer.returncode == 141
