"""``MemoryStore``: the store contract in plain Python, for fast engine unit tests.

Same semantics as ``PostgresStore`` (``tests/unit/test_store_contract.py`` runs one suite against
both): one lock stands in for the run-row lock and for transactions (every method validates
first, then applies, so a refused call writes nothing), JSON values are copied in and out as the
database would, and "database now" is the real UTC clock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ._memory_leases import MemoryLeases
from ._memory_rows import (
    OPEN_TASK_STATES,
    MemoryListener,
    SignalRow,
    TimerRow,
    VersionRow,
    copy_json,
    db_now,
)
from .base import (
    ACTIVE_STATES,
    CHANNEL_DONE,
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    FINISHED_STATES,
    Event,
    NewRun,
    NewTimer,
    Notification,
    RunRecord,
    SignalRecord,
    Snapshot,
    TaskOutcome,
    TaskRecord,
    Wake,
    WakeResult,
)
from .checks import (
    check_first_wake,
    check_wake,
    lease_lost,
    run_not_active,
    run_not_found,
    seq_conflict,
)
from .payloads import dumps

__all__ = ["MemoryListener", "MemoryStore"]

class MemoryStore(MemoryLeases):
    """See ``store.base.Store`` for each method's contract."""

    def __init__(self, *, instance: str = "default") -> None:
        self.instance = instance
        self._lock = threading.RLock()
        self._runs: dict[UUID, RunRecord] = {}
        self._events: dict[UUID, list[Event]] = {}
        self._signals: dict[int, SignalRow] = {}
        self._timers: dict[UUID, TimerRow] = {}
        self._tasks: dict[UUID, TaskRecord] = {}
        self._results: dict[tuple[str, str], tuple[UUID, int, Any]] = {}
        self._snapshots: dict[UUID, dict[int, Snapshot]] = {}
        self._versions: dict[tuple[str, str], VersionRow] = {}
        self._tokens = itertools.count(1)
        self._signal_ids = itertools.count(1)
        self._order = itertools.count(1)
        self._listeners: list[MemoryListener] = []

    # --- helpers -------------------------------------------------------------------------------
    def _drop_listener(self, listener: MemoryListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # --- runs ------------------------------------------------------------------------------------
    def create_run(
        self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0, first_wake: Wake | None = None
    ) -> int | None:
        if first_wake is not None:
            if owner is None:
                raise ValueError("create_run: first_wake needs an owner (the engine that commits it)")
            check_first_wake(first_wake)
            self._check_new_rows(first_wake)
        with self._lock:
            if run.id in self._runs:
                raise ValueError(f"run {run.id} already exists; pass a new run_id")
            record = RunRecord(
                id=run.id,
                workflow=run.workflow,
                version_hash=run.version_hash,
                state="running",
                input=copy_json(run.input),
                trace_context=run.trace_context,
                started_at=run.started_at,
                retention_until=run.retention_until,
            )
            if owner is None:
                record.state = "suspended"  # waiting to be picked up by an engine
                record.next_wakeup_at = run.started_at
                self._runs[run.id] = record
                self._events[run.id] = []
                self._notify([Notification(CHANNEL_WAKE, str(run.id))])
                return None
            token = next(self._tokens)
            record.lease_owner = owner
            record.lease_token = token
            record.lease_expires_at = db_now() + timedelta(seconds=lease_ttl)
            self._runs[run.id] = record
            self._events[run.id] = []
            if first_wake is not None:
                self._apply_wake(replace(first_wake, run_id=run.id, lease_token=token))
            return token

    def _check_new_rows(self, wake: Wake) -> None:
        """Duplicate task/timer ids would be primary-key violations: refuse before writing."""
        with self._lock:
            for t in wake.new_tasks:
                if t.id in self._tasks:
                    raise ValueError(f"activity task {t.id} already exists")
            for tm in wake.new_timers:
                if tm.id in self._timers:
                    raise ValueError(f"timer {tm.id} already exists")

    def get_run(self, run_id: UUID) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._run_copy(run)

    def list_runs(
        self,
        *,
        state: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        before: tuple[datetime, UUID] | None = None,
    ) -> list[RunRecord]:
        with self._lock:
            rows = [
                r
                for r in self._runs.values()
                if (state is None or r.state == state) and (workflow is None or r.workflow == workflow)
            ]
            rows.sort(key=lambda r: (r.started_at, r.id.bytes), reverse=True)
            if before is not None:
                key = (before[0], before[1].bytes)
                rows = [r for r in rows if (r.started_at, r.id.bytes) < key]
            # uuid ordering in PostgreSQL is byte order, the same as UUID.bytes
            return [self._run_copy(r) for r in rows[: max(limit, 0)]]

    def load_journal(self, run_id: UUID, after_seq: int = 0) -> list[Event]:
        with self._lock:
            return [replace(e, payload=copy_json(e.payload)) for e in self._events.get(run_id, []) if e.seq > after_seq]

    def commit_wake(self, wake: Wake) -> WakeResult:
        check_wake(wake)
        with self._lock:
            run = self._runs.get(wake.run_id)
            if run is None or run.lease_token != wake.lease_token:
                raise lease_lost(wake.run_id, wake.lease_token)
            if wake.events:
                journal = self._events[wake.run_id]
                last = journal[-1].seq if journal else 0
                if wake.events[0].seq != last + 1:
                    raise seq_conflict(wake.run_id, wake.events[0].seq, last)
            self._check_new_rows(wake)
            return self._apply_wake(wake)

    def _apply_wake(self, wake: Wake) -> WakeResult:
        """Apply a validated wake (caller holds the lock)."""
        now_db = db_now()
        run = self._runs[wake.run_id]
        owner = run.lease_owner
        notes: list[Notification] = []
        for e in wake.events:
            self._events[wake.run_id].append(Event(e.seq, e.event_type, copy_json(e.payload), now_db))
        for t in wake.new_tasks:
            self._tasks[t.id] = TaskRecord(
                id=t.id,
                run_id=wake.run_id,
                seq=t.seq,
                activity=t.activity,
                args=copy_json(t.args),
                attempt=t.attempt,
                state="leased" if t.lease_to_self else "available",
                available_at=t.available_at,
                lease_owner=owner if t.lease_to_self else None,
                lease_token=wake.lease_token if t.lease_to_self else None,
                lease_expires_at=now_db + timedelta(seconds=wake.lease_ttl) if t.lease_to_self else None,
                idempotency_key=t.idempotency_key,
            )
            if not t.lease_to_self:
                notes.append(Notification(CHANNEL_TASKS, t.activity))
        for tm in wake.new_timers:
            self._timers[tm.id] = TimerRow(tm.id, wake.run_id, tm.seq, tm.fires_at)
        for timer_id in wake.fired_timers:
            timer = self._timers.get(timer_id)
            if timer is not None and timer.run_id == wake.run_id:
                timer.fired = True
        for signal_id, seq in wake.consumed_signals.items():
            sig = self._signals.get(signal_id)
            if sig is not None and sig.run_id == wake.run_id:
                sig.delivered, sig.delivered_seq = True, seq
        for outcome in wake.task_outcomes:
            self._apply_outcome(wake.run_id, outcome, now_db)
        for task_id in wake.cancelled_tasks:
            task = self._tasks.get(task_id)
            if task is not None and task.run_id == wake.run_id and task.state in OPEN_TASK_STATES:
                task.state = "cancelled"
                task.lease_owner = task.lease_token = task.lease_expires_at = None

        pending = self._signal_pending(wake.run_id, wake.awaiting_signals) or self._task_ready(wake)
        run.state = wake.state
        run.result = copy_json(wake.result)
        run.error = copy_json(wake.error)
        run.next_wakeup_at = wake.now if pending else wake.next_wakeup_at
        if wake.state in FINISHED_STATES:
            run.completed_at = wake.now
        if wake.version_hash is not None:
            run.version_hash = wake.version_hash
        if run.trace_context is None and wake.trace_context is not None:
            run.trace_context = wake.trace_context  # set once
        if wake.release or wake.state in FINISHED_STATES:  # a finished run holds no lease
            run.lease_owner = run.lease_token = run.lease_expires_at = None
        else:
            run.lease_expires_at = now_db + timedelta(seconds=wake.lease_ttl)
        if wake.state in FINISHED_STATES or wake.state == "drifted":
            notes.append(Notification(CHANNEL_DONE, str(wake.run_id)))
        elif wake.release and run.next_wakeup_at is not None and run.next_wakeup_at <= wake.now:
            # Runnable now and nobody holds it: tell the other engines.
            notes.append(Notification(CHANNEL_WAKE, str(wake.run_id)))
        self._notify(notes)
        return WakeResult(signal_pending=pending)

    def _signal_pending(self, run_id: UUID, names: Sequence[str]) -> bool:
        wanted = set(names)
        return bool(wanted) and any(
            s.run_id == run_id and not s.delivered and s.name in wanted for s in self._signals.values()
        )

    def _task_ready(self, wake: Wake) -> bool:
        seqs = set(getattr(wake, "awaiting_tasks", ()) or ())
        return bool(seqs) and any(
            t.run_id == wake.run_id and t.seq in seqs and t.state in ("completed", "failed")
            for t in self._tasks.values()
        )

    def _apply_outcome(self, run_id: UUID, outcome: TaskOutcome, now_db: datetime) -> None:
        task = self._tasks.get(outcome.task_id)
        if task is not None and task.run_id == run_id:
            task.state = outcome.state
            task.result = copy_json(outcome.result)
            task.error = copy_json(outcome.error)
            task.lease_owner = task.lease_token = task.lease_expires_at = None
        if outcome.state == "completed" and outcome.idempotency is not None:
            # ON CONFLICT DO NOTHING: the first stored result stays.
            self._results.setdefault(outcome.idempotency, (run_id, outcome.seq, copy_json(outcome.result)))

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
            run.state = "cancelled"
            run.completed_at = now
            run.next_wakeup_at = None
            run.lease_owner = run.lease_token = run.lease_expires_at = None
            for task in self._tasks.values():
                if task.run_id == run_id and task.state in OPEN_TASK_STATES:
                    task.state = "cancelled"
                    task.lease_owner = task.lease_token = task.lease_expires_at = None
            for timer in self._timers.values():
                if timer.run_id == run_id:
                    timer.fired = True
            self._notify([Notification(CHANNEL_DONE, str(run_id))])
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
