"""What driving a workflow ends in and what a wake records: the replayer's results, the batch
a wake commits, and what the live tail may consult (``Resolver``). Pure data; no I/O."""

from __future__ import annotations

import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..store.base import Event, SignalRecord
from ..store.payloads import storable_text

__all__ = [
    "Batch",
    "Blocked",
    "ChildOutcome",
    "ChildTarget",
    "Completed",
    "Continued",
    "Drifted",
    "Failed",
    "LiveOutcome",
    "Resolver",
    "ScheduledActivity",
    "StartedChild",
    "StartedTimer",
    "error_dict",
]


# ------------------------------------------------------------------------------------------
# what a drive step ends in
# ------------------------------------------------------------------------------------------


@dataclass
class Completed:
    result: Any


@dataclass
class Continued(Completed):
    """``cn.continue_as_new``: the run completed (``result`` is ``{"continued": next_run_id}``) and
    its successor starts with ``input`` on ``version`` ("same" or "newest")."""

    next_run_id: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    version: str = "same"


@dataclass
class Failed:
    error: dict[str, Any]


@dataclass
class Drifted:
    error: dict[str, Any]


@dataclass
class Blocked:
    """The coroutine waits on something not yet resolved."""

    next_wakeup_at: datetime | None
    awaiting_signals: list[str]
    waiting_on_activities: list[int]  # scheduled seqs
    waiting_on_children: list[str] = field(default_factory=list)  # child run ids


@dataclass(frozen=True)
class LiveOutcome:
    """An activity task's outcome, known to the engine but not yet journaled."""

    state: str  # completed | failed
    result: Any = None
    error: Any = None
    attempts: int = 1
    idempotency_hit: bool = False
    task_id: uuid.UUID | None = None
    local: bool = False  # produced on this engine: the task row still needs updating


@dataclass(frozen=True)
class ScheduledActivity:
    task_id: uuid.UUID
    seq: int
    activity: str
    args: list[Any]
    kwargs: dict[str, Any]
    idempotency_key: str | None


@dataclass(frozen=True)
class StartedChild:
    """A child run a wake starts (inserted with the wake's commit)."""

    run_id: uuid.UUID
    seq: int
    workflow: str
    version_hash: str
    input: Any
    correlation_id: uuid.UUID
    on_parent_cancel: str
    retention_s: float | None = None


@dataclass(frozen=True)
class StartedTimer:
    timer_id: uuid.UUID
    seq: int
    fires_at: datetime


@dataclass(frozen=True)
class ChildTarget:
    """What a child run starts on (the parent's engine decides it at the live tail): the
    workflow's version, the family's correlation id, the workflow's retention (seconds);
    ``refused``: the one-line reason it cannot start (unknown workflow, too deep)."""

    version_hash: str = ""
    correlation_id: str = ""
    retention_s: float | None = None
    refused: str | None = None


@dataclass(frozen=True)
class ChildOutcome:
    """A child run's end, as its parent reads it when woken (not yet journaled)."""

    state: str  # completed | failed | cancelled
    result: Any = None
    error: Any = None


class Resolver(Protocol):
    """What the live tail may consult (provided by the runner for one wake)."""

    def now(self) -> datetime: ...

    def task_outcome(self, seq: int) -> LiveOutcome | None: ...

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None: ...

    # A resolver for runs that start children also has (replay/children.py asks with getattr:
    # an offline replay, without them, starts and resolves no child past its journal):
    #   child_target(workflow: str) -> ChildTarget
    #   child_outcome(child_run_id: str) -> ChildOutcome | None


@dataclass
class Batch:
    """What one wake records; committed by the caller in one transaction."""

    events: list[Event] = field(default_factory=list)
    activities: list[ScheduledActivity] = field(default_factory=list)
    timers: list[StartedTimer] = field(default_factory=list)
    fired_timers: list[uuid.UUID] = field(default_factory=list)
    consumed_signals: dict[int, int] = field(default_factory=dict)
    outcomes: list[tuple[int, LiveOutcome]] = field(default_factory=list)  # (scheduled seq, outcome)
    children: list[StartedChild] = field(default_factory=list)
    cancelled_children: list[uuid.UUID] = field(default_factory=list)


def error_dict(exc: BaseException) -> dict[str, Any]:
    """What is recorded of an exception raised by user code: always storable (a NUL or a lone
    surrogate in its message is escaped, not refused: the error must be recorded)."""
    try:
        message = str(exc)
    except Exception as inner:  # a __str__ that raises is user code too
        message = f"<str() of the exception failed: {type(inner).__name__}>"
    return {
        "type": storable_text(f"{type(exc).__module__}.{type(exc).__qualname__}"),
        "message": storable_text(message),
        "traceback": storable_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:]
        ),
    }
