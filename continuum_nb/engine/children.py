"""What a parent's wake asks of the engine about child workflows: the version, family and
retention a child starts with (or why it is refused: an unknown workflow, a depth past
``max_child_depth``), and a child's end once the parent is woken by it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from ..definitions.registry import Registry
from ..replay.outcomes import Batch, ChildOutcome, ChildTarget
from ..store.base import FINISHED_STATES, NewChild, RunRecord, Store

__all__ = ["ChildRuns", "new_children"]


class ChildRuns:
    def __init__(self, store: Store, registries: Callable[[], list[Registry]] | None = None,
                 allow_stored: bool = True, max_depth: int = 10, retention: timedelta | None = None) -> None:
        self._store = store
        self._registries = registries or (lambda: [])
        self._allow_stored = allow_stored
        self.max_depth = max_depth
        self._retention = retention

    def target(self, parent: RunRecord, workflow: str) -> ChildTarget:
        version, retention = self._version(workflow)
        if version is None:
            return ChildTarget(refused=(
                f"workflow {workflow!r} is not defined here: define it (@cn.workflow or %%workflow) in the "
                "process that runs the parent, or fix the name"))
        depth = self._store.run_depth(parent.id) + 1
        if depth > self.max_depth:
            return ChildTarget(refused=(
                f"a child of {parent.workflow!r} would be {depth} levels deep, past max_child_depth="
                f"{self.max_depth}: raise it (cn.configure(max_child_depth=...)) or start the run with cn.start"))
        family = parent.correlation_id or parent.id
        return ChildTarget(version, str(family), None if retention is None else retention.total_seconds())

    def _version(self, workflow: str) -> tuple[str | None, timedelta | None]:
        for reg in self._registries():
            wf = reg.latest(workflow)
            if wf is not None:
                return wf.version_hash, wf.retention if wf.retention is not None else self._retention
        if self._allow_stored:
            latest = self._store.latest_version(workflow)
            if latest is not None and latest[2] == "cell":
                return latest[0], self._retention
        return None, None

    def outcome(self, child_run_id: str) -> ChildOutcome | None:
        run = self._store.get_run(UUID(child_run_id))
        if run is None or run.state not in FINISHED_STATES:
            return None
        return ChildOutcome(run.state, run.result, run.error)


def new_children(batch: Batch, now: datetime) -> list[NewChild]:
    """The child runs a wake's commit inserts."""
    return [
        NewChild(c.run_id, c.workflow, c.version_hash, c.input, now, c.correlation_id, c.on_parent_cancel,
                 None if c.retention_s is None else timedelta(seconds=c.retention_s))
        for c in batch.children
    ]
