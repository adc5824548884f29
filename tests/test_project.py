"""Project-wide checks: the public surface and the lint rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import iobench.servers as servers

ROOT = Path(__file__).resolve().parent.parent


def test_servers_exports() -> None:
    for name in servers.__all__:
        assert hasattr(servers, name), name


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
