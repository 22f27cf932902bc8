"""``MemoryStore``'s child runs: inserting the children a wake starts, the parent woken by a
child's end (in the child's final commit), cancelling a run with the children that follow it,
and a run's depth. The caller holds the lock (one transaction)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..base import (
    ACTIVE_STATES,
    CHANNEL_DONE,
    CHANNEL_WAKE,
    FINISHED_STATES,
    Notification,
    RunRecord,
    Wake,
)
from .rows import OPEN_TASK_STATES, copy_json
from .tables import MemoryTables

__all__ = ["MemoryChildren"]

_CANCELLABLE = (*ACTIVE_STATES, "drifted")


class MemoryChildren(MemoryTables):
    def run_depth(self, run_id: UUID) -> int:
        with self._lock:
            depth, seen = 0, {run_id}
            run = self._runs.get(run_id)
            while run is not None and run.parent_run_id is not None and run.parent_run_id not in seen:
                depth += 1
                seen.add(run.parent_run_id)
                run = self._runs.get(run.parent_run_id)
            return depth

    def _insert_children(self, wake: Wake, notes: list[Notification]) -> None:
        for c in wake.new_children:
            if c.id in self._runs:
                continue  # started by an earlier commit of this start: never a second child
            self._runs[c.id] = RunRecord(
                id=c.id, workflow=c.workflow, version_hash=c.version_hash, state="suspended",
                input=copy_json(c.input), started_at=c.started_at, next_wakeup_at=wake.now,
                retention=c.retention, parent_run_id=wake.run_id, correlation_id=c.correlation_id,
            )
            self._events[c.id] = []
            self._on_parent_cancel[c.id] = c.on_parent_cancel
            notes.append(Notification(CHANNEL_WAKE, str(c.id)))

    def _child_ended(self, run_id: UUID, now: datetime) -> bool:
        """Whether the child ``run_id`` has ended (its parent can journal its outcome)."""
        run = self._runs.get(run_id)
        return run is not None and run.state in FINISHED_STATES

    def _wake_parent(self, run: RunRecord, now: datetime, notes: list[Notification]) -> None:
        """A child ended: its parent, if still active, is runnable now."""
        parent = self._runs.get(run.parent_run_id) if run.parent_run_id is not None else None
        if parent is None or parent.state not in ACTIVE_STATES:
            return
        if parent.next_wakeup_at is None or parent.next_wakeup_at > now:
            parent.next_wakeup_at = now
        notes.append(Notification(CHANNEL_WAKE, str(parent.id)))

    def _cancel_one(self, run: RunRecord, now: datetime) -> None:
        run.state = "cancelled"
        run.completed_at = now
        if run.retention is not None:
            run.retention_until = now + run.retention
        run.next_wakeup_at = None
        run.lease_owner = run.lease_token = run.lease_expires_at = None
        for task in self._tasks.values():
            if task.run_id == run.id and task.state in OPEN_TASK_STATES:
                task.state = "cancelled"
                task.lease_owner = task.lease_token = task.lease_expires_at = None
        for timer in self._timers.values():
            if timer.run_id == run.id:
                timer.fired = True

    def _cancel_tree(self, roots: list[UUID], now: datetime, quiet: UUID | None, notes: list[Notification]) -> None:
        """Cancel the active ``roots`` and, below each cancelled run, its children started with
        ``on_parent_cancel='cancel'``; wake the parents of the roots (but ``quiet``)."""
        todo = list(roots)
        seen: set[UUID] = set()
        while todo:
            rid = todo.pop()
            if rid in seen:
                continue
            seen.add(rid)
            run = self._runs.get(rid)
            if run is None:
                continue
            if run.state in _CANCELLABLE:
                self._cancel_one(run, now)
                notes.append(Notification(CHANNEL_DONE, str(rid)))
            todo.extend(c.id for c in self._runs.values()
                        if c.parent_run_id == rid and c.state in _CANCELLABLE
                        and self._on_parent_cancel.get(c.id) == "cancel")
        for rid in roots:
            run = self._runs.get(rid)
            if run is not None and run.parent_run_id is not None and run.parent_run_id != quiet \
                    and run.parent_run_id not in seen:
                self._wake_parent(run, now, notes)
