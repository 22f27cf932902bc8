"""The workflow's source as the determinism scan reads it: parsed from a cell's text or read with
``inspect``, with the imports it makes, the functions and classes it defines, and the names a
function binds itself (never reported: the scan cannot know their values).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Source",
    "find_function",
    "from_inspect",
    "imports_in",
    "local_names",
    "module_level_imports",
    "parse_source",
]


@dataclass
class Source:
    """One parsed piece of source: a cell, a module, or a function read with inspect."""

    filename: str
    first_line: int
    imports: dict[str, str]
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]


def parse_source(text: str, filename: str, first_line: int) -> tuple[ast.Module, Source] | None:
    """The parsed text and its Source (top-level imports and definitions); None if it does not parse."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    defs = {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    return tree, Source(filename, first_line, module_level_imports(tree), defs)


def from_inspect(fn: Any, filename: str | None) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, Source] | None:
    """The function's node, with its module's imports, read with inspect."""
    try:
        lines, start = inspect.getsourcelines(fn)
        fname = filename or inspect.getsourcefile(fn) or fn.__code__.co_filename
    except (OSError, TypeError, AttributeError):
        return None
    parsed = parse_source(textwrap.dedent("".join(lines)), fname, max(start, 1))
    if parsed is None:
        return None
    tree, src = parsed
    node = find_function(tree, fn.__name__)
    if node is None:
        return None
    # Names the workflow uses come from its module's top-level imports.
    src.defs = {}
    module = inspect.getmodule(fn)
    if module is not None:
        try:
            module_src = parse_source(inspect.getsource(module), fname, 1)
        except (OSError, TypeError):
            module_src = None
        if module_src is not None:
            src.imports = module_src[1].imports
    return node, src


def imports_in(nodes: Sequence[ast.stmt] | ast.AST) -> dict[str, str]:
    """name -> dotted target, for every import statement in (or under) ``nodes``."""
    found: dict[str, str] = {}
    roots = [nodes] if isinstance(nodes, ast.AST) else list(nodes)
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        found[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        found[head] = head
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if alias.name != "*":
                        found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def module_level_imports(tree: ast.Module) -> dict[str, str]:
    """Imports at the top level of a module/cell (including under if/try), not inside defs."""
    found: dict[str, str] = {}

    def visit(stmts: Sequence[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                found.update(imports_in(stmt))
            elif isinstance(stmt, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(stmt, field, []))
                for handler in getattr(stmt, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def local_names(fn_node: ast.AST) -> set[str]:
    """Names bound inside the function other than by import (parameters, assignments, ...)."""
    names: set[str] = set()
    declared_global: set[str] = set()
    for node in ast.walk(fn_node):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node is not fn_node:
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared_global.update(node.names)
    return names - declared_global


def find_function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of function ``name`` in ``tree``."""
    found = None
    for node in ast.walk(tree):  # the last definition wins, as at run time
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            if found is None or node.lineno >= found.lineno:
                found = node
    return found
