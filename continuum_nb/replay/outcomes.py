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
    "Completed",
    "Continued",
    "Drifted",
    "Failed",
    "LiveOutcome",
    "Resolver",
    "ScheduledActivity",
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
class StartedTimer:
    timer_id: uuid.UUID
    seq: int
    fires_at: datetime


class Resolver(Protocol):
    """What the live tail may consult (provided by the runner for one wake)."""

    def now(self) -> datetime: ...

    def task_outcome(self, seq: int) -> LiveOutcome | None: ...

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None: ...


@dataclass
class Batch:
    """What one wake records; committed by the caller in one transaction."""

    events: list[Event] = field(default_factory=list)
    activities: list[ScheduledActivity] = field(default_factory=list)
    timers: list[StartedTimer] = field(default_factory=list)
    fired_timers: list[uuid.UUID] = field(default_factory=list)
    consumed_signals: dict[int, int] = field(default_factory=dict)
    outcomes: list[tuple[int, LiveOutcome]] = field(default_factory=list)  # (scheduled seq, outcome)


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
