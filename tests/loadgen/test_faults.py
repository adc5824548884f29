"""Every fault a server can commit is detected, counted and turns the exit code non-zero."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iobench.cli import main
from tests.loadgen.faulty_servers import (
    FaultyServer,
    Handler,
    corrupt_byte_at,
    drop_after,
    half_reply_then_close,
    plain_echo,
    stall_after,
    upper_echo,
)

StartServer = Callable[[Handler], FaultyServer]
CONNECTIONS = 4


def load(server: FaultyServer, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run ``iobench load`` against ``server``; return the exit code and the JSON."""
    path = tmp_path / "load.json"
    code = main(["load", "--target", server.target, "--connections", str(CONNECTIONS),
                 "--duration", "0.5", "--warmup", "0", "--timeout", "0.5",
                 "--json", str(path), *extra])
    return code, json.loads(path.read_text())


def only_errors(result: dict[str, Any]) -> dict[str, int]:
    return {kind: count for kind, count in result["errors"].items() if count and kind != "total"}


@pytest.mark.parametrize("mode", [[], ["--mode", "open", "--rate", "400"]],
                         ids=["closed", "open"])
def test_a_correct_server_gives_no_errors(faulty_server: StartServer, tmp_path: Path,
                                          mode: list[str]) -> None:
    code, result = load(faulty_server(upper_echo), tmp_path, *mode)
    assert code == 0
    assert result["ok"] is True
    assert result["errors"]["total"] == 0
    assert result["requests"] > 0


@pytest.mark.parametrize("mode", [[], ["--mode", "open", "--rate", "400"]],
                         ids=["closed", "open"])
def test_a_corrupted_byte_is_a_mismatch(faulty_server: StartServer, tmp_path: Path,
                                        mode: list[str]) -> None:
    # Byte 1000 of each connection lies in its 16th 64-byte response.
    code, result = load(faulty_server(corrupt_byte_at(1000)), tmp_path, *mode)
    assert code == 1
    assert result["ok"] is False
    assert only_errors(result) == {"mismatch": CONNECTIONS}
    assert result["errors"]["total"] == CONNECTIONS


def test_allow_errors_keeps_the_count_but_exits_zero(faulty_server: StartServer,
                                                     tmp_path: Path) -> None:
    code, result = load(faulty_server(corrupt_byte_at(1000)), tmp_path, "--allow-errors")
    assert code == 0
    assert result["ok"] is True
    assert result["errors"]["mismatch"] == CONNECTIONS


def test_a_plain_echo_server_passes_with_expect_echo(faulty_server: StartServer,
                                                     tmp_path: Path) -> None:
    code, result = load(faulty_server(plain_echo), tmp_path, "--expect", "echo")
    assert code == 0
    assert result["errors"]["total"] == 0
    assert result["params"]["expect"] == "echo"


def test_a_plain_echo_server_fails_the_uppercase_check(faulty_server: StartServer,
                                                       tmp_path: Path) -> None:
    code, result = load(faulty_server(plain_echo), tmp_path)
    assert code == 1
    assert result["errors"]["mismatch"] > 0


def test_a_dropped_connection_is_a_short_response(faulty_server: StartServer,
                                                  tmp_path: Path) -> None:
    code, result = load(faulty_server(drop_after(5, reset=False)), tmp_path)
    assert code == 1
    assert only_errors(result) == {"short": CONNECTIONS}


def test_a_reset_connection_is_a_reset(faulty_server: StartServer, tmp_path: Path) -> None:
    code, result = load(faulty_server(drop_after(5, reset=True)), tmp_path)
    assert code == 1
    assert only_errors(result) == {"reset": CONNECTIONS}


def test_half_a_response_is_short(faulty_server: StartServer, tmp_path: Path) -> None:
    code, result = load(faulty_server(half_reply_then_close), tmp_path)
    assert code == 1
    assert only_errors(result) == {"short": CONNECTIONS}


@pytest.mark.parametrize("mode", [[], ["--mode", "open", "--rate", "400"]],
                         ids=["closed", "open"])
def test_a_stalled_server_times_out(faulty_server: StartServer, tmp_path: Path,
                                    mode: list[str]) -> None:
    code, result = load(faulty_server(stall_after(3)), tmp_path, *mode)
    assert code == 1
    errors = only_errors(result)
    assert set(errors) == {"timeout"}
    assert errors["timeout"] >= CONNECTIONS
    assert result["ok"] is False


@pytest.mark.parametrize("mode", [[], ["--mode", "open", "--rate", "40"]],
                         ids=["closed", "open"])
def test_a_corrupted_byte_inside_a_large_message(faulty_server: StartServer, tmp_path: Path,
                                                 mode: list[str]) -> None:
    # 200 kB messages arrive in many pieces; byte 300,000 is in the middle of the second.
    code, result = load(faulty_server(corrupt_byte_at(300_000)), tmp_path, "--size", "200000",
                        *mode)
    assert code == 1
    assert only_errors(result) == {"mismatch": CONNECTIONS}
