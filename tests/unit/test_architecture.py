"""The house, checked from the package's own imports (docs/architecture.md).

Every runtime import counts, at module level or inside a function; only imports under
``if TYPE_CHECKING:`` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "continuum_nb"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imported_names(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit_one(sub)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
        visit(node)

    visit(tree)
    return found


def _resolve(imported: str) -> str | None:
    """The longest module of the package an imported dotted name falls in."""
    parts = imported.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) if parts else None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {_resolve(i) for i in _imported_names(name, path)}
        # A module importing its own package's __init__ (or the top package) is not an edge
        # that makes a circle of files: the top package only re-exports lazily.
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")
                       and t != "continuum_nb"}
    return graph


GRAPH = _graph()


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_the_graph_sees_imports_inside_functions() -> None:
    # workflow.py imports the determinism scan inside a function: the check must see it
    assert "continuum_nb.determinism" in GRAPH["continuum_nb.workflow"]


def test_no_circle_of_imports() -> None:
    assert _circles(GRAPH) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


# floor -> the package prefixes its modules may not import (docs/architecture.md)
ABOVE = {
    "ground": ("store", "definitions", "replay", "determinism", "engine", "api", "workflow",
               "primitives", "partitions", "otel", "notebook", "observer", "cli", "commands",
               "analytics", "testing"),
    "store": ("definitions", "replay", "determinism", "engine", "api", "workflow", "primitives",
              "partitions", "otel", "notebook", "observer", "cli", "commands", "analytics", "testing"),
    "definitions": ("engine", "api", "workflow", "primitives", "partitions", "otel", "notebook",
                    "observer", "cli", "commands", "analytics", "testing"),
    "engine": ("api", "workflow", "primitives", "otel", "notebook", "observer", "cli", "commands",
               "analytics", "testing"),
}
FLOOR_OF = {
    "errors": "ground", "config": "ground", "telemetry": "ground",
    "store": "store",
    "definitions": "definitions", "replay": "definitions", "determinism": "definitions",
    "engine": "engine",
}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("floor", sorted(ABOVE))
def test_each_floor_imports_only_from_below(floor: str) -> None:
    wrong = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items() if FLOOR_OF.get(_top(m)) == floor
        for t in targets if _top(t) in ABOVE[floor]
    )
    assert wrong == []


def test_no_engine_part_imports_the_engine_itself() -> None:
    """The parts are handed the Loop interface; only the front door builds the Engine."""
    importers = sorted(m for m, t in GRAPH.items() if "continuum_nb.engine.node" in t)
    assert importers == ["continuum_nb.engine.instance"]


def test_sql_only_in_the_store() -> None:
    import re

    sql = re.compile(r"\b(insert into|update [a-z_]+ set|delete from|create table)\b", re.IGNORECASE)
    outside = sorted(m for m, p in MODULES.items()
                     if _top(m) != "store" and sql.search(p.read_text(encoding="utf-8")))
    assert outside == []


def test_modules_are_small() -> None:
    big = sorted(f"{m}: {n}" for m, p in MODULES.items()
                 if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert big == []


def test_no_private_module_loose_at_the_top() -> None:
    loose = sorted(m for m in MODULES if m.count(".") == 1 and _top(m).startswith("_") and _top(m) != "__main__")
    assert loose == []
