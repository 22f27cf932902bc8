"""``MemoryStore``: the store contract in plain Python, for fast engine unit tests.

Same semantics as ``PostgresStore`` (``tests/unit/test_store_contract.py`` runs one suite against
both): one lock stands in for the run-row lock and for transactions (every method validates
first, then applies, so a refused call writes nothing), JSON values are copied in and out as the
database would, and "database now" is the real UTC clock.

The class is assembled from its parts over one set of tables (``tables``): runs' journal and
wakes (``journal``, with continue-as-new chains in ``chains``), claims and leases (``leases``), pruning
(``prune``); here, the rest of the
contract: reading and changing runs, task outcomes, signals, timers, snapshots, workflow versions
and notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..base import (
    ACTIVE_STATES,
    CHANNEL_DONE,
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    FINISHED_STATES,
    NewTimer,
    Notification,
    RunRecord,
    SignalRecord,
    Snapshot,
    TaskOutcome,
    TaskRecord,
)
from ..checks import lease_lost, run_not_active, run_not_found
from ..payloads import dumps
from .bulk import MemoryBulk
from .forks import MemoryForks
from .journal import MemoryJournal
from .leases import MemoryLeases
from .listener import MemoryListener
from .prune import MemoryPrune
from .rows import OPEN_TASK_STATES, SignalRow, VersionRow, contains, copy_json, db_now

__all__ = ["MemoryStore"]


class MemoryStore(MemoryJournal, MemoryLeases, MemoryPrune, MemoryBulk, MemoryForks):
    """See ``store.base.Store`` for each method's contract."""

    # --- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: UUID) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._run_copy(run)

    def list_runs(
        self, *, state: str | None = None, workflow: str | None = None, limit: int = 100,
        before: tuple[datetime, UUID] | None = None, started_after: datetime | None = None,
        started_before: datetime | None = None, attributes: dict[str, Any] | None = None,
    ) -> list[RunRecord]:
        with self._lock:
            rows = [
                r
                for r in self._runs.values()
                if (state is None or r.state == state) and (workflow is None or r.workflow == workflow)
                and (started_after is None or (r.started_at is not None and r.started_at >= started_after))
                and (started_before is None or (r.started_at is not None and r.started_at < started_before))
                and (not attributes or contains(r.attributes, attributes))
            ]
            rows.sort(key=lambda r: (r.started_at, r.id.bytes), reverse=True)
            if before is not None:
                key = (before[0], before[1].bytes)
                rows = [r for r in rows if (r.started_at, r.id.bytes) < key]
            # uuid ordering in PostgreSQL is byte order, the same as UUID.bytes
            return [self._run_copy(r) for r in rows[: max(limit, 0)]]

    def mark_drifted(self, run_id: UUID, lease_token: int, error: dict[str, Any]) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.lease_token != lease_token:
                raise lease_lost(run_id, lease_token)
            run.state = "drifted"
            run.error = copy_json(error)
            run.next_wakeup_at = None
            run.lease_owner = run.lease_token = run.lease_expires_at = None
            self._notify([Notification(CHANNEL_DONE, str(run_id))])

    def cancel_run(self, run_id: UUID, now: datetime) -> RunRecord:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            if run.state in FINISHED_STATES:
                raise run_not_active(run_id, run.state, "cancel")
            notes: list[Notification] = []
            self._cancel_tree([run_id], now, None, notes)  # its children follow (on_parent_cancel)
            self._notify(notes)
            return self._run_copy(run)

    def resume_run(self, run_id: UUID, now: datetime) -> RunRecord:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            if run.state != "drifted":
                raise run_not_active(run_id, run.state, "resume")
            run.state = "running"
            run.error = None
            run.next_wakeup_at = now
            run.lease_owner = run.lease_token = run.lease_expires_at = None
            self._notify([Notification(CHANNEL_WAKE, str(run_id))])
            return self._run_copy(run)

    # --- activity tasks ---------------------------------------------------------------------------
    def task_outcomes(self, run_id: UUID, seqs: Sequence[int]) -> dict[int, TaskRecord]:
        wanted = set(seqs)
        with self._lock:
            return {
                t.seq: self._task_copy(t)
                for t in self._tasks.values()
                if t.run_id == run_id and t.seq in wanted and t.state in ("completed", "failed")
            }

    def open_tasks(self, run_id: UUID) -> list[TaskRecord]:
        with self._lock:
            return [self._task_copy(t) for t in self._tasks.values()
                    if t.run_id == run_id and t.state in OPEN_TASK_STATES]

    def expire_run_lease(self, run_id: UUID) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.lease_owner is not None:
                run.lease_expires_at = db_now() - timedelta(milliseconds=1)

    def _held(self, task: TaskRecord) -> TaskRecord | None:
        row = self._tasks.get(task.id)
        if row is None or row.run_id != task.run_id or row.state != "leased" or row.lease_token != task.lease_token:
            return None
        return row

    def complete_task(self, task: TaskRecord, outcome: TaskOutcome, now: datetime) -> bool:
        if outcome.state not in ("completed", "failed"):
            raise ValueError(f"a task outcome is 'completed' or 'failed', not {outcome.state!r}")
        with self._lock:
            if self._held(task) is None:
                return False
            self._apply_outcome(task.run_id, replace(outcome, seq=outcome.seq or task.seq), db_now())
            run = self._runs.get(task.run_id)
            if run is not None and run.state in ACTIVE_STATES:
                run.next_wakeup_at = now if run.next_wakeup_at is None else min(run.next_wakeup_at, now)
            self._notify([Notification(CHANNEL_WAKE, str(task.run_id))])
            return True

    def retry_task(self, task: TaskRecord, error: dict[str, Any], available_at: datetime) -> bool:
        with self._lock:
            row = self._held(task)
            if row is None:
                return False
            row.attempt += 1
            row.state = "available"
            row.available_at = available_at
            row.error = copy_json(error)
            row.lease_owner = row.lease_token = row.lease_expires_at = None
            self._notify([Notification(CHANNEL_TASKS, row.activity)])
            return True

    def get_activity_result(self, activity_module: str, key: str) -> tuple[bool, Any]:
        with self._lock:
            hit = self._results.get((activity_module, key))
            return (False, None) if hit is None else (True, copy_json(hit[2]))

    # --- signals ------------------------------------------------------------------------------------
    def send_signal(self, run_id: UUID, name: str, payload: Any, now: datetime) -> int:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            if run.state in FINISHED_STATES:
                raise run_not_active(run_id, run.state, "signal")
            signal_id = next(self._signal_ids)
            self._signals[signal_id] = SignalRow(signal_id, run_id, name, copy_json(payload), db_now())
            run.next_wakeup_at = now if run.next_wakeup_at is None else min(run.next_wakeup_at, now)
            self._notify([Notification(CHANNEL_WAKE, str(run_id))])
            return signal_id

    def send_signal_once(self, run_id: UUID, name: str, key: str, payload: Any, now: datetime) -> tuple[int, bool]:
        with self._lock:
            first = self._signal_keys.get((run_id, name, key))
            if first is not None:
                return first, False
            signal_id = self.send_signal(run_id, name, payload, now)
            self._signal_keys[(run_id, name, key)] = signal_id
            return signal_id, True

    def set_attributes(self, run_id: UUID, attributes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise run_not_found(run_id)
            run.attributes = {**(run.attributes or {}), **copy_json(attributes)} or None
            return copy_json(run.attributes) or {}

    def pending_signals(self, run_id: UUID, names: Sequence[str] | None = None) -> list[SignalRecord]:
        with self._lock:
            return [
                SignalRecord(s.id, s.run_id, s.name, copy_json(s.payload), s.inserted_at)
                for s in sorted(self._signals.values(), key=lambda s: s.id)
                if s.run_id == run_id and not s.delivered and (names is None or s.name in names)
            ]

    # --- timers ---------------------------------------------------------------------------------------
    def pending_timers(self, run_id: UUID) -> list[NewTimer]:
        with self._lock:
            timers = [t for t in self._timers.values() if t.run_id == run_id and not t.fired]
            timers.sort(key=lambda t: (t.fires_at, t.seq))
            return [NewTimer(t.id, t.seq, t.fires_at) for t in timers]

    # --- snapshots ------------------------------------------------------------------------------------
    def load_snapshot(self, run_id: UUID) -> Snapshot | None:
        with self._lock:
            snaps = self._snapshots.get(run_id)
            if not snaps:
                return None
            snap = snaps[max(snaps)]
            return replace(snap, payload=copy_json(snap.payload))

    def save_snapshot(self, snapshot: Snapshot, lease_token: int) -> bool:
        with self._lock:
            run = self._runs.get(snapshot.run_id)
            if run is None or run.lease_token != lease_token:
                return False
            snaps = self._snapshots.setdefault(snapshot.run_id, {})
            if snapshot.through_seq in snaps:
                return False
            size = snapshot.size_bytes or len(dumps(snapshot.payload).encode())
            snaps[snapshot.through_seq] = replace(snapshot, payload=copy_json(snapshot.payload), size_bytes=size)
            return True

    # --- workflow versions --------------------------------------------------------------------------
    def save_version(self, name: str, version_hash: str, source: str, origin: str) -> None:
        if origin not in ("cell", "module"):
            raise ValueError(f"a workflow version's origin is 'cell' or 'module', not {origin!r}")
        with self._lock:
            self._versions.setdefault((name, version_hash), VersionRow(source, origin, next(self._order)))

    def get_version(self, name: str, version_hash: str) -> tuple[str, str] | None:
        with self._lock:
            v = self._versions.get((name, version_hash))
            return None if v is None else (v.source, v.origin)

    def latest_version(self, name: str) -> tuple[str, str, str] | None:
        with self._lock:
            mine = [(v.order, h, v) for (n, h), v in self._versions.items() if n == name]
            if not mine:
                return None
            _, h, v = max(mine, key=lambda x: x[0])
            return (h, v.source, v.origin)

    def stored_workflow_names(self) -> list[str]:
        with self._lock:
            return sorted({n for (n, _), v in self._versions.items() if v.origin == "cell"})

    def runs_on_other_versions(self, name: str, version_hash: str) -> list[RunRecord]:
        with self._lock:
            rows = [
                r for r in self._runs.values()
                if r.workflow == name and r.version_hash != version_hash and r.state in (*ACTIVE_STATES, "drifted")
            ]
            rows.sort(key=lambda r: (r.started_at, r.id.bytes))
            return [self._run_copy(r) for r in rows]

    # --- notifications --------------------------------------------------------------------------------
    def listen(self, channels: Sequence[str]) -> MemoryListener:
        listener = MemoryListener(self, channels)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def close(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.close()
