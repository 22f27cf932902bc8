"""The records the store interface exchanges: runs, events, wakes, tasks, signals, snapshots,
notifications, and the run states and NOTIFY channels. ``store.base`` re-exports every name, so
``from continuum_nb.store.base import RunRecord`` keeps working; this module holds them so that the
interface (``base.Store``) reads on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
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
    "TaskRecord",
    "TaskOutcome",
    "Wake",
    "WakeResult",
]

RUN_STATES = ("running", "suspended", "completed", "failed", "cancelled", "drifted")
#: States an engine may claim and drive.
ACTIVE_STATES = ("running", "suspended")
#: States that never change again (``drifted`` is not one: ``resume`` retries it).
FINISHED_STATES = ("completed", "failed", "cancelled")

#: NOTIFY channels. Payloads are short strings (a run id, or a workflow/activity name).
CHANNEL_WAKE = "continuum_wake"        # a run became runnable (payload: run id)
CHANNEL_TASKS = "continuum_tasks"      # activity tasks became available (payload: activity name)
CHANNEL_DONE = "continuum_run_done"    # a run reached a finished or drifted state (payload: run id)


@dataclass(slots=True)  # not frozen: replay builds one per journal row, and frozen init is 3x slower
class Event:
    seq: int
    event_type: str
    payload: dict[str, Any]
    inserted_at: datetime | None = None


@dataclass
class RunRecord:
    id: UUID
    workflow: str
    version_hash: str
    state: str
    input: Any
    result: Any = None
    error: Any = None
    trace_context: bytes | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    lease_owner: str | None = None
    lease_token: int | None = None
    lease_expires_at: datetime | None = None
    next_wakeup_at: datetime | None = None
    retention_until: datetime | None = None
    #: Search attributes (a JSON object of scalars), never shown to workflow code.
    attributes: dict[str, Any] | None = None
    #: Kept this long after the run ends (retention_until = completed_at + retention); None: forever.
    retention: timedelta | None = None
    #: The run that started this one as a child (``cn.child``), else None.
    parent_run_id: UUID | None = None
    #: Shared by a parent and all its descendants (the root's id); None for a run of its own.
    correlation_id: UUID | None = None
    #: The run this one continues (continue-as-new), else None.
    continued_from_run_id: UUID | None = None


@dataclass(frozen=True)
class NewChild:
    """A child run a wake starts (``cn.child``): inserted runnable, unleased, in the parent's
    wake transaction, with ``parent_run_id`` the waking run; an id that exists is left alone (a
    replayed start never makes a second child)."""

    id: UUID
    workflow: str
    version_hash: str
    input: Any
    started_at: datetime
    correlation_id: UUID
    on_parent_cancel: str = "cancel"   # cancel | abandon
    retention: timedelta | None = None


@dataclass(frozen=True)
class NewRun:
    id: UUID
    workflow: str
    version_hash: str
    input: Any
    started_at: datetime
    trace_context: bytes | None = None
    retention_until: datetime | None = None   # explicit (as v0.2 set it at start); new runs: ``retention``
    idempotency_key: str | None = None
    attributes: dict[str, Any] | None = None
    retention: timedelta | None = None


@dataclass(frozen=True)
class KeyedStart:
    """``create_keyed_run``'s answer: the key's run (``existing``: nothing was written; that run
    may since have been pruned), or the new run and its lease token when leased."""

    run_id: UUID
    existing: bool
    lease_token: int | None = None


@dataclass(frozen=True)
class PruneReport:
    """Rows ``prune`` deleted (``executed``) or would delete; ``batches``: transactions that did."""

    executed: bool
    runs: int = 0
    events: int = 0
    signals: int = 0
    timers: int = 0
    tasks: int = 0
    snapshots: int = 0
    activity_results: int = 0
    ingress_keys: int = 0
    signal_keys: int = 0
    batches: int = 0


@dataclass(frozen=True)
class NewTask:
    """An activity task created by a wake. ``seq`` is its ``activity_scheduled`` event's seq."""

    id: UUID
    seq: int
    activity: str
    args: dict[str, Any]              # {"args": [...], "kwargs": {...}} — stored in ``mfa``
    available_at: datetime
    idempotency_key: str | None = None
    attempt: int = 1
    #: Leased at once to the engine committing the wake (it runs the attempt itself): state
    #: 'leased', lease_owner = the run's lease_owner, lease_token = the wake's lease_token,
    #: lease_expires_at = database now() + lease_ttl. Otherwise state 'available'.
    lease_to_self: bool = False


@dataclass(frozen=True)
class NewTimer:
    id: UUID
    seq: int                          # the seq of the event that started it
    fires_at: datetime


@dataclass(frozen=True)
class TaskOutcome:
    """The outcome of an activity attempt that this wake journals (the task row is updated too)."""

    task_id: UUID
    state: str                        # 'completed' | 'failed'
    result: Any = None
    error: Any = None
    #: (activity_module, idempotency_key) to store in continuum_activity_results on success.
    idempotency: tuple[str, str] | None = None
    seq: int = 0                      # the activity_scheduled seq (for the results table)


@dataclass
class Wake:
    """Everything one wake of a run commits, in ONE transaction.

    The store locks the run row, checks ``lease_token``, then: inserts ``events`` (their seqs
    are consecutive after the journal's last seq), inserts ``new_tasks`` and ``new_timers``,
    marks ``fired_timers`` fired, marks ``consumed_signals`` delivered (signal id → the seq of its
    ``signal_received``), applies ``task_outcomes`` (task rows + idempotency rows, ON CONFLICT DO
    NOTHING), cancels tasks in ``cancelled_tasks``, and sets the run's ``state``, ``result``,
    ``error``, ``next_wakeup_at``, ``completed_at`` (for finished states) and lease
    (``release`` clears owner/token/expiry; otherwise expiry is pushed to now + ttl).
    If ``awaiting_signals`` is non-empty and an undelivered signal of one of those names is in
    the mailbox after the lock was taken, ``next_wakeup_at`` is set to ``now`` and
    ``WakeResult.signal_pending`` is True: the caller must wake the run again.
    ``new_children`` are inserted runnable (children), ``cancelled_children`` cancelled, and a
    finished run that has a parent makes that parent runnable now (CHANNEL_WAKE): the child's
    end wakes its parent in the child's final transaction.
    Finally it NOTIFYs: CHANNEL_TASKS for available tasks, CHANNEL_DONE for a finished/drifted run.
    """

    run_id: UUID
    lease_token: int
    now: datetime
    state: str
    events: list[Event] = field(default_factory=list)
    new_tasks: list[NewTask] = field(default_factory=list)
    new_timers: list[NewTimer] = field(default_factory=list)
    fired_timers: list[UUID] = field(default_factory=list)
    consumed_signals: dict[int, int] = field(default_factory=dict)
    task_outcomes: list[TaskOutcome] = field(default_factory=list)
    cancelled_tasks: list[UUID] = field(default_factory=list)
    next_wakeup_at: datetime | None = None
    result: Any = None
    error: Any = None
    awaiting_signals: Sequence[str] = ()
    #: Scheduled seqs of the activities the run is blocked on: if one of them is completed or
    #: failed in its task row after the lock was taken, next_wakeup_at is set to ``now`` and
    #: WakeResult.signal_pending is True (the caller must wake the run again). Tasks the wake
    #: itself creates are left out (they cannot have an outcome yet).
    awaiting_tasks: Sequence[int] = ()
    release: bool = False
    lease_ttl: float = 30.0
    version_hash: str | None = None   # set to move the run to another version (upgrade)
    trace_context: bytes | None = None  # set once: the first attempt's W3C traceparent
    #: Child runs to insert (``cn.child``), runnable at once (NOTIFY CHANNEL_WAKE each).
    new_children: list[NewChild] = field(default_factory=list)
    #: Child run ids the run is blocked on: if one of them has ended (completed, failed,
    #: cancelled) after the lock was taken, as for ``awaiting_tasks``.
    awaiting_children: Sequence[UUID] = ()
    #: Child runs to cancel (``cn.first``'s losing children), with their descendants that
    #: follow their parent's cancel; the waking run itself is not woken by their end.
    cancelled_children: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class WakeResult:
    signal_pending: bool = False
    #: The lease token of a run the wake inserted (``store.starts.StartingWake``), else None.
    lease_token: int | None = None


@dataclass
class TaskRecord:
    id: UUID
    run_id: UUID
    seq: int
    activity: str
    args: dict[str, Any]
    attempt: int
    state: str                        # available | leased | completed | failed | cancelled
    available_at: datetime | None = None
    lease_owner: str | None = None
    lease_token: int | None = None
    lease_expires_at: datetime | None = None
    idempotency_key: str | None = None
    result: Any = None
    error: Any = None


@dataclass(frozen=True)
class SignalRecord:
    id: int
    run_id: UUID
    name: str
    payload: Any
    inserted_at: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    run_id: UUID
    through_seq: int
    version_hash: str
    payload: dict[str, Any]
    size_bytes: int = 0


@dataclass(frozen=True)
class Notification:
    channel: str
    payload: str
