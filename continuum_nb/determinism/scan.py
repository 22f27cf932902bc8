"""The determinism scan's walk: the calls and exception handlers in a workflow's body (and in the
helpers defined next to it, which run inside it), each checked against the rules.

A name the scan cannot resolve (a local variable, an attribute of a call's result) is never
reported: the scan prefers silence to a false alarm.
"""

from __future__ import annotations

import ast
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .findings import Finding
from .resolve import MISSING, Names, Resolved, is_activity, is_pure, module_of
from .rules import is_trusted_module, prefix_match, replacement_for
from .source import Source, from_inspect

__all__ = ["Scan"]


class Scan:
    """The state of one check_workflow call, shared by the workflow and the helpers it calls."""

    def __init__(self, workflow: Callable[..., Any], trusted_modules: Sequence[str]) -> None:
        self.workflow = workflow
        self.module = getattr(workflow, "__module__", None)
        self.trusted = tuple(trusted_modules)
        self.findings: list[Finding] = []
        self.untrusted: dict[str, Finding] = {}
        self.visited: set[tuple[str, int]] = set()
        #: (name, filename, line) of every ``cn.signal("literal")`` awaited in the workflow
        self.awaited_signals: list[tuple[str, str, int]] = []

    # -- scanning ---------------------------------------------------------------------------
    def function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        fn: Any,
        src: Source,
        helper: str | None = None,
    ) -> None:
        """Scan one function: the workflow itself, or a helper it calls (named by ``helper``)."""
        key = (src.filename, node.lineno + src.first_line - 1)
        if key in self.visited:
            return
        self.visited.add(key)
        resolve = Names(node, fn, src).resolve
        exempt = self._side_effect_arguments(node, resolve)
        for child in _walk(node.body, exempt):
            if isinstance(child, ast.Call):
                self._call(child, resolve, src, helper)
            elif isinstance(child, ast.ExceptHandler):
                self._except(child, resolve, src, helper)

    def _side_effect_arguments(self, node: ast.AST, resolve: Callable[[ast.expr], Resolved | None]) -> set[int]:
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

    def _add(self, kind: str, message: str, node: ast.AST, src: Source, target: str, replacement: str | None, helper: str | None) -> Finding:
        if helper:
            message = f"{message} (in {helper}(), called from the workflow)"
        finding = Finding(kind, message, src.filename, getattr(node, "lineno", 1) + src.first_line - 1, target, replacement)
        self.findings.append(finding)
        return finding

    def _call(self, call: ast.Call, resolve: Callable[[ast.expr], Resolved | None], src: Source, helper: str | None) -> None:
        r = resolve(call.func)
        if r is None:
            return
        if prefix_match(r.dotted, ("continuum_nb",)):
            if r.dotted.endswith(".signal") and call.args and isinstance(call.args[0], ast.Constant) \
                    and isinstance(call.args[0].value, str):
                self.awaited_signals.append((call.args[0].value, src.filename, call.lineno + src.first_line - 1))
            return
        if is_activity(r.obj):
            return
        if r.own is None and _is_output(r):
            shown = r.dotted.removeprefix("builtins.")
            self._add(
                "output",
                f"{shown}() in workflow code runs again on every replay (its output repeats); use cn.log(...), "
                "which is journaled and logged once",
                call, src, shown, "cn.log(...)", helper,
            )
            return
        if r.own is None:
            replacement = replacement_for(r.dotted)
            if replacement is not None:
                shown = r.dotted.removeprefix("builtins.")
                advice = replacement if replacement.startswith("move ") else f"use {replacement} instead"
                self._add(
                    "nondeterministic",
                    f"{shown}() is never deterministic in workflow code (it runs again on every replay); {advice}",
                    call, src, shown, replacement, helper,
                )
                return
        if is_pure(r.obj):
            return
        if self._follow(r, src):
            return
        module = module_of(r.dotted, r.obj)
        obj_module = getattr(r.obj, "__module__", None) if r.obj is not MISSING else None
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

    def _follow(self, r: Resolved, src: Source) -> bool:
        """Scan a helper defined next to the workflow (same cell or module). True if it is one."""
        if r.own is not None:
            if isinstance(r.own, ast.FunctionDef | ast.AsyncFunctionDef) and not _decorated_activity(r.own):
                self.function(r.own, r.obj, src, helper=r.own.name)
            return True  # a class or function of the cell itself: its own code
        obj = r.obj
        if not (inspect.isfunction(obj) and obj.__module__ == self.module and self.module is not None):
            return False
        located = from_inspect(obj, None)
        if located is not None:
            node, helper_src = located
            self.function(node, obj, helper_src, helper=obj.__name__)
        return True

    def _except(self, handler: ast.ExceptHandler, resolve: Callable[[ast.expr], Resolved | None], src: Source, helper: str | None) -> None:
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


def _is_output(r: Resolved) -> bool:
    """``print``, ``logging.*`` and the methods of a ``logging.Logger``: output that a replay
    repeats."""
    if r.dotted == "builtins.print":
        return True
    if r.dotted.rpartition(".")[2] not in _LOG_METHODS:
        return False  # logging.getLogger(...) and the like write nothing
    owner = getattr(r.obj, "__self__", None)
    return prefix_match(r.dotted, ("logging",)) or isinstance(owner, logging.Logger | logging.LoggerAdapter)


_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log"})


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
