"""Bad input gives one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import iobench.loadgen.cli
from iobench.cli import main
from iobench.common.errors import UsageError
from iobench.loadgen import LoadParams, WorkerFailed
from iobench.loadgen.params import resolve_target


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("argv", "message"), [
    (["--connections", "0"], "--connections must be 1-"),
    (["--connections", "100000000"], "--connections must be 1-"),
    (["--mode", "open", "--rate", "1e12"], "--rate must be a positive number up to"),
    (["--mode", "open", "--rate", "inf"], "--rate must be a positive number"),
    (["--duration", "1e9"], "--duration must be at most"),
    (["--workers", "100000", "--connections", "100000"], "--workers must be 1-"),
    (["--rate", "100"], "--rate applies to open loop only"),
    (["--mode", "open"], "--mode open needs --rate"),
    (["--mode", "open", "--rate", "-5"], "--rate must be a positive number"),
    (["--arrival", "poisson"], "--arrival applies to open loop only"),
    (["--workers", "3", "--connections", "2"], "every worker needs a connection"),
    (["--size", "0"], "--size must be"),
    (["--duration", "0"], "--duration must be a positive number"),
    (["--timeout", "nan"], "--timeout must be a positive number"),
    (["--warmup", "-1"], "--warmup must be zero or more"),
])
def test_bad_options(argv: list[str], message: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["load", "--target", "127.0.0.1:9", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("iobench: error: ")
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("target", ["nonsense", "127.0.0.1", "127.0.0.1:http", "::1:80",
                                    "127.0.0.1:70000"])
def test_an_unparsable_target(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--target", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iobench: error: bad target")
    assert err.count("\n") == 1


def test_an_unknown_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--target", "no-such-host.invalid:80"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iobench: error: cannot resolve no-such-host.invalid:80")


def test_a_port_nobody_listens_on(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "load.json"
    completed = subprocess.run(
        [sys.executable, "-m", "iobench.loadgen",
         "--target", f"127.0.0.1:{port}", "--connections", "3",
         "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert completed.stderr == ("python -m iobench.loadgen: error: cannot connect to "
                                f"127.0.0.1:{port}: Connection refused\n")
    result = json.loads(path.read_text())
    assert result["ok"] is False
    assert result["errors"]["connect"] == 3
    assert result["errors"]["total"] == 3
    assert result["requests"] == 0
    assert result["latency"]["p99_us"] is None


def test_a_json_path_in_a_missing_directory(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["load", "--target", "127.0.0.1:9", "--json", str(tmp_path / "no" / "x.json")])
    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_params_record_exactly_what_ran() -> None:
    params = LoadParams(target="[::1]:8000", mode="open", rate_rps=250.0, arrival="poisson",
                        connections=3, workers=3, seed=7)
    assert params.validate().record() == {
        "target": "[::1]:8000", "mode": "open", "connections": 3, "duration_s": 5.0,
        "warmup_s": 1.0, "size_bytes": 64, "rate_rps": 250.0, "arrival": "poisson",
        "workers": 3, "timeout_s": 5.0, "expect": "upper", "idle": 0,
        "requests_per_connection": None}


def test_validate_raises_usage_error() -> None:
    with pytest.raises(UsageError, match="--connections"):
        LoadParams(target="127.0.0.1:1", connections=-1).validate()


def test_a_crashed_worker_still_writes_the_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def crash(params: LoadParams, *, allow_errors: bool, announce: object = None) -> dict:
        raise WorkerFailed("load worker 1 exited with code -9")

    monkeypatch.setattr(iobench.loadgen.cli, "run", crash)
    path = tmp_path / "load.json"
    code = main(["load", "--target", "127.0.0.1:9", "--workers", "2", "--json", str(path)])
    assert code == 1
    assert "exited with code -9" in capsys.readouterr().err
    result = json.loads(path.read_text())
    assert result["ok"] is False
    assert result["failure"] == "load worker 1 exited with code -9"
    assert result["params"]["workers"] == 2


def test_a_name_with_several_addresses_uses_one_that_accepts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # 127.0.0.2 is loopback too, but nothing listens there on this port.
        answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                   (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
        resolved = resolve_target(f"dual-stack-name:{port}")
    assert resolved.sockaddr == ("127.0.0.1", port)
    assert resolved.text == f"dual-stack-name:{port}"


def test_too_few_descriptors_is_an_error_naming_ulimit(tmp_path: Path) -> None:
    """Checked before any socket is opened, with the number the run needs.

    More than fs.nr_open, so not even a privileged process can raise its limit
    that far, and the test means the same as root or not.
    """
    path = tmp_path / "load.json"
    completed = subprocess.run(
        [sys.executable, "-m", "iobench.loadgen", "--target", "127.0.0.1:9",
         "--connections", "1000000", "--idle", "100000", "--json", str(path)],
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "needs 1100032 open files" in completed.stderr
    assert "`ulimit -n` allows" in completed.stderr and "--workers" in completed.stderr
    assert not path.exists()
