"""Name resolution for the determinism scan: from a name or attribute in workflow source to the
dotted name the rules are keyed by and, when it can be found, the runtime object behind it.

Names resolve the way Python would at run time: imports inside the function, then its closure,
then the imports of the cell/module source, then ``fn.__globals__``, then builtins. Nothing here
ever runs user code: attributes are read with ``inspect.getattr_static`` (no properties, no
``__getattr__``), and only modules already imported are looked into.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import types
from dataclasses import dataclass
from typing import Any

from .rules import canonical
from .source import Source, imports_in, local_names

__all__ = [
    "MISSING",
    "Names",
    "Resolved",
    "is_activity",
    "is_pure",
    "lookup_module_object",
    "module_of",
    "object_dotted",
    "safe_getattr",
]

#: The object of a name the scan cannot find (None is a real value a name can have).
MISSING: Any = object()


@dataclass
class Resolved:
    """What a name or attribute in workflow source refers to."""

    dotted: str
    obj: Any  # MISSING when unknown
    #: Set for a function or class defined in the workflow's own cell/module source.
    own: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None = None


class Names:
    """How names resolve inside one function of workflow code (``node``, whose runtime object is
    ``fn``, defined in ``src``)."""

    def __init__(self, node: ast.FunctionDef | ast.AsyncFunctionDef, fn: Any, src: Source) -> None:
        self.src = src
        self.locals = local_names(node)
        self.local_imports = {k: v for k, v in imports_in(node.body).items() if k not in self.locals}
        self.closure: dict[str, Any] = {}
        code = getattr(fn, "__code__", None)
        for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or (), strict=False):
            try:
                self.closure[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        self.globals: dict[str, Any] = getattr(fn, "__globals__", None) or {}

    def name(self, name: str) -> Resolved | None:
        """A bare name; None for one bound in the function itself or not found at all."""
        if name in self.locals:
            return None
        if name in self.local_imports:
            dotted = self.local_imports[name]
            return Resolved(canonical(dotted), lookup_module_object(dotted))
        if name in self.closure:
            obj = self.closure[name]
            found = object_dotted(obj)
            return Resolved(found, obj) if found else None
        if name in self.src.imports:
            dotted = self.src.imports[name]
            obj = lookup_module_object(dotted)
            if obj is MISSING:
                obj = self.globals.get(name, MISSING)
            return Resolved(canonical(dotted), obj)
        if name in self.src.defs:
            return Resolved(f"<own>.{name}", self.globals.get(name, MISSING), own=self.src.defs[name])
        if name in self.globals:
            obj = self.globals[name]
            found = object_dotted(obj)
            return Resolved(found, obj) if found else None
        if hasattr(builtins, name):
            return Resolved(f"builtins.{name}", getattr(builtins, name))
        return None

    def resolve(self, expr: ast.expr) -> Resolved | None:
        """A name or a chain of attributes on one (``os.path.join``); None for anything else."""
        if isinstance(expr, ast.Name):
            return self.name(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            if base is None or base.own is not None:
                return None
            dotted = f"{base.dotted}.{expr.attr}"
            obj = safe_getattr(base.obj, expr.attr)
            if obj is MISSING and base.obj is MISSING:
                obj = lookup_module_object(dotted)
            if isinstance(obj, types.ModuleType):
                dotted = canonical(obj.__name__)
            return Resolved(dotted, obj)
        return None


def object_dotted(obj: Any) -> str | None:
    """The dotted name a runtime object is reached by (for objects from ``fn.__globals__``)."""
    if isinstance(obj, types.ModuleType):
        return canonical(obj.__name__)
    if getattr(builtins, getattr(obj, "__name__", ""), MISSING) is obj:
        return f"builtins.{obj.__name__}"
    if inspect.ismethod(obj) or (inspect.isbuiltin(obj) and not isinstance(getattr(obj, "__self__", None), types.ModuleType) and getattr(obj, "__self__", None) is not None):
        owner = obj.__self__
        base = object_dotted(owner if isinstance(owner, type) else type(owner))
        return f"{base}.{obj.__name__}" if base else None
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return canonical(f"{module}.{qualname}")
    cls = type(obj)  # an instance: its methods belong to its class's module
    return canonical(f"{cls.__module__}.{cls.__qualname__}")


def safe_getattr(obj: Any, name: str) -> Any:
    """``obj.name`` without running user code; MISSING if it cannot be read."""
    if obj is MISSING:
        return MISSING
    try:
        if isinstance(obj, types.ModuleType):
            return getattr(obj, name)
        # Never run properties or __getattr__ of arbitrary objects during a scan.
        value = inspect.getattr_static(obj, name)
        return value.__func__ if isinstance(value, staticmethod | classmethod) else value
    except Exception:
        return MISSING


def lookup_module_object(dotted: str) -> Any:
    """The object behind an imported dotted name, from already-imported modules only."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj: Any = mod
            for attr in parts[i:]:
                obj = safe_getattr(obj, attr)
            return obj
    return MISSING


def module_of(dotted: str, obj: Any) -> str:
    """The module a call goes to: the longest imported prefix of its dotted name."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if isinstance(sys.modules.get(name), types.ModuleType) and i < len(parts):
            return name
    mod = getattr(obj, "__module__", None) if obj is not MISSING else None
    if isinstance(mod, str):
        return canonical(mod)
    # Not imported in this process (a cell's import that has not run): its import path.
    return parts[0] if len(parts) == 1 else ".".join(parts[:-1])


def _marker(obj: Any, name: str) -> Any:
    """An attribute read that never runs user code (no properties, no __getattr__)."""
    if obj is MISSING:
        return MISSING
    try:
        return inspect.getattr_static(obj, name, MISSING)
    except Exception:
        return MISSING


def is_activity(obj: Any) -> bool:
    """Whether ``obj`` is an ``@cn.activity`` (its calls are journaled, so never a finding)."""
    return _marker(obj, "__continuum_activity__") is not MISSING


def is_pure(obj: Any) -> bool:
    """Whether ``obj`` is marked ``@cn.pure`` (trusted to be deterministic)."""
    return _marker(obj, "__continuum_pure__") is True
