"""``MemoryStore``'s claims and leases: claiming runs and tasks, renewing, releasing and
recovering leases (over the same tables and lock as every part of the store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from uuid import UUID

from ..base import ACTIVE_STATES, CHANNEL_TASKS, Notification, RunRecord, TaskRecord
from .rows import db_now
from .tables import MemoryTables

__all__ = ["MemoryLeases"]


class MemoryLeases(MemoryTables):
    """Claiming runs and tasks, renewing, releasing and recovering leases."""

    @staticmethod
    def _live(owner: str | None, expires: datetime | None, now: datetime) -> bool:
        return owner is not None and expires is not None and expires > now

    def _grant(self, row: RunRecord | TaskRecord, owner: str, now_db: datetime, lease_ttl: float) -> None:
        """A new lease on a run or task row: a fresh token from the one sequence."""
        row.lease_owner = owner
        row.lease_token = next(self._tokens)
        row.lease_expires_at = now_db + timedelta(seconds=lease_ttl)

    # --- claiming and leases ------------------------------------------------------------------
    def claim_runs(
        self, owner: str, workflows: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[RunRecord]:
        wanted = set(workflows)
        with self._lock:
            now_db = db_now()
            due = [
                r
                for r in self._runs.values()
                if r.workflow in wanted
                and r.state in ACTIVE_STATES
                and (
                    (r.next_wakeup_at is not None and r.next_wakeup_at <= now)
                    or (r.next_wakeup_at is None and r.state == "running")
                )
                and not self._live(r.lease_owner, r.lease_expires_at, now_db)
            ]
            epoch = datetime.min.replace(tzinfo=timezone.utc)
            due.sort(key=lambda r: r.next_wakeup_at or epoch)  # NULLS FIRST
            out = []
            for run in due[: max(limit, 0)]:
                self._grant(run, owner, now_db, lease_ttl)
                out.append(self._run_copy(run))
            return out

    def claim_run(self, run_id: UUID, owner: str, lease_ttl: float) -> RunRecord | None:
        with self._lock:
            now_db = db_now()
            run = self._runs.get(run_id)
            if run is None or run.state not in (*ACTIVE_STATES, "drifted"):
                return None
            if run.lease_owner != owner and self._live(run.lease_owner, run.lease_expires_at, now_db):
                return None
            self._grant(run, owner, now_db, lease_ttl)
            return self._run_copy(run)

    def renew_leases(
        self, owner: str, runs: dict[UUID, int], tasks: dict[UUID, int], lease_ttl: float
    ) -> tuple[set[UUID], set[UUID]]:
        with self._lock:
            expires = db_now() + timedelta(seconds=lease_ttl)
            lost_runs: set[UUID] = set()
            lost_tasks: set[UUID] = set()
            for run_id, token in runs.items():
                run = self._runs.get(run_id)
                if run is None or run.lease_token != token or run.lease_owner != owner:
                    lost_runs.add(run_id)
                else:
                    run.lease_expires_at = expires
            for task_id, token in tasks.items():
                task = self._tasks.get(task_id)
                if task is None or task.state != "leased" or task.lease_token != token:
                    lost_tasks.add(task_id)
                else:
                    task.lease_expires_at = expires
            return lost_runs, lost_tasks

    def release_run(self, run_id: UUID, lease_token: int) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.lease_token == lease_token:
                run.lease_owner = run.lease_token = run.lease_expires_at = None

    def overdue_runs(self, run_ids: Sequence[UUID], cutoff: datetime) -> list[UUID]:
        with self._lock:
            return [
                rid for rid in run_ids
                if (r := self._runs.get(rid)) is not None and r.state == "suspended"
                and r.next_wakeup_at is not None and r.next_wakeup_at <= cutoff
            ]

    def next_wakeup(self, workflows: Sequence[str]) -> datetime | None:
        wanted = set(workflows)
        with self._lock:
            times = [
                r.next_wakeup_at
                for r in self._runs.values()
                if r.workflow in wanted and r.state == "suspended" and r.lease_owner is None
                and r.next_wakeup_at is not None
            ]
            return min(times) if times else None

    def recover(self) -> dict[str, int]:
        with self._lock:
            now_db = db_now()
            runs = 0
            for run in self._runs.values():
                if run.lease_owner is not None and not self._live(run.lease_owner, run.lease_expires_at, now_db):
                    run.lease_owner = run.lease_token = run.lease_expires_at = None
                    runs += 1
            notes = []
            tasks = 0
            for task in self._tasks.values():
                if task.state == "leased" and not self._live(task.lease_owner, task.lease_expires_at, now_db):
                    task.state = "available"
                    task.lease_owner = task.lease_token = task.lease_expires_at = None
                    notes.append(Notification(CHANNEL_TASKS, task.activity))
                    tasks += 1
            self._notify(notes)
            return {"runs": runs, "tasks": tasks}

    def claim_tasks(
        self, owner: str, activities: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[TaskRecord]:
        wanted = set(activities)
        with self._lock:
            now_db = db_now()
            ready = [
                t
                for t in self._tasks.values()
                if t.state == "available" and t.activity in wanted
                and (t.available_at is None or t.available_at <= now)
            ]
            epoch = datetime.min.replace(tzinfo=timezone.utc)
            ready.sort(key=lambda t: t.available_at or epoch)
            out = []
            for task in ready[: max(limit, 0)]:
                task.state = "leased"
                self._grant(task, owner, now_db, lease_ttl)
                out.append(self._task_copy(task))
            return out
