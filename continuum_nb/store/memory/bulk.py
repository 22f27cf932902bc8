"""Bulk start in memory (``create_runs``), with ``PgBulk``'s semantics: all or nothing, ids that
exist already skipped (refused when they name a run of another workflow), one notification."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from ..base import CHANNEL_WAKE, NewRun, Notification, RunRecord
from .rows import copy_json
from .tables import MemoryTables

__all__ = ["MemoryBulk"]


class MemoryBulk(MemoryTables):
    """``create_runs`` of ``MemoryStore``."""

    def create_runs(self, runs: Sequence[NewRun]) -> list[UUID]:
        for run in runs:
            if run.idempotency_key is not None:
                raise ValueError("create_runs: runs with an idempotency_key are started one by one "
                                 "(create_keyed_run)")
        with self._lock:
            created: list[UUID] = []
            seen: set[UUID] = set()
            for run in runs:  # validate everything first: a refused call writes nothing
                existing = self._runs.get(run.id)
                if existing is not None and existing.workflow != run.workflow:
                    raise ValueError(
                        f"run {run.id} already exists as a run of workflow {existing.workflow!r}, not "
                        f"{run.workflow!r}; pass new run_ids (nothing was started)")
                if existing is None and run.id not in seen:
                    created.append(run.id)
                    seen.add(run.id)
            for run in runs:
                if run.id not in seen or run.id in self._runs:
                    continue
                self._runs[run.id] = RunRecord(
                    id=run.id, workflow=run.workflow, version_hash=run.version_hash, state="suspended",
                    input=copy_json(run.input), trace_context=run.trace_context, started_at=run.started_at,
                    retention_until=run.retention_until, next_wakeup_at=run.started_at,
                    attributes=copy_json(run.attributes) or None, retention=run.retention,
                )
                self._events[run.id] = []
            if created:
                self._notify([Notification(CHANNEL_WAKE, "")])
            return created
