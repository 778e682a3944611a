"""The layers hold: ``apiops_site`` → ``jobs`` → ``ops`` → the client, no module of ``ops``
imports ``jobs``, job types import the step vocabulary and never the engine, and no two
modules of ``jobs`` or ``ops`` import each other (directly or round a longer circle).

Imports are read from the source with ``ast``, function-level ones included: a circle hidden
in a function is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("jobs", "ops")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in (REPO / package).rglob("*.py")
        if "migrations" not in p.parts and "management" not in p.parts
    }


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports (``from a import b`` counts ``a.b`` when a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name in known:
                found.add(name)
            elif name.rsplit(".", 1)[0] in known and name not in known:
                found.add(name.rsplit(".", 1)[0])
    return found


def _graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = {}
    for package in packages:
        modules.update(_modules(package))
    known = set(modules)
    graph = {name: _imports(path, known) - {name} for name, path in modules.items()}
    # A package's __init__ is imported with any of its modules: not an edge worth a circle.
    return {name: {d for d in deps if not name.startswith(d + ".")} for name, deps in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_inside_a_package(package):
    graph = {n: d for n, d in _graph((package,)).items()}
    assert _cycles(graph) == []


def test_ops_imports_nothing_from_jobs():
    offenders = {
        name: sorted(d for d in deps if d.split(".")[0] == "jobs")
        for name, deps in _graph().items()
        if name.split(".")[0] == "ops"
    }
    assert {n: d for n, d in offenders.items() if d} == {}


def test_job_types_import_the_step_vocabulary_never_the_engine():
    engine = {"jobs.runner", "jobs.dispatch", "jobs.tasks", "jobs.worker", "jobs.services"}
    offenders = {
        name: sorted(deps & engine)
        for name, deps in _graph().items()
        if name.startswith("jobs.types.")
    }
    assert {n: d for n, d in offenders.items() if d} == {}
