"""``MemoryStore``'s journal and wakes: a new run (with its first wake), a wake's commit (the
fence, the seq check, then every kind of row it writes), and reading the journal back. Validation
comes first and application second, under the one lock, so a refused wake writes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from ..base import (
    CHANNEL_DONE,
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    FINISHED_STATES,
    Event,
    KeyedStart,
    NewRun,
    Notification,
    RunRecord,
    TaskOutcome,
    TaskRecord,
    Wake,
    WakeResult,
)
from ..chains import ContinuingWake
from ..checks import check_first_wake, check_wake, lease_lost, run_exists, seq_conflict
from ..payloads import payload_size
from ..starts import StartingWake
from .chains import MemoryChains
from .children import MemoryChildren
from .rows import OPEN_TASK_STATES, TimerRow, copy_json, db_now

__all__ = ["MemoryJournal"]


class MemoryJournal(MemoryChildren, MemoryChains):
    """Creating runs, committing wakes, loading the journal."""

    def create_run(
        self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0, first_wake: Wake | None = None
    ) -> int | None:
        if run.idempotency_key is not None:
            raise ValueError("create_run: a run with an idempotency_key is created with create_keyed_run")
        return self._insert_run(run, owner, lease_ttl, first_wake)

    def _insert_run(self, run: NewRun, owner: str | None, lease_ttl: float, first_wake: Wake | None) -> int | None:
        if first_wake is not None:
            if owner is None:
                raise ValueError("create_run: first_wake needs an owner (the engine that commits it)")
            check_first_wake(first_wake)
            self._check_new_rows(first_wake)
        with self._lock:
            if run.id in self._runs:
                raise run_exists(run.id)
            record = RunRecord(
                id=run.id,
                workflow=run.workflow,
                version_hash=run.version_hash,
                state="running",
                input=copy_json(run.input),
                trace_context=run.trace_context,
                started_at=run.started_at,
                retention_until=run.retention_until,
                attributes=copy_json(run.attributes) or None,
                retention=run.retention,
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

    def create_keyed_run(self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0) -> KeyedStart:
        key = run.idempotency_key
        if key is None:
            raise ValueError("create_keyed_run: the run has no idempotency_key (use create_run)")
        with self._lock:
            existing = self._ingress_keys.get((run.workflow, key))
            if existing is not None:
                return KeyedStart(existing, True)
            token = self._insert_run(run, owner, lease_ttl, None)
            self._ingress_keys[(run.workflow, key)] = run.id
            return KeyedStart(run.id, False, token)

    def _check_new_rows(self, wake: Wake) -> None:
        """Duplicate task/timer ids would be primary-key violations: refuse before writing."""
        with self._lock:
            for t in wake.new_tasks:
                if t.id in self._tasks:
                    raise ValueError(f"activity task {t.id} already exists")
            for tm in wake.new_timers:
                if tm.id in self._timers:
                    raise ValueError(f"timer {tm.id} already exists")
            if isinstance(wake, ContinuingWake):
                self._check_continuation(wake)

    def load_journal(self, run_id: UUID, after_seq: int = 0) -> list[Event]:
        with self._lock:
            return [replace(e, payload=copy_json(e.payload)) for e in self._events.get(run_id, []) if e.seq > after_seq]

    def load_journals(self, leases: Mapping[UUID, int], max_events: int, max_bytes: int) -> dict[UUID, list[Event]]:
        out: dict[UUID, list[Event]] = {}
        with self._lock:
            for rid, token in leases.items():
                run, events = self._runs.get(rid), self._events.get(rid, [])
                if run is None or run.lease_token != token or len(events) > max_events:
                    continue
                journal = [replace(e, payload=copy_json(e.payload)) for e in events]
                if sum(payload_size(e.payload) for e in journal) <= max_bytes:
                    out[rid] = journal
        return out

    def commit_wake(self, wake: Wake) -> WakeResult:
        if isinstance(wake, StartingWake):  # the run's insert with its first wake (store/starts.py)
            # (not through create_run: a wrapped store would count one commit twice)
            return WakeResult(lease_token=self._insert_run(wake.run(), wake.owner, wake.start_lease_ttl, wake))
        check_wake(wake)
        with self._lock:
            run = self._runs.get(wake.run_id)
            if run is None or run.lease_token != wake.lease_token:
                raise lease_lost(wake.run_id, wake.lease_token)
            if wake.events:
                last = self._last_seq.get(wake.run_id, 0)
                if wake.events[0].seq != last + 1:
                    raise seq_conflict(wake.run_id, wake.events[0].seq, last)
            self._check_new_rows(wake)
            return self._apply_wake(wake)

    def commit_wakes(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        # Under the one lock: no other writer sees some of them committed and not the others.
        out: list[WakeResult | Exception] = []
        with self._lock:
            for wake in wakes:
                try:
                    out.append(self.commit_wake(wake))
                except Exception as exc:
                    out.append(exc)
        return out

    def _apply_wake(self, wake: Wake) -> WakeResult:
        """Apply a validated wake (caller holds the lock)."""
        now_db = db_now()
        run = self._runs[wake.run_id]
        owner = run.lease_owner
        notes: list[Notification] = []
        for e in wake.events:
            self._events[wake.run_id].append(Event(e.seq, e.event_type, copy_json(e.payload), now_db))
        if wake.events:
            self._last_seq[wake.run_id] = wake.events[-1].seq
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

        if wake.new_children:
            self._insert_children(wake, notes)
        if wake.cancelled_children:
            self._cancel_tree(list(wake.cancelled_children), wake.now, wake.run_id, notes)
        pending = (self._signal_pending(wake.run_id, wake.awaiting_signals) or self._task_ready(wake)
                   or any(self._child_ended(c, wake.now) for c in wake.awaiting_children))
        run.state = wake.state
        run.result = copy_json(wake.result)
        run.error = copy_json(wake.error)
        run.next_wakeup_at = wake.now if pending else wake.next_wakeup_at
        if wake.state in FINISHED_STATES:
            run.completed_at = wake.now
            if run.retention is not None:  # retention runs from the end
                run.retention_until = wake.now + run.retention
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
            if wake.state in FINISHED_STATES and run.parent_run_id is not None:
                self._wake_parent(run, wake.now, notes)  # the child's end wakes its parent
        elif wake.release and run.next_wakeup_at is not None and run.next_wakeup_at <= wake.now:
            # Runnable now and nobody holds it: tell the other engines.
            notes.append(Notification(CHANNEL_WAKE, str(wake.run_id)))
        if isinstance(wake, ContinuingWake):
            self._continue(wake, notes)  # the successor, in the same "transaction"
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
