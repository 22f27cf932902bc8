"""The live tail: what a command journals when the workflow asks for it past the end of its
journal, and when a started command is resolved.

Starts: ``activity_scheduled`` (with a new task), ``timer_started`` (with a timer),
``signal_awaited`` (with a timeout timer), or only ``signal_received`` when the signal is already
in the mailbox at the await (v0.2: no ``signal_awaited``, no timeout timer). Resolutions name
their start by seq: ``activity_completed`` / ``activity_failed`` from an outcome the engine
holds, ``timer_fired`` once the clock reaches it, ``signal_received`` with ``awaited_seq`` (a
signal that arrives first wins over its timeout, and the other way round).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from ..definitions.children import ChildCommand
from ..definitions.commands import (
    ActivityCommand,
    Command,
    CompensationCommand,
    SignalCommand,
    TimerCommand,
)
from ..store.base import Event, SignalRecord
from ..store.payloads import check_json
from .children import cancel_child, resolve_child, start_child
from .journal import Answer, answer_of
from .outcomes import Batch, Blocked, Resolver, ScheduledActivity, StartedTimer

__all__ = ["Offline", "Record", "blocked_on", "cancel_started", "not_awaitable", "resolve_started", "start_command"]

#: What each scheduled kind journals: (start, completed, failed).
_ACTIVITY_EVENTS = {"activity_scheduled": ("activity_completed", "activity_failed"),
                    "compensation_scheduled": ("compensation_completed", "compensation_failed")}

#: Appends one event at the live tail (to the journal index and the wake's batch).
Record = Callable[[str, dict[str, Any]], Event]


def start_command(cmd: Command, ordinal: int, resolver: Resolver, batch: Batch,
                  record: Record, run_id: str = "") -> Answer | None:
    """Journal the start of ``cmd``; returns its answer when the start answers itself (a signal
    already in the mailbox, a refused child), else None. ``run_id``: the run's (children's ids
    derive from it)."""
    if isinstance(cmd, ChildCommand):
        return start_child(cmd, ordinal, run_id, resolver, batch, record)
    now = resolver.now()
    if isinstance(cmd, ActivityCommand):
        assert cmd.activity is not None
        # Checked here, at the live tail, where they are journaled (replay skips the cost).
        check_json(cmd.args, f"arguments of activity {cmd.target!r}")
        check_json(cmd.kwargs, f"keyword arguments of activity {cmd.target!r}")
        try:
            key = cmd.activity.key_for(cmd.args, cmd.kwargs)
        except (TypeError, ValueError):
            raise
        except BaseException as exc:  # the user's key function: raised at the await, never obeyed
            raise ValueError(
                f"the idempotency_key function of activity {cmd.target!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        task_id = uuid.uuid4()
        ev = record("compensation_scheduled" if isinstance(cmd, CompensationCommand) else "activity_scheduled", {
            "activity": cmd.target, "ordinal": ordinal, "args": cmd.args, "kwargs": cmd.kwargs,
            "idempotency_key": key, "task_id": str(task_id),
        })
        batch.activities.append(ScheduledActivity(task_id, ev.seq, cmd.target, cmd.args, cmd.kwargs, key))
        return None
    if isinstance(cmd, TimerCommand):
        fire_at = now + timedelta(seconds=cmd.seconds)
        tid = uuid.uuid4()
        ev = record("timer_started", {"ordinal": ordinal, "duration_s": cmd.seconds,
                                      "fire_at": fire_at.isoformat(), "timer_id": str(tid)})
        batch.timers.append(StartedTimer(tid, ev.seq, fire_at))
        return None
    if isinstance(cmd, SignalCommand):
        return _await_signal(cmd, ordinal, now, resolver, batch, record)
    raise TypeError(f"unknown command {cmd!r}")


def _await_signal(cmd: SignalCommand, ordinal: int, now: datetime, resolver: Resolver, batch: Batch,
                  record: Record) -> Answer | None:
    sig = resolver.signal(cmd.target, set(batch.consumed_signals))
    if sig is not None:
        # Already in the mailbox: only signal_received, no timeout timer (v0.2).
        ev = record("signal_received", {"name": cmd.target, "ordinal": ordinal, "payload": sig.payload,
                                        "signal_id": sig.id, "awaited_seq": None})
        batch.consumed_signals[sig.id] = ev.seq
        return answer_of(ev)
    payload: dict[str, Any] = {"name": cmd.target, "ordinal": ordinal, "timeout_s": cmd.timeout,
                               "timeout_at": None, "timer_id": None}
    timeout_at = None
    if cmd.timeout is not None:
        timeout_at = now + timedelta(seconds=cmd.timeout)
        payload["timeout_at"] = timeout_at.isoformat()
        payload["timer_id"] = str(uuid.uuid4())
    ev = record("signal_awaited", payload)
    if timeout_at is not None:
        batch.timers.append(StartedTimer(uuid.UUID(payload["timer_id"]), ev.seq, timeout_at))
    return None


def resolve_started(start: Event, resolver: Resolver, batch: Batch, record: Record) -> Event | None:
    """Journal the resolution of a started command if it is resolved now, else None."""
    now = resolver.now()
    names = _ACTIVITY_EVENTS.get(start.event_type)
    if names is not None:
        out = resolver.task_outcome(start.seq)
        if out is None:
            return None
        if out.local:
            batch.outcomes.append((start.seq, out))
        common = {"activity": start.payload["activity"], "scheduled_seq": start.seq, "attempts": out.attempts}
        if out.state == "completed":
            return record(names[0], {**common, "result": out.result, "idempotency_hit": out.idempotency_hit})
        return record(names[1], {**common, "error": out.error})
    if start.event_type == "timer_started":
        fire_at = datetime.fromisoformat(start.payload["fire_at"])
        if now < fire_at:
            return None
        batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
        return record("timer_fired", {"started_seq": start.seq, "fire_at": start.payload["fire_at"]})
    if start.event_type == "signal_awaited":
        return _signal_or_timeout(start, now, resolver, batch, record)
    if start.event_type == "child_started":
        return resolve_child(start, resolver, record)
    return None


def _signal_or_timeout(start: Event, now: datetime, resolver: Resolver, batch: Batch,
                       record: Record) -> Event | None:
    """Whichever comes first under the run lock: the signal, or its timeout."""
    name = start.payload["name"]
    sig = resolver.signal(name, set(batch.consumed_signals))
    if sig is not None:
        ev = record("signal_received",
                    {"name": name, "payload": sig.payload, "signal_id": sig.id, "awaited_seq": start.seq})
        batch.consumed_signals[sig.id] = ev.seq
        if start.payload.get("timer_id"):
            batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
        return ev
    timeout_at = start.payload.get("timeout_at")
    if timeout_at and now >= datetime.fromisoformat(timeout_at):
        batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
        return record("timer_fired", {"started_seq": start.seq, "fire_at": timeout_at,
                                      "timeout_s": start.payload.get("timeout_s"), "signal": name})
    return None


def cancel_started(start: Event, batch: Batch, record: Record) -> Event:
    """Journal a start ``cn.first`` no longer waits for as cancelled: its timer (or signal
    timeout) is dropped; an activity's task finishes, but its outcome is never journaled."""
    p = start.payload
    if start.event_type == "timer_started":
        batch.fired_timers.append(uuid.UUID(p["timer_id"]))
        return record("timer_cancelled", {"started_seq": start.seq})
    if start.event_type == "signal_awaited":
        if p.get("timer_id"):
            batch.fired_timers.append(uuid.UUID(p["timer_id"]))
        return record("signal_cancelled", {"awaited_seq": start.seq, "name": p["name"]})
    if start.event_type == "child_started":
        return cancel_child(start, batch, record)
    return record("activity_cancelled", {"scheduled_seq": start.seq, "activity": p["activity"]})


def blocked_on(starts: Iterable[Event]) -> Blocked:
    """What a workflow waiting on these unresolved starts waits for: the earliest timer or
    signal timeout, the signal names, the scheduled activities' seqs."""
    wake: datetime | None = None
    names: list[str] = []
    acts: list[int] = []
    kids: list[str] = []
    for start in starts:
        p = start.payload
        at = None
        if start.event_type == "timer_started":
            at = p["fire_at"]
        elif start.event_type == "signal_awaited":
            names.append(p["name"])
            at = p.get("timeout_at")
        elif start.event_type in _ACTIVITY_EVENTS:
            acts.append(start.seq)
        elif start.event_type == "child_started" and p.get("child_run_id"):
            kids.append(p["child_run_id"])
        if at:
            t = datetime.fromisoformat(at)
            wake = t if wake is None or t < wake else wake
    return Blocked(wake, names, acts, kids)


class Offline:
    """The live tail of a replay that must write nothing and ask no store (a read-only check,
    an exported history, time travel): no outcome past the journal, no pending signal, and a
    clock that stands still at ``at``."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def task_outcome(self, seq: int) -> None:
        return None

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None:
        return None


def not_awaitable(workflow: str, awaited: Any) -> TypeError:
    """The error a workflow that awaited something else than a command gets."""
    return TypeError(
        f"workflow {workflow!r} awaited {awaited!r}, which is not a continuum awaitable; "
        "inside a workflow await only activities, cn.signal(), cn.timer(), cn.child(), cn.gather() and cn.first() "
        "(asyncio and other libraries cannot be awaited: move that code into an @cn.activity)"
    )
