"""Workflow registries: which workflow versions an engine can run.

Definitions made without ``instance=`` go to the process-wide registry that every instance
sees; ``instance=`` puts them in that instance's own registry. A ``%%workflow`` version is also
stored in ``continuum_workflow_versions`` so an engine that never saw the notebook can load it.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import WorkflowNotFound
from .workflow import WorkflowDef, source_hash

if TYPE_CHECKING:
    from ..store.base import Store

__all__ = ["GLOBAL", "Registry", "StoredCodeRefused", "load_stored_source", "loading", "resolve_for_run"]

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


def loading() -> bool:
    """Whether this thread is executing a stored ``%%workflow`` cell (``load_stored_source``):
    the ``@cn.workflow`` it runs must not register or store anything; the loader does."""
    return getattr(_loading, "active", False)


def load_stored_source(name: str, version_hash: str, source: str) -> WorkflowDef:
    """Exec a stored ``%%workflow`` cell in a fresh namespace and return its workflow.

    The cell runs as ``__main__`` so activities it defines get the same names as in the
    notebook. Raises ``WorkflowNotFound`` when the source does not hash to ``version_hash``
    (checked before anything runs: an altered row must never execute) or when the cell no longer
    defines ``name``.
    """
    if source_hash(source) != version_hash:
        raise StoredCodeRefused(
            f"stored source of workflow {name!r} does not hash to {version_hash[:12]}; the row was altered"
        )
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    _loading.active = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = compile(source, f"<stored workflow {name} {version_hash[:12]}>", "exec")
            exec(code, namespace)  # noqa: S102 - stored %%workflow cell source, see docs/operations.md
    except BaseException as exc:  # the cell's own code failed (even sys.exit()): refused, not obeyed
        raise StoredCodeRefused(
            f"stored source of workflow {name!r} ({version_hash[:12]}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        _loading.active = False
    candidates = []
    contracts: dict[Any, Any] = {}  # fn -> the signals= contract its @cn.workflow declared
    for value in namespace.values():
        fn = value.fn if isinstance(value, WorkflowDef) else value
        if isinstance(value, WorkflowDef):
            contracts[fn] = value.signals
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
    return WorkflowDef(candidates[0], name=name, source=source, origin="cell", signals=contracts.get(candidates[0]))


def resolve_for_run(
    registries: list[Registry], store: Store, name: str, version_hash: str, allow_stored: bool,
    refused: set[tuple[str, str]] | None = None,
) -> tuple[WorkflowDef | None, bool]:
    """The definition to run a run of ``name``@``version_hash`` with, and whether it is exactly
    that version (False: another version, which must pass a replay check first).

    A stored version that cannot be loaded (altered, or its code fails) is added to ``refused``
    and never loaded again by the caller; another version is tried instead. When nothing else
    is left, ``StoredCodeRefused`` is raised for the exact version."""
    refused = set() if refused is None else refused
    for reg in registries:
        wf = reg.get(name, version_hash)
        if wf is not None:
            return wf, True
    failure: StoredCodeRefused | None = None
    if allow_stored and (name, version_hash) not in refused:
        row = store.get_version(name, version_hash)
        if row is not None and row[1] == "cell":
            try:
                wf = load_stored_source(name, version_hash, row[0])
            except StoredCodeRefused as exc:
                refused.add((name, version_hash))
                failure = exc
            else:
                registries[0].register(wf)
                return wf, True
    for reg in registries:
        wf = reg.latest(name)
        if wf is not None:
            return wf, False
    if allow_stored:
        latest = store.latest_version(name)
        if latest is not None and latest[2] == "cell" and (name, latest[0]) not in refused:
            try:
                wf = load_stored_source(name, latest[0], latest[1])
            except StoredCodeRefused as exc:
                refused.add((name, latest[0]))
                failure = failure or exc
            else:
                registries[0].register(wf)
                return wf, False
    if failure is not None or (name, version_hash) in refused:
        raise failure or StoredCodeRefused(
            f"stored source of workflow {name!r} ({version_hash[:12]}) was refused earlier (see the log)"
        )
    return None, False


class StoredCodeRefused(WorkflowNotFound):
    """A stored ``%%workflow`` source that may not run: it does not hash to its version (the row
    was altered) or its code failed to load. Nothing of an altered row is executed."""
