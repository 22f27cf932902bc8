"""The narrow store interface the engine runs on (the records it exchanges live in ``records``
and are re-exported here).

Two implementations: ``store.postgres.PostgresStore`` (the real one) and
``store.memory.MemoryStore`` (same semantics, for fast unit tests). ``tests/unit/test_store_contract.py``
runs one suite against both.

Rules every implementation keeps:
- Only the engine that holds a run's lease appends to its journal, and every append is fenced:
  ``commit_wake`` locks the run row and compares ``lease_token``; a stale token raises
  ``LeaseLost`` and writes nothing.
- Activity outcomes produced by an engine that does not hold the run are written to the task row
  (fenced by the *task* lease) and make the run runnable; the run's holder journals them.
- Leases compare against the database clock (``now()``), so engine clocks may skew; timers and
  ``next_wakeup_at`` compare against the engine clock passed in as ``now`` (injectable for tests).
- All payloads are JSON values (already validated by the caller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

__all__ = [
    "ACTIVE_STATES",
    "CHANNEL_DONE",
    "CHANNEL_TASKS",
    "CHANNEL_WAKE",
    "FINISHED_STATES",
    "RUN_STATES",
    "Event",
    "KeyedStart",
    "NewChild",
    "NewRun",
    "NewTask",
    "NewTimer",
    "Notification",
    "PruneReport",
    "RunRecord",
    "SignalRecord",
    "Snapshot",
    "Store",
    "TaskRecord",
    "TaskOutcome",
    "Wake",
    "WakeResult",
]

from .records import (
    ACTIVE_STATES,
    CHANNEL_DONE,
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    FINISHED_STATES,
    RUN_STATES,
    Event,
    KeyedStart,
    NewChild,
    NewRun,
    NewTask,
    NewTimer,
    Notification,
    PruneReport,
    RunRecord,
    SignalRecord,
    Snapshot,
    TaskOutcome,
    TaskRecord,
    Wake,
    WakeResult,
)


class Store(Protocol):
    """What the engine needs from a database. Methods are synchronous and thread-safe; the
    engine calls them from worker threads. Connection failures raise ``DatabaseUnavailable``."""

    # --- runs -------------------------------------------------------------------------------
    def create_run(
        self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0, first_wake: Wake | None = None
    ) -> int | None:
        """Insert a run. With ``owner`` it is ``running``, leased to that engine at once, and the
        new lease token is returned; ``first_wake`` (its ``lease_token`` is ignored) is then
        committed in the same transaction. Without ``owner`` it is ``suspended`` and runnable by
        any engine (``next_wakeup_at = run.started_at``): it waits to be picked up, and stays
        visibly suspended while no live engine knows its workflow. NOTIFY CHANNEL_WAKE; returns None.
        A duplicate id raises ``ValueError``."""
        ...

    def create_keyed_run(self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0) -> KeyedStart:
        """Insert ``run`` and its key (``run.idempotency_key``, per workflow) in one transaction,
        unless the key names a run already: then nothing is written and that run is returned
        (concurrent calls with one key make one run). With ``owner``: ``running``, leased, no wake
        yet (the owner commits the first with ``commit_wake``; if it dies, the run is claimed once
        the lease expires); without: as ``create_run`` without an owner."""
        ...

    def create_runs(self, runs: Sequence[NewRun]) -> list[UUID]:
        """Insert runnable runs (as ``create_run`` without an owner) in one transaction; an id that
        exists is skipped (ValueError, nothing written, if it is a run of another workflow); one
        wake notification for all. Returns the ids inserted, in order."""

    def get_run(self, run_id: UUID) -> RunRecord | None: ...

    def list_runs(
        self, *, state: str | None = None, workflow: str | None = None, limit: int = 100,
        before: tuple[datetime, UUID] | None = None, started_after: datetime | None = None,
        started_before: datetime | None = None, attributes: dict[str, Any] | None = None,
    ) -> list[RunRecord]:
        """Newest first (started_at DESC, id DESC); ``before`` is the keyset cursor. Filters:
        ``started_after <= started_at < started_before``, ``attributes`` contained in the run's."""
        ...

    def set_attributes(self, run_id: UUID, attributes: dict[str, Any]) -> dict[str, Any]:
        """Merge into the run's attributes (any state); the result. ``RunNotFound`` otherwise."""
        ...

    def prune(self, now: datetime, *, execute: bool, drop_keys: bool, batch_size: int) -> PruneReport:
        """Delete ended runs whose retention_until is at or before ``now`` with all their rows
        (events, signals, timers, tasks, snapshots, activity results; with ``drop_keys`` their
        keys and those of runs pruned before), ``batch_size`` runs per transaction; or, without
        ``execute``, only count them."""
        ...

    def load_journal(self, run_id: UUID, after_seq: int = 0) -> list[Event]:
        """Events with seq > after_seq, in seq order."""
        ...

    def load_journals(self, leases: Mapping[UUID, int], max_events: int, max_bytes: int) -> dict[UUID, list[Event]]:
        """The whole journals (each in seq order) of runs just claimed, in one round trip: of
        ``leases`` (run id → lease token), those runs still leased with that token whose journal
        has at most ``max_events`` events and ``max_bytes`` bytes of payloads (as JSON text);
        the others are left out, to be loaded one by one (``load_journal``). A run without events
        maps to ``[]``. Read in one snapshot of the database: for a run whose lease it checked, it
        is the journal the lease holder would read (nobody else appends to it)."""
        ...

    def commit_wake(self, wake: Wake) -> WakeResult:
        """See ``Wake``. Raises ``LeaseLost`` (nothing written) when the token is stale, and
        ``PartitionError`` when an event's month has no partition."""
        ...

    def commit_wakes(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        """Several runs' wakes (group commit): one round trip and one transaction, each wake
        exactly as ``commit_wake`` commits it, fenced by its own run's lease token. A wake that
        is refused (``LeaseLost``, a seq conflict, a value the database refuses) writes nothing
        and is reported in its place, and the others commit: the result has one entry per wake,
        in order. An error of the call as a whole (the database unavailable, the connection lost
        mid-commit) is raised: then each wake is as ``commit_wake`` would leave it on that error."""
        ...

    def mark_drifted(self, run_id: UUID, lease_token: int, error: dict[str, Any]) -> None:
        """Fenced: state ``drifted``, ``error`` recorded, lease released; no event appended."""
        ...

    def cancel_run(self, run_id: UUID, now: datetime) -> RunRecord:
        """State ``cancelled`` (from running/suspended/drifted), tasks not finished → cancelled,
        timers → fired, lease cleared (so a holder's next commit is fenced out), NOTIFY
        CHANNEL_DONE; in the same transaction its children started with
        ``on_parent_cancel='cancel'`` are cancelled (and theirs), and its parent, if any, is made
        runnable (NOTIFY CHANNEL_WAKE). ``RunNotFound`` / ``RunNotActive`` otherwise."""
        ...

    def run_depth(self, run_id: UUID) -> int:
        """How many ancestors the run has (0: not a child), following ``parent_run_id``."""
        ...

    def resume_run(self, run_id: UUID, now: datetime) -> RunRecord:
        """A ``drifted`` run → ``running``, error cleared, lease cleared, runnable now, NOTIFY
        CHANNEL_WAKE. ``RunNotFound`` / ``RunNotActive`` (not drifted) otherwise."""
        ...

    # --- claiming and leases ----------------------------------------------------------------------
    def claim_runs(
        self, owner: str, workflows: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[RunRecord]:
        """Lease up to ``limit`` runs of these workflows that are runnable: state running or
        suspended, ``next_wakeup_at <= now`` (NULL counts as not due for suspended, due for
        running), and no live lease (owner NULL or expired by the database clock). New token
        from continuum_lease_token_seq. FOR UPDATE SKIP LOCKED, oldest wakeup first."""
        ...

    def claim_run(self, run_id: UUID, owner: str, lease_ttl: float) -> RunRecord | None:
        """Lease one specific active or drifted run if no live lease is held by another owner
        (used by upgrade and by a NOTIFY for a known run). None when it cannot be taken."""
        ...

    def renew_leases(self, owner: str, runs: dict[UUID, int], tasks: dict[UUID, int], lease_ttl: float) -> tuple[set[UUID], set[UUID]]:
        """Push the expiry of the leases this owner still holds (run id → token, task id → token).
        Returns (lost run ids, lost task ids): those whose token no longer matches."""
        ...

    def overdue_runs(self, run_ids: Sequence[UUID], cutoff: datetime) -> list[UUID]:
        """Of ``run_ids``, the suspended runs whose next_wakeup_at is at or before ``cutoff``
        (the engine's sweep for held runs whose wake-up NOTIFY was lost)."""
        ...

    def release_run(self, run_id: UUID, lease_token: int) -> None:
        """Clear the lease (state and next_wakeup_at unchanged) if the token still matches."""
        ...

    def next_wakeup(self, workflows: Sequence[str]) -> datetime | None:
        """The earliest next_wakeup_at of an unleased suspended run of these workflows."""
        ...

    def recover(self) -> dict[str, int]:
        """Boot/continuous recovery: clear expired run leases, make expired task leases
        available again. Returns counts {"runs": n, "tasks": m}."""
        ...

    # --- activity tasks ---------------------------------------------------------------------------
    def claim_tasks(
        self, owner: str, activities: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[TaskRecord]:
        """Lease available tasks (available_at <= now) of known activities, SKIP LOCKED, each
        with a fresh token; state → leased."""
        ...

    def task_outcomes(self, run_id: UUID, seqs: Sequence[int]) -> dict[int, TaskRecord]:
        """Tasks of this run (by scheduled seq) in state completed or failed."""
        ...

    def complete_task(self, task: TaskRecord, outcome: TaskOutcome, now: datetime) -> bool:
        """Write an attempt's outcome to the task row (fenced by the task's lease token), store the
        idempotency row on success, make the run runnable now and NOTIFY CHANNEL_WAKE, in one
        transaction. False (nothing written) when the task lease was lost."""
        ...

    def retry_task(self, task: TaskRecord, error: dict[str, Any], available_at: datetime) -> bool:
        """Fenced: attempt + 1, state available at ``available_at``, lease cleared, error kept."""
        ...

    def get_activity_result(self, activity_module: str, key: str) -> tuple[bool, Any]:
        """(True, result) when an idempotency row exists, else (False, None)."""
        ...

    # --- signals ------------------------------------------------------------------------------------
    def send_signal(self, run_id: UUID, name: str, payload: Any, now: datetime) -> int:
        """Append to the durable mailbox (FIFO per name) of an active or drifted run, make it
        runnable now, NOTIFY CHANNEL_WAKE; returns the signal id. ``RunNotFound`` /
        ``RunNotActive`` (finished run) otherwise."""
        ...

    def send_signal_once(self, run_id: UUID, name: str, key: str, payload: Any, now: datetime) -> tuple[int, bool]:
        """``send_signal`` once per (run, name, key): (id, True) when delivered now, (the first
        one's id, False) for a duplicate (nothing written, whatever the run's state now)."""
        ...

    def pending_signals(self, run_id: UUID, names: Sequence[str] | None = None) -> list[SignalRecord]:
        """Undelivered signals of the run (optionally only these names), oldest first."""
        ...

    # --- timers ---------------------------------------------------------------------------------------
    def pending_timers(self, run_id: UUID) -> list[NewTimer]: ...

    # --- snapshots ------------------------------------------------------------------------------------
    def load_snapshot(self, run_id: UUID) -> Snapshot | None: ...

    def save_snapshot(self, snapshot: Snapshot, lease_token: int) -> bool: ...

    # --- workflow versions --------------------------------------------------------------------------
    def save_version(self, name: str, version_hash: str, source: str, origin: str) -> None:
        """Idempotent on (name, version_hash)."""
        ...

    def get_version(self, name: str, version_hash: str) -> tuple[str, str] | None:
        """(source, origin) or None."""
        ...

    def latest_version(self, name: str) -> tuple[str, str, str] | None:
        """(version_hash, source, origin) of the newest stored version, or None."""
        ...

    def stored_workflow_names(self) -> list[str]:
        """Names that have at least one stored 'cell' version."""
        ...

    def runs_on_other_versions(self, name: str, version_hash: str) -> list[RunRecord]:
        """Active/drifted runs of ``name`` whose version differs."""
        ...

    # --- notifications --------------------------------------------------------------------------------
    def listen(self, channels: Sequence[str]) -> Listener: ...

    def close(self) -> None: ...


class Listener(Protocol):
    """A LISTEN session on its own connection."""

    def wait(self, timeout: float) -> list[Notification]:
        """Block up to ``timeout`` seconds; returns the notifications received (maybe none)."""
        ...

    def close(self) -> None: ...
