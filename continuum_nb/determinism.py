"""The determinism scan: an AST pass over a workflow's body at definition time.

A workflow re-executes from the top on every wake, so everything it does outside the journal
must give the same answer every time. The scan looks for three things (docs/determinism.md):

- calls that are never deterministic (the clock, randomness, I/O, threads, asyncio) — a
  ``NondeterministicCallWarning`` naming the replacement (``cn.now()``, ``cn.timer(...)``, ...);
- calls into helper modules that are not trusted (stdlib-trusted, marked pure, or listed in
  ``trusted_modules``) — one ``UntrustedCallWarning`` per module, or ``DeterminismError`` with
  ``severity="error"``;
- a bare ``except:`` / ``except BaseException`` that does not re-raise — it can swallow the
  run's cancellation.

Names are resolved the way Python would at run time: imports inside the function, then its
closure, then the imports of the cell/module source, then ``fn.__globals__``, then builtins.
A name the scan cannot resolve (a local variable, an attribute of a call's result) is never
reported: the scan prefers silence to a false alarm. Helper functions defined next to the
workflow (same module, same cell) are scanned as workflow code, since they run inside it.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# The rule tables and name resolution live in _determinism_rules; STDLIB_TRUSTED,
# is_trusted_module and ACTIVITY are re-exported so this module's API is unchanged.
from ._determinism_rules import (
    _MISSING,
    STDLIB_TRUSTED,
    _canonical,
    _find_function,
    _getattr,
    _imports,
    _is_activity,
    _is_pure,
    _local_names,
    _lookup_module_object,
    _module_level_imports,
    _module_of,
    _nondeterministic,
    _object_dotted,
    _prefix_match,
    is_trusted_module,
)
from ._determinism_rules import ACTIVITY as ACTIVITY
from .errors import ConfigurationError, DeterminismError

__all__ = [
    "STDLIB_TRUSTED",
    "BareExceptWarning",
    "DeterminismWarning",
    "Finding",
    "NondeterministicCallWarning",
    "UntrustedCallWarning",
    "check_workflow",
    "is_trusted_module",
]


class DeterminismWarning(UserWarning):
    """Base class of the determinism scan's warnings."""


class NondeterministicCallWarning(DeterminismWarning):
    """A call in workflow code that gives a different answer on replay (clock, randomness, I/O)."""


class UntrustedCallWarning(DeterminismWarning):
    """A call into a helper module that is neither stdlib-trusted, marked pure, nor trusted."""


class BareExceptWarning(DeterminismWarning):
    """``except:`` / ``except BaseException`` in workflow code: it can swallow cancellation."""


@dataclass(frozen=True)
class Finding:
    #: "nondeterministic" | "untrusted" | "bare_except"
    kind: str
    message: str
    #: The file, or for a cell whatever the caller passed (e.g. "<cell workflow order>").
    filename: str
    #: 1-based line in ``filename`` (relative to the cell for a cell).
    lineno: int
    #: The call ("time.time"), the module for "untrusted", "except" for "bare_except".
    target: str
    #: What to use instead, when there is one replacement.
    replacement: str | None


@dataclass
class _Source:
    """One parsed piece of source: a cell, a module, or a function read with inspect."""

    filename: str
    first_line: int
    imports: dict[str, str]
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]


@dataclass
class _Resolved:
    dotted: str
    obj: Any  # _MISSING when unknown
    own: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None = None


class _Scan:
    """The state of one check_workflow call, shared by the workflow and the helpers it calls."""

    def __init__(self, workflow: Callable[..., Any], trusted_modules: Sequence[str]) -> None:
        self.workflow = workflow
        self.module = getattr(workflow, "__module__", None)
        self.trusted = tuple(trusted_modules)
        self.findings: list[Finding] = []
        self.untrusted: dict[str, Finding] = {}
        self.visited: set[tuple[str, int]] = set()

    # -- scanning ---------------------------------------------------------------------------
    def function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        fn: Any,
        src: _Source,
        helper: str | None = None,
    ) -> None:
        key = (src.filename, node.lineno + src.first_line - 1)
        if key in self.visited:
            return
        self.visited.add(key)
        locals_ = _local_names(node)
        local_imports = {k: v for k, v in _imports(node.body).items() if k not in locals_}
        closure: dict[str, Any] = {}
        code = getattr(fn, "__code__", None)
        for name, cell in zip(getattr(code, "co_freevars", ()), getattr(fn, "__closure__", None) or (), strict=False):
            try:
                closure[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        glb: dict[str, Any] = getattr(fn, "__globals__", None) or {}

        def resolve_name(name: str) -> _Resolved | None:
            if name in locals_:
                return None
            if name in local_imports:
                dotted = local_imports[name]
                return _Resolved(_canonical(dotted), _lookup_module_object(dotted))
            if name in closure:
                obj = closure[name]
                found = _object_dotted(obj)
                return _Resolved(found, obj) if found else None
            if name in src.imports:
                dotted = src.imports[name]
                obj = _lookup_module_object(dotted)
                if obj is _MISSING:
                    obj = glb.get(name, _MISSING)
                return _Resolved(_canonical(dotted), obj)
            if name in src.defs:
                return _Resolved(f"<own>.{name}", glb.get(name, _MISSING), own=src.defs[name])
            if name in glb:
                obj = glb[name]
                found = _object_dotted(obj)
                return _Resolved(found, obj) if found else None
            if hasattr(builtins, name):
                return _Resolved(f"builtins.{name}", getattr(builtins, name))
            return None

        def resolve(expr: ast.expr) -> _Resolved | None:
            if isinstance(expr, ast.Name):
                return resolve_name(expr.id)
            if isinstance(expr, ast.Attribute):
                base = resolve(expr.value)
                if base is None or base.own is not None:
                    return None
                dotted = f"{base.dotted}.{expr.attr}"
                obj = _getattr(base.obj, expr.attr)
                if obj is _MISSING and base.obj is _MISSING:
                    obj = _lookup_module_object(dotted)
                if isinstance(obj, types.ModuleType):
                    dotted = _canonical(obj.__name__)
                return _Resolved(dotted, obj)
            return None

        exempt = self._side_effect_arguments(node, resolve)
        for child in _walk(node.body, exempt):
            if isinstance(child, ast.Call):
                self._call(child, resolve, src, helper)
            elif isinstance(child, ast.ExceptHandler):
                self._except(child, resolve, src, helper)

    def _side_effect_arguments(self, node: ast.AST, resolve: Callable[[ast.expr], _Resolved | None]) -> set[int]:
        """Lambdas / nested defs passed to cn.side_effect run once and are journaled: not scanned."""
        exempt: set[int] = set()
        exempt_names: set[str] = set()
        for child in ast.walk(node):
            if isinstance(child, ast.Call):
                r = resolve(child.func)
                if r is not None and r.dotted.startswith("continuum_nb") and r.dotted.endswith("side_effect"):
                    for arg in [*child.args, *(k.value for k in child.keywords)]:
                        if isinstance(arg, ast.Name):
                            exempt_names.add(arg.id)
                        else:
                            exempt.add(id(arg))
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and child.name in exempt_names:
                exempt.add(id(child))
        return exempt

    def _add(self, kind: str, message: str, node: ast.AST, src: _Source, target: str, replacement: str | None, helper: str | None) -> Finding:
        if helper:
            message = f"{message} (in {helper}(), called from the workflow)"
        finding = Finding(kind, message, src.filename, getattr(node, "lineno", 1) + src.first_line - 1, target, replacement)
        self.findings.append(finding)
        return finding

    def _call(self, call: ast.Call, resolve: Callable[[ast.expr], _Resolved | None], src: _Source, helper: str | None) -> None:
        r = resolve(call.func)
        if r is None:
            return
        if _prefix_match(r.dotted, ("continuum_nb",)) or _is_activity(r.obj):
            return
        if r.own is None:
            replacement = _nondeterministic(r.dotted)
            if replacement is not None:
                shown = r.dotted.removeprefix("builtins.")
                advice = replacement if replacement.startswith("move ") else f"use {replacement} instead"
                self._add(
                    "nondeterministic",
                    f"{shown}() is never deterministic in workflow code (it runs again on every replay); {advice}",
                    call, src, shown, replacement, helper,
                )
                return
        if _is_pure(r.obj):
            return
        if self._follow(r, src):
            return
        module = _module_of(r.dotted, r.obj)
        obj_module = getattr(r.obj, "__module__", None) if r.obj is not _MISSING else None
        if is_trusted_module(module, self.trusted) or (
            isinstance(obj_module, str) and is_trusted_module(obj_module, self.trusted)
        ):
            return
        if self.module is not None and self.module in (module, obj_module):
            return  # the workflow's own module: classes and callables it defines
        if module not in self.untrusted:
            shown = r.dotted.removeprefix("builtins.")
            self.untrusted[module] = self._add(
                "untrusted",
                f"calls {shown}() in module '{module}', which is not trusted to be deterministic: "
                "mark it pure (@cn.pure on the function, or __continuum_pure__ = True in the module), "
                "add it to trusted_modules, or move the call into an @cn.activity",
                call, src, module, None, helper,
            )

    def _follow(self, r: _Resolved, src: _Source) -> bool:
        """Scan a helper defined next to the workflow (same cell or module). True if it is one."""
        if r.own is not None:
            if isinstance(r.own, ast.FunctionDef | ast.AsyncFunctionDef) and not _decorated_activity(r.own):
                self.function(r.own, r.obj, src, helper=r.own.name)
            return True  # a class or function of the cell itself: its own code
        obj = r.obj
        if not (inspect.isfunction(obj) and obj.__module__ == self.module and self.module is not None):
            return False
        located = _from_inspect(obj, None)
        if located is not None:
            node, helper_src = located
            self.function(node, obj, helper_src, helper=obj.__name__)
        return True

    def _except(self, handler: ast.ExceptHandler, resolve: Callable[[ast.expr], _Resolved | None], src: _Source, helper: str | None) -> None:
        if handler.type is None:
            shown = "except:"
        else:
            types_ = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if not any((r := resolve(t)) is not None and r.dotted == "builtins.BaseException" for t in types_):
                return
            shown = "except BaseException"
        if any(isinstance(n, ast.Raise) for n in _walk(handler.body, set())):
            return  # it re-raises: cancellation still propagates
        self._add(
            "bare_except",
            f"`{shown}` can swallow the run's cancellation; catch Exception instead, or re-raise",
            handler, src, shown, "except Exception", helper,
        )


def _decorated_activity(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``@cn.activity`` / ``@activity(...)`` on a def whose object the scan cannot see."""
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute | ast.Name) and ast.unparse(target).split(".")[-1] == "activity":
            return True
    return False


def _walk(stmts: Sequence[ast.AST], exempt: set[int]) -> Iterator[ast.AST]:
    """ast.walk over ``stmts``, skipping exempt subtrees."""
    stack = list(reversed(stmts))
    while stack:
        node = stack.pop()
        if id(node) in exempt:
            continue
        yield node
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _parse_source(text: str, filename: str, first_line: int) -> tuple[ast.Module, _Source] | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    defs = {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    return tree, _Source(filename, first_line, _module_level_imports(tree), defs)


def _from_inspect(fn: Any, filename: str | None) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, _Source] | None:
    """The function's node, with its module's imports, read with inspect."""
    try:
        lines, start = inspect.getsourcelines(fn)
        fname = filename or inspect.getsourcefile(fn) or fn.__code__.co_filename
    except (OSError, TypeError, AttributeError):
        return None
    parsed = _parse_source(textwrap.dedent("".join(lines)), fname, max(start, 1))
    if parsed is None:
        return None
    tree, src = parsed
    node = _find_function(tree, fn.__name__)
    if node is None:
        return None
    # Names the workflow uses come from its module's top-level imports.
    src.defs = {}
    module = inspect.getmodule(fn)
    if module is not None:
        try:
            module_src = _parse_source(inspect.getsource(module), fname, 1)
        except (OSError, TypeError):
            module_src = None
        if module_src is not None:
            src.imports = module_src[1].imports
    return node, src


def check_workflow(
    fn: Callable[..., Any],
    *,
    source: str | None = None,
    filename: str | None = None,
    trusted_modules: Sequence[str] = (),
    severity: str = "warn",
    first_line: int = 1,
) -> list[Finding]:
    """Scan a workflow's body; warn about (and return) every finding.

    ``source`` is the text the function was defined in (a ``%%workflow`` cell); the function is
    found in it by name, and ``filename``/``first_line`` say where that text lives (line numbers
    of findings are ``first_line``-based; for a cell, pass 1 to get cell-relative lines). When
    ``source`` is None the source is read with ``inspect``, which knows the file and line.

    With ``severity="error"``, calls into untrusted modules raise ``DeterminismError`` (after
    the other findings have been warned about) instead of warning.
    """
    if severity not in ("warn", "error"):
        raise ConfigurationError(f"severity must be 'warn' or 'error', not {severity!r}")
    target = inspect.unwrap(fn) if callable(fn) else fn
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"check_workflow() needs a function, not {type(fn).__name__}")
    located = None
    if source is not None:
        parsed = _parse_source(source, filename or "<workflow source>", first_line)
        if parsed is not None:
            node = _find_function(parsed[0], name)
            if node is not None:
                located = (node, parsed[1])
    if located is None:
        located = _from_inspect(target, filename)
    if located is None:
        return []  # no source to scan (e.g. defined with exec and no text given)
    node, src = located
    scan = _Scan(target, trusted_modules)
    scan.function(node, target, src)
    findings = sorted(scan.findings, key=lambda f: (f.filename != src.filename, f.filename, f.lineno))
    category: dict[str, type[Warning]] = {
        "nondeterministic": NondeterministicCallWarning,
        "untrusted": UntrustedCallWarning,
        "bare_except": BareExceptWarning,
    }
    for finding in findings:
        if severity == "error" and finding.kind == "untrusted":
            continue
        warnings.warn_explicit(finding.message, category[finding.kind], finding.filename, finding.lineno)
    untrusted = [f for f in findings if f.kind == "untrusted"]
    if severity == "error" and untrusted:
        listed = ", ".join(f"{f.target} ({f.filename}:{f.lineno})" for f in untrusted)
        raise DeterminismError(
            f"workflow {name!r} calls untrusted helper modules: {listed}; mark them pure "
            "(@cn.pure on the function, or __continuum_pure__ = True in the module), list them in "
            "trusted_modules, or move the calls into an @cn.activity"
        )
    return findings
