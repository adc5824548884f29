"""Installed, iobench owns one import name and the wheel carries its data files; a checkout is
the same package, without an install."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "iobench", "servers", "loadgen", "benchmarks")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed here, so no wheel can be built offline")
    # Built from a copy: setuptools writes build/ and egg-info beside the sources.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("iobench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_installs_one_import_name(wheel_names: list[str]) -> None:
    code = [name for name in wheel_names if ".dist-info/" not in name]
    tops = {name.split("/")[0] for name in code}
    assert tops == {"iobench"}, tops
    for package in ("servers", "loadgen", "benchmarks/run", "benchmarks/results",
                    "benchmarks/report", "common"):
        assert f"iobench/{package}/__init__.py" in code, package
    assert not any("/micro/" in name or name.startswith("tests/") for name in code)


def test_the_wheel_carries_profiles_and_the_native_server(wheel_names: list[str]) -> None:
    assert "iobench/benchmarks/run/profiles/quick.toml" in wheel_names
    assert "iobench/benchmarks/run/profiles/full.toml" in wheel_names
    assert "iobench/loadgen/native_echo.c" in wheel_names


# In the checkout each of these is a link to the top-level folder of the same code.
LINKED = {"servers": "servers", "loadgen": "loadgen", "benchmarks": "benchmarks"}


def test_the_checkout_links_each_folder_into_the_one_name() -> None:
    for name, folder in LINKED.items():
        link = ROOT / "iobench" / name
        assert link.is_symlink(), f"iobench/{name} is not a link"
        assert link.resolve() == (ROOT / folder).resolve(), f"iobench/{name} -> {link.resolve()}"


def test_a_server_runs_from_the_checkout_without_an_install() -> None:
    # -S: no site-packages, so no editable install's import hook can help;
    # only the checkout, as the working directory, is on the path.
    result = subprocess.run([sys.executable, "-S", "-m", "iobench.servers", "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "python -m iobench.servers" in result.stdout
    found = subprocess.run(
        [sys.executable, "-S", "-c", "import iobench.servers.base as b; print(b.__file__)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert Path(found.stdout.strip()) == ROOT / "iobench" / "servers" / "base.py", found.stderr
