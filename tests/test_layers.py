"""The layers of docs/architecture.md: every import points down, never up or sideways.

The import graph is read from the source (every ``import``, also inside
functions), so a lazy import that breaks the layering is caught too.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

# Lowest first. A module may import its own package and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("iobench.common",),
    ("iobench.servers", "iobench.loadgen"),
    ("iobench.benchmarks.results",),
    ("iobench.benchmarks.report",),
    ("iobench.benchmarks.run",),
    ("iobench",),  # the command line: iobench.cli, iobench.models, iobench.client
)


def package_of(module: str) -> str:
    """The most specific layer package that holds ``module``."""
    best = ""
    for layer in LAYERS:
        for package in layer:
            if (module == package or module.startswith(package + ".")) and len(package) > len(best):
                best = package
    return best


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def iobench_modules() -> dict[str, Path]:
    """Every module of the installed ``iobench`` name, found through its import machinery."""
    modules: dict[str, Path] = {}
    packages = ["iobench", "iobench.common", "iobench.servers", "iobench.loadgen",
                "iobench.benchmarks", "iobench.benchmarks.run", "iobench.benchmarks.results",
                "iobench.benchmarks.report", "iobench.benchmarks.run.scenarios",
                "iobench.benchmarks.report.scenarios"]
    for package in packages:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        folder = Path(spec.origin).parent
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level - (path.stem == "__init__"))[0]
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return found


MODULES = iobench_modules()


def test_every_package_is_found() -> None:
    assert {"iobench.servers.select_server", "iobench.loadgen.worker",
            "iobench.benchmarks.run.runner", "iobench.benchmarks.results.store",
            "iobench.benchmarks.report.plots", "iobench.common.errors",
            "iobench.benchmarks.run.scenarios.closed",
            "iobench.benchmarks.report.scenarios.closed", "iobench.cli"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = package_of(module)
    own_layer = layer_of(own)
    wrong = []
    for imported in imports_of(MODULES[module], module):
        if imported.split(".")[0] in {"servers", "loadgen", "benchmarks", "tests"}:
            wrong.append(f"{imported} (not an installed name)")
            continue
        if not imported.startswith("iobench"):
            continue
        target = package_of(imported)
        if target == own or (imported == "iobench" and own_layer == len(LAYERS) - 1):
            continue
        if layer_of(target) >= own_layer:
            wrong.append(f"{imported} (layer {layer_of(target)}, {module} is layer {own_layer})")
    assert not wrong, f"{module} imports {wrong}"


def test_a_broken_layering_is_caught(tmp_path: Path) -> None:
    upward = tmp_path / "upward.py"
    upward.write_text("def f():\n    from iobench.benchmarks.run.runner import Runner\n")
    imported = imports_of(upward, "iobench.servers.upward")
    target = package_of(next(iter(imported)))
    assert layer_of(target) > layer_of(package_of("iobench.servers.upward"))
