"""The determinism scan's rule tables and name resolution (used by determinism.py).

The tables say which calls are never deterministic (and what to use instead) and which
standard-library modules are trusted; the helpers turn a name in workflow source, or a
runtime object from ``fn.__globals__``, into the dotted name those tables are keyed by,
without ever running user code (no properties, no ``__getattr__``).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import types
from collections.abc import Sequence
from typing import Any

ACTIVITY = "move the I/O into an @cn.activity"

# replacement -> the dotted prefixes it replaces. The longest matching prefix decides, so
# "" (deterministic members of a flagged module, like os.path.join) overrides its module.
_REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "cn.now()": ("time", "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today"),
    "cn.today()": ("datetime.date.today",),
    "cn.timer(...)": ("time.sleep", "asyncio.sleep"),
    "cn.random()": ("random", "os.urandom"),
    "cn.uuid4()": ("uuid.uuid1", "uuid.uuid4"),
    "cn.side_effect(...)": ("secrets",),
    "cn.gather(...)": ("asyncio.gather",),
    "cn.gather(...) / cn.timer(...) (workflow code never runs on an asyncio loop)": ("asyncio",),
    "cn.gather(...) of activities": ("threading", "concurrent.futures", "multiprocessing"),
    ACTIVITY: (
        "os", "builtins.open", "builtins.input", "io.open", "socket", "ssl", "subprocess",
        "urllib.request", "http.client", "requests", "httpx", "aiohttp", "urllib3",
    ),
    "": tuple(
        f"os.path.{f}"
        for f in ("join", "basename", "dirname", "split", "splitext", "normpath", "isabs", "commonprefix")
    ),
}
_RULES: dict[str, str] = {prefix: repl for repl, prefixes in _REPLACEMENTS.items() for prefix in prefixes}

#: Standard-library modules whose functions are deterministic (the nondeterministic members of
#: datetime and uuid are caught by the rules above first). logging and warnings are here too:
#: their output repeats on replay, but they cannot change the path the workflow takes.
STDLIB_TRUSTED: frozenset[str] = frozenset(
    {
        "abc", "array", "base64", "binascii", "bisect", "builtins", "calendar", "cmath",
        "collections", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
        "difflib", "enum", "fractions", "functools", "graphlib", "hashlib", "heapq", "hmac",
        "html", "ipaddress", "itertools", "json", "keyword", "math", "numbers", "operator",
        "pprint", "re", "shlex", "logging", "warnings", "statistics", "string", "struct", "textwrap", "types",
        "typing", "unicodedata", "urllib.parse", "uuid", "zlib", "os.path", "posixpath",
        "ntpath",
    }
)

# C implementation modules whose objects report the private name in __module__.
_MODULE_ALIASES = {
    "posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path", "_socket": "socket",
    "_random": "random", "_thread": "threading", "_datetime": "datetime", "_io": "io",
    "_asyncio": "asyncio", "_json": "json", "_collections": "collections", "_functools": "functools",
    "_operator": "operator", "_decimal": "decimal", "_pydecimal": "decimal", "_sha256": "hashlib",
    "_hashlib": "hashlib", "_bisect": "bisect", "_heapq": "heapq", "_struct": "struct",
    "_sre": "re", "_string": "string", "_statistics": "statistics",
}

_MISSING: Any = object()


def _prefix_match(name: str, prefixes: Sequence[str] | frozenset[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def is_trusted_module(module: str, trusted_modules: Sequence[str] = ()) -> bool:
    """Whether calls into ``module`` are trusted without a pure marker."""
    module = _canonical(module)
    if _prefix_match(module, ("continuum_nb",)):
        return True
    if module in STDLIB_TRUSTED or _prefix_match(module, tuple(STDLIB_TRUSTED)):
        return True
    if _prefix_match(module, tuple(trusted_modules)):
        return True
    # A module (or one of its parent packages) with ``__continuum_pure__ = True``.
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None and getattr(mod, "__continuum_pure__", False) is True:
            return True
    return False


def _canonical(dotted: str) -> str:
    head, _, rest = dotted.partition(".")
    alias = _MODULE_ALIASES.get(head)
    if alias is None:
        return dotted
    return f"{alias}.{rest}" if rest else alias


def _nondeterministic(dotted: str) -> str | None:
    """The replacement for a never-deterministic call, or None if the call is not one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        replacement = _RULES.get(".".join(parts[:i]))
        if replacement is not None:
            return replacement or None
    return None


def _object_dotted(obj: Any) -> str | None:
    """The dotted name a runtime object is reached by (for objects from ``fn.__globals__``)."""
    if isinstance(obj, types.ModuleType):
        return _canonical(obj.__name__)
    if getattr(builtins, getattr(obj, "__name__", ""), _MISSING) is obj:
        return f"builtins.{obj.__name__}"
    if inspect.ismethod(obj) or (inspect.isbuiltin(obj) and not isinstance(getattr(obj, "__self__", None), types.ModuleType) and getattr(obj, "__self__", None) is not None):
        owner = obj.__self__
        base = _object_dotted(owner if isinstance(owner, type) else type(owner))
        return f"{base}.{obj.__name__}" if base else None
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return _canonical(f"{module}.{qualname}")
    cls = type(obj)  # an instance: its methods belong to its class's module
    return _canonical(f"{cls.__module__}.{cls.__qualname__}")


def _getattr(obj: Any, name: str) -> Any:
    if obj is _MISSING:
        return _MISSING
    try:
        if isinstance(obj, types.ModuleType):
            return getattr(obj, name)
        # Never run properties or __getattr__ of arbitrary objects during a scan.
        value = inspect.getattr_static(obj, name)
        return value.__func__ if isinstance(value, staticmethod | classmethod) else value
    except Exception:
        return _MISSING


def _lookup_module_object(dotted: str) -> Any:
    """The object behind an imported dotted name, from already-imported modules only."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj: Any = mod
            for attr in parts[i:]:
                obj = _getattr(obj, attr)
            return obj
    return _MISSING


def _module_of(dotted: str, obj: Any) -> str:
    """The module a call goes to: the longest imported prefix of its dotted name."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if isinstance(sys.modules.get(name), types.ModuleType) and i < len(parts):
            return name
    mod = getattr(obj, "__module__", None) if obj is not _MISSING else None
    if isinstance(mod, str):
        return _canonical(mod)
    # Not imported in this process (a cell's import that has not run): its import path.
    return parts[0] if len(parts) == 1 else ".".join(parts[:-1])


def _imports(nodes: Sequence[ast.stmt] | ast.AST) -> dict[str, str]:
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


def _module_level_imports(tree: ast.Module) -> dict[str, str]:
    """Imports at the top level of a module/cell (including under if/try), not inside defs."""
    found: dict[str, str] = {}

    def visit(stmts: Sequence[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                found.update(_imports(stmt))
            elif isinstance(stmt, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(stmt, field, []))
                for handler in getattr(stmt, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def _local_names(fn_node: ast.AST) -> set[str]:
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


def _find_function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = None
    for node in ast.walk(tree):  # the last definition wins, as at run time
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            if found is None or node.lineno >= found.lineno:
                found = node
    return found


def _marker(obj: Any, name: str) -> Any:
    """An attribute read that never runs user code (no properties, no __getattr__)."""
    if obj is _MISSING:
        return _MISSING
    try:
        return inspect.getattr_static(obj, name, _MISSING)
    except Exception:
        return _MISSING


def _is_activity(obj: Any) -> bool:
    return _marker(obj, "__continuum_activity__") is not _MISSING


def _is_pure(obj: Any) -> bool:
    return _marker(obj, "__continuum_pure__") is True
