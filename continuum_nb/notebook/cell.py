"""What a ``%%workflow`` cell defines and what it uses without defining.

A ``%%workflow`` cell is stored as the workflow's source so that an engine that never saw the
notebook (a ``continuum worker``, another kernel) can load it. That only works when the cell is
self-contained: every name it uses must be a builtin, or imported or defined in the cell itself.
This module finds the names that break that rule, using ``symtable`` (the compiler's own scope
analysis: parameters, locals, comprehensions, ``global``/``nonlocal``, class bodies), and picks
the ``async def`` the cell registers.

Pure Python, no IPython: the magics call it and unit tests exercise it directly.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CellError", "CellInfo", "analyse_cell", "free_name_messages", "select_workflow"]

#: Names every module namespace has, though no statement binds them.
_MODULE_DUNDERS = frozenset(
    {
        "__name__", "__doc__", "__file__", "__builtins__", "__spec__", "__loader__",
        "__package__", "__annotations__", "__dict__", "__debug__",
    }
)  # fmt: skip


class CellError(ValueError):
    """The cell cannot be registered as written (the message says what to change)."""


@dataclass(frozen=True)
class CellInfo:
    #: Top-level ``async def`` names, in source order.
    async_defs: list[str]
    #: Names used but neither defined, imported nor builtin, in order of first use.
    free_names: list[str] = field(default_factory=list)
    #: True when ``from x import *`` makes the free-name check impossible.
    star_import: bool = False


def analyse_cell(source: str, filename: str = "<workflow cell>") -> CellInfo:
    """Parse ``source`` (plain Python: no ``%magics``) and report its ``async def``s and free names.

    Raises ``SyntaxError`` for source that does not parse.
    """
    tree = ast.parse(source, filename=filename)
    async_defs = [n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef)]
    star = any(
        isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
        for n in ast.walk(tree)
    )
    if star:
        return CellInfo(async_defs, [], star_import=True)
    top = symtable.symtable(source, filename, "exec")
    defined: set[str] = set()
    used: set[str] = set()
    for sym in top.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            defined.add(sym.get_name())
        elif sym.is_referenced():
            used.add(sym.get_name())
    stack = list(top.get_children())
    while stack:
        table = stack.pop()
        stack.extend(table.get_children())
        for sym in table.get_symbols():
            if not sym.is_global():
                continue  # local, parameter, or a closure variable of an enclosing function
            if sym.is_declared_global() and (sym.is_assigned() or sym.is_imported()):
                defined.add(sym.get_name())  # `global x; x = ...` binds a module name
            if sym.is_referenced():
                used.add(sym.get_name())
    missing = used - defined - _MODULE_DUNDERS - set(dir(builtins))
    return CellInfo(async_defs, _in_source_order(tree, missing))


def _in_source_order(tree: ast.AST, names: set[str]) -> list[str]:
    first: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            pos = (node.lineno, node.col_offset)
            if node.id not in first or pos < first[node.id]:
                first[node.id] = pos
    # symtable can report names ast.Name does not carry (none known today); keep them, last.
    return sorted(names, key=lambda n: (first.get(n, (1 << 30, 0)), n))


def select_workflow(info: CellInfo, name: str | None) -> str:
    """The ``async def`` the cell registers: the one named ``name``, else the only one."""
    found = info.async_defs
    if name is not None:
        if name in found:
            return name
        others = f"; it defines {_names(found)}" if found else ""
        raise CellError(
            f"%%workflow {name}: the cell defines no top-level `async def {name}`{others}"
        )
    if not found:
        raise CellError(
            "%%workflow: the cell defines no top-level `async def`; write the workflow as "
            "`async def name(...):` in this cell"
        )
    if len(found) > 1:
        raise CellError(
            f"%%workflow: the cell defines {len(found)} async defs ({_names(found)}); "
            f"name the workflow, e.g. `%%workflow {found[0]}`"
        )
    return found[0]


def free_name_messages(names: list[str], user_ns: Mapping[str, Any]) -> list[str]:
    """One sentence per free name, saying where it lives now and how to fix the cell."""
    out = []
    for n in names:
        if n in user_ns:
            out.append(
                f"cell uses `{n}`, defined elsewhere in the notebook; import or define it in this cell"
            )
        else:
            out.append(
                f"cell uses `{n}`, which is not defined anywhere; import or define it in this cell"
            )
    return out


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
