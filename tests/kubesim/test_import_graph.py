"""No two kubesim modules import each other, directly or round a longer circle: every import
counts, at module level, inside functions and under `if TYPE_CHECKING:`, read from the source
with `ast` (so an import that only runs later cannot hide a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kubesim"


def _imported(path: Path, modules: set[str]) -> set[str]:
    """The kubesim modules `path` imports, however and wherever it does."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and module:  # from .x import y
                found.add(module.split(".")[0])
            elif node.level == 1 or module == "kubesim":  # from . import x
                found.update(a.name for a in node.names)
            elif node.level == 0 and module.startswith("kubesim."):
                found.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("kubesim."))
    return (found & modules) - {path.stem}


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: _imported(p, modules) for p in sorted(PACKAGE.glob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_no_kubesim_modules_import_each_other():
    graph = import_graph()
    assert graph["sim"] >= {"server", "api", "controllers"}  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_circles_through_function_level_imports(tmp_path):
    source = "def late():\n    from .a import thing\n"
    module = tmp_path / "b.py"
    module.write_text(source, encoding="utf-8")
    assert _imported(module, {"a", "b"}) == {"a"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
