"""Project-wide checks: the public surface, the lint rules and the types."""

from __future__ import annotations

import importlib.util
import re
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


def test_mypy_is_clean() -> None:
    # mypy is in the test extra, so a missing mypy fails here rather than skipping:
    # the type check is part of README's test command. Its settings, and the
    # files it checks, are pyproject.toml's [tool.mypy].
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


# "# type: ignore[code]  # why": an ignore names its error code and says why it is needed.
EXPLAINED_IGNORE = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(,\s*[a-z-]+)*\]\s+#\s*\S")


def test_every_type_ignore_says_why() -> None:
    unexplained = []
    # rglob does not descend into iobench/servers etc., links to the folders read next.
    for folder in ("iobench", "servers", "loadgen", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "type: ignore" in line and not EXPLAINED_IGNORE.search(line):
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not unexplained, "\n".join(unexplained)
