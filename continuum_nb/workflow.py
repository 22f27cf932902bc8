"""Defining workflows and activities: ``@cn.workflow``, ``@cn.activity``, ``@cn.pure``, and the
awaitables a workflow uses (``cn.signal``, ``cn.timer``, ``cn.gather``).

The definitions themselves live in ``continuum_nb.definitions`` (below the engine); this module
is where a definition meets an instance: the determinism scan with the instance's settings, the
registry it goes to, and the stored version of a ``%%workflow`` cell.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from .definitions.activity import ActivityDef, Retry, define_activity
from .definitions.children import ChildHandle, child, start_child
from .definitions.commands import gather, signal, timer
from .definitions.composing import Saga, deprecate_patch, first, log, patched, saga
from .definitions.continuation import continue_as_new
from .definitions.registry import GLOBAL, loading
from .definitions.workflow import WorkflowDef
from .engine.instance import Instance, default_config, resolve

__all__ = [
    "ActivityDef",
    "Retry",
    "Saga",
    "WorkflowDef",
    "activity",
    "continue_as_new",
    "deprecate_patch",
    "first",
    "ChildHandle",
    "child",
    "start_child",
    "gather",
    "log",
    "patched",
    "pure",
    "saga",
    "signal",
    "timer",
    "workflow",
]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def activity(fn: F) -> ActivityDef: ...
@overload
def activity(
    fn: None = None,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: timedelta | float | None = None,
    idempotency_key: Callable[..., str] | None = None,
) -> Callable[[F], ActivityDef]: ...


def activity(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: timedelta | float | None = None,
    idempotency_key: Callable[..., str] | None = None,
) -> Any:
    """Define an activity (sync or async function): ``@cn.activity`` or
    ``@cn.activity(retry=cn.Retry(...), timeout=cn.seconds(30), idempotency_key=fn)``."""

    def wrap(f: Callable[..., Any]) -> ActivityDef:
        return define_activity(
            ActivityDef(f, name=name, retry=retry, timeout=timeout, idempotency_key=idempotency_key)
        )

    return wrap(fn) if fn is not None else wrap


def pure(fn: F) -> F:
    """Mark a helper function deterministic, so the determinism scan trusts calls to it."""
    fn.__continuum_pure__ = True  # type: ignore[attr-defined]
    return fn


def workflow(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retention: timedelta | None = None,
    source: str | None = None,
    instance: Any = None,
    signals: dict[str, Any] | None = None,
) -> Any:
    """Define a workflow: ``@cn.workflow`` or ``@cn.workflow(name=..., retention=cn.days(30))``.

    ``signals={"approve": {"by": str, "ok": bool}, "poke": None}`` is its signal contract: a
    signal of another name or payload shape is refused when sent, and ``await cn.signal(name)``
    of an undeclared literal name is refused here, when the workflow is defined.

    ``source`` (used by ``%%workflow``) is the whole cell text: the version is its hash, and it is
    stored so any engine can load it. ``instance`` registers it in that instance only (default:
    every instance of this process)."""

    def wrap(f: Callable[..., Any]) -> WorkflowDef:
        contract = signals
        if isinstance(f, WorkflowDef):  # (a %%workflow cell whose def is decorated: keep its contract)
            contract = f.signals if contract is None else contract
            f = f.fn
        return define(WorkflowDef(f, name=name, retention=retention, source=source, signals=contract),
                      instance=instance)

    return wrap(fn) if fn is not None else wrap


def define(wf: WorkflowDef, instance: Instance | str | None = None) -> WorkflowDef:
    """Scan and register a definition; a ``%%workflow`` version is stored at once (a worker may
    be asked to run it before this process starts a run)."""
    if loading():
        return wf  # an engine is loading stored code: it registers the result itself
    inst = resolve(instance) if instance is not None else None
    _scan(wf, inst)
    if inst is None:
        GLOBAL.register(wf)
    else:
        inst.registry.register(wf)
    if wf.origin == "cell":
        (inst if inst is not None else resolve(None)).save_version(wf)
    return wf


def _scan(wf: WorkflowDef, inst: Instance | None) -> None:
    from . import determinism  # the AST scan: imported on the first definition only

    cfg = inst.config if inst is not None else default_config()
    wf.findings = list(
        determinism.check_workflow(
            wf.fn,
            source=wf.source if wf.origin == "cell" else None,
            filename=f"<cell workflow {wf.name}>" if wf.origin == "cell" else None,
            trusted_modules=cfg.trusted_modules,
            severity=cfg.untrusted_call_severity,
            signals=wf.signals,
        )
    )
