"""Workflow registries: which workflow versions an engine can run.

Definitions made without ``instance=`` go to the process-wide registry that every instance
sees; ``instance=`` puts them in that instance's own registry. A ``%%workflow`` version is also
stored in ``continuum_workflow_versions`` so an engine that never saw the notebook can load it.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

from ..workflow import WorkflowDef

if TYPE_CHECKING:
    from ..store.base import Store
    from .instance import Instance

__all__ = ["GLOBAL", "Registry", "define", "load_stored_source"]

_loading = threading.local()


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, dict[str, WorkflowDef]] = {}
        self._latest: dict[str, WorkflowDef] = {}

    def register(self, wf: WorkflowDef) -> WorkflowDef:
        with self._lock:
            self._versions.setdefault(wf.name, {})[wf.version_hash] = wf
            self._latest[wf.name] = wf
        return wf

    def get(self, name: str, version_hash: str) -> WorkflowDef | None:
        return self._versions.get(name, {}).get(version_hash)

    def latest(self, name: str) -> WorkflowDef | None:
        return self._latest.get(name)

    def names(self) -> set[str]:
        return set(self._latest)

    def all(self) -> list[WorkflowDef]:
        with self._lock:
            return [wf for versions in self._versions.values() for wf in versions.values()]


GLOBAL = Registry()


def _scan(wf: WorkflowDef, inst: Instance | None) -> None:
    try:
        from .. import determinism
    except ImportError:  # pragma: no cover - the scan module ships with the package
        return
    from .instance import default_config

    cfg = inst.config if inst is not None else default_config()
    filename = f"<cell workflow {wf.name}>" if wf.origin == "cell" else None
    wf.findings = list(
        determinism.check_workflow(
            wf.fn,
            source=wf.source if wf.origin == "cell" else None,
            filename=filename,
            trusted_modules=cfg.trusted_modules,
            severity=cfg.untrusted_call_severity,
        )
    )


def define(wf: WorkflowDef, instance: Any = None) -> WorkflowDef:
    """Register a definition (called by ``@cn.workflow``)."""
    if getattr(_loading, "active", False):
        return wf  # an engine is loading stored code: it registers the result itself
    from .instance import resolve

    inst = resolve(instance) if instance is not None else None
    _scan(wf, inst)
    if inst is None:
        GLOBAL.register(wf)
    else:
        inst.registry.register(wf)
    if wf.origin == "cell":
        # Stored at once: a worker may be asked to run it before this process starts a run.
        target = inst if inst is not None else resolve(None)
        target.save_version(wf)
    return wf


def load_stored_source(name: str, version_hash: str, source: str) -> WorkflowDef:
    """Exec a stored ``%%workflow`` cell in a fresh namespace and return its workflow.

    The cell runs as ``__main__`` so activities it defines get the same names as in the
    notebook. Raises ``WorkflowNotFound`` when the cell no longer defines ``name``.
    """
    import inspect

    from ..errors import WorkflowNotFound

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    _loading.active = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, f"<stored workflow {name} {version_hash[:12]}>", "exec")
            exec(code, namespace)  # noqa: S102 - stored %%workflow cell source, see docs/operations.md
    finally:
        _loading.active = False
    candidates = []
    for value in namespace.values():
        fn = value.fn if isinstance(value, WorkflowDef) else value
        if inspect.iscoroutinefunction(fn) and (
            getattr(value, "name", None) == name or getattr(fn, "__name__", None) == name
        ):
            candidates.append(fn)
    if not candidates:
        asyncs = [v for v in namespace.values() if inspect.iscoroutinefunction(getattr(v, "fn", v))]
        if len(asyncs) == 1:
            candidates = [getattr(asyncs[0], "fn", asyncs[0])]
    if not candidates:
        raise WorkflowNotFound(f"stored source of workflow {name!r} ({version_hash[:12]}) defines no async def {name}")
    wf = WorkflowDef(candidates[0], name=name, source=source, origin="cell")
    if wf.version_hash != version_hash:
        raise WorkflowNotFound(
            f"stored source of workflow {name!r} does not hash to {version_hash[:12]}; the row was altered"
        )
    return wf


def resolve_for_run(
    registries: list[Registry], store: Store, name: str, version_hash: str, allow_stored: bool
) -> tuple[WorkflowDef | None, bool]:
    """The definition to run a run of ``name``@``version_hash`` with, and whether it is exactly
    that version (False: another version, which must pass a replay check first)."""
    for reg in registries:
        wf = reg.get(name, version_hash)
        if wf is not None:
            return wf, True
    if allow_stored:
        row = store.get_version(name, version_hash)
        if row is not None and row[1] == "cell":
            wf = load_stored_source(name, version_hash, row[0])
            registries[0].register(wf)
            return wf, True
    for reg in registries:
        wf = reg.latest(name)
        if wf is not None:
            return wf, False
    if allow_stored:
        latest = store.latest_version(name)
        if latest is not None and latest[2] == "cell":
            wf = load_stored_source(name, latest[0], latest[1])
            registries[0].register(wf)
            return wf, False
    return None, False
