"""The vocabulary of replay: command identity of journal events, what a drive step ends in,
what a wake records, and what the live tail may consult. Pure data; no I/O."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..store.base import Event, SignalRecord

__all__ = [
    "START_TYPES",
    "Answer",
    "Batch",
    "Blocked",
    "Completed",
    "Drifted",
    "Failed",
    "History",
    "LiveOutcome",
    "Resolver",
    "ScheduledActivity",
    "StartedTimer",
    "answer_of",
    "error_dict",
    "identity_of",
    "is_start",
    "resolved_seq",
]

START_TYPES = frozenset({"activity_scheduled", "timer_started", "signal_awaited", "side_effect"})


def identity_of(ev: Event) -> tuple[str, str]:
    """(kind, target) of a command-start event."""
    p = ev.payload
    t = ev.event_type
    if t == "activity_scheduled":
        return ("activity", p["activity"])
    if t == "timer_started":
        return ("timer", "timer")
    if t in ("signal_awaited", "signal_received"):
        return ("signal", p["name"])
    if t == "side_effect":
        return ("side_effect", p["kind"])
    raise ValueError(f"{t} is not a command-start event")


def is_start(ev: Event) -> bool:
    return ev.event_type in START_TYPES or (
        ev.event_type == "signal_received" and ev.payload.get("awaited_seq") is None
    )


def resolved_seq(ev: Event) -> int | None:
    p = ev.payload
    if ev.event_type in ("activity_completed", "activity_failed"):
        return int(p["scheduled_seq"])
    if ev.event_type == "timer_fired":
        return int(p["started_seq"])
    if ev.event_type == "signal_received" and p.get("awaited_seq") is not None:
        return int(p["awaited_seq"])
    return None


# What replay answers a command with, per start seq: (event type, data) where data is the
# activity result, the failed activity's payload (activity, attempts, error), a timer_fired's
# timeout_s, a received signal's payload, or a side effect's value. A pair instead of the Event
# so that a snapshot can be indexed without building one Event (and payload dict) per step.
Answer = tuple[str, Any]


def answer_of(ev: Event) -> Answer:
    """The answer a resolution event (or a side_effect / signal_received start) stands for."""
    t, p = ev.event_type, ev.payload
    if t == "activity_completed":
        return (t, p.get("result"))
    if t == "activity_failed":
        return (t, p)
    if t == "timer_fired":
        return (t, p.get("timeout_s"))
    if t == "signal_received":
        return (t, p.get("payload"))
    if t == "side_effect":
        return (t, p.get("value"))
    return (t, None)


@dataclass
class History:
    """A journal prefix already in the shape the Replayer indexes it (what a snapshot decodes to).

    Starts are in journal order; ``answers`` maps a start's seq to its answer (first resolution
    in journal order wins; a side_effect or an already-delivered signal_received answers itself).
    Events are only built on demand: ``start_event(i)`` for one start (drift messages, the live
    tail, the runner's ``start_by_seq``), ``events()`` for the whole prefix (a new snapshot).
    """

    start_ids: list[tuple[str, str, int | None]]  # (kind, target, ordinal) per start
    start_seqs: list[int]
    answers: dict[int, Answer]
    last_seq: int
    start_event: Callable[[int], Event]
    events: Callable[[], list[Event]]


# ------------------------------------------------------------------------------------------
# what a drive step ends in
# ------------------------------------------------------------------------------------------


@dataclass
class Completed:
    result: Any


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
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }
