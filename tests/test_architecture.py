"""The shape of the package, read from the source (an AST walk, nothing imported): no import circle
between modules, the layers import downwards only, and no two modules share a name."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "edgestereo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgestereo modules ``path`` imports anywhere in it (functions and TYPE_CHECKING blocks too):
    ``from a.b import c`` is module a.b.c when that is a module, else a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                         for alias in node.names)
    return {name for name in found if name in modules}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert circles(import_graph(MODULES)) == []


#: package → packages it must never import (the layers: models and ops at the bottom, the
#: runtime above them, export and quant above that, training and the commands on top).
NEVER = {
    "edgestereo.ops": ("edgestereo.models", "edgestereo.runtime", "edgestereo.export", "edgestereo.quant",
                       "edgestereo.training", "edgestereo.apps"),
    "edgestereo.models": ("edgestereo.runtime", "edgestereo.export", "edgestereo.quant", "edgestereo.training",
                          "edgestereo.apps", "edgestereo.api"),
    "edgestereo.runtime": ("edgestereo.export", "edgestereo.quant", "edgestereo.training", "edgestereo.apps",
                           "edgestereo.api"),
    "edgestereo.export": ("edgestereo.quant", "edgestereo.training", "edgestereo.apps"),
    "edgestereo.quant": ("edgestereo.training", "edgestereo.apps"),
    "edgestereo.training": ("edgestereo.apps",),
}


@pytest.mark.parametrize("package", sorted(NEVER))
def test_layers_import_downwards(package):
    graph = import_graph(MODULES)
    wrong = sorted(f"{source} -> {target}" for source, targets in graph.items()
                   if source == package or source.startswith(f"{package}.")
                   for target in targets for banned in NEVER[package]
                   if target == banned or target.startswith(f"{banned}."))
    assert wrong == []


def test_benchmarks_import_only_the_library():
    scripts = {path.stem: path for path in (ROOT / "benchmarks").glob("*.py")}
    wrong = sorted(f"{name} -> {target}" for name, path in scripts.items() for target in _imports(path, MODULES)
                   if target.startswith("edgestereo.apps"))
    assert wrong == []


def test_no_two_modules_share_a_name():
    names = Counter(path.stem for path in MODULES.values() if path.stem not in ("__init__", "_base"))
    assert [name for name, count in names.items() if count > 1] == []
