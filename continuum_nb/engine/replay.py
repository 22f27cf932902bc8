"""Drives a workflow coroutine against its journal. Pure logic: no I/O.

The coroutine re-executes from the top. Every command it yields (and every deterministic
primitive it calls) is matched against the journal at the cursor by *command identity*: effect
kind + target (activity name / signal name / side-effect kind / "timer") + ordinal among equal
targets. A mismatch is drift: nothing is recorded, and the caller marks the run ``drifted`` with
both sides of the mismatch. Past the end of the journal (the live tail) commands are recorded as
new events into the current batch, which the caller commits in one transaction.

Journal shape (docs/events.md):
- command-start events: activity_scheduled, timer_started, signal_awaited, side_effect, and
  signal_received *without* ``awaited_seq`` (the signal was already in the mailbox at the await);
- resolution events, which name their start by seq: activity_completed / activity_failed
  (``scheduled_seq``), timer_fired (``started_seq``: a timer_started, or the signal_awaited it
  times out), signal_received with ``awaited_seq``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from .. import _context
from .._json import check_json
from ..errors import ActivityFailed, SignalTimeout
from ..store.base import Event
from ..workflow import ActivityCommand, Command, GatherCommand, SignalCommand, TimerCommand
from .steps import (
    Batch,
    Blocked,
    Completed,
    Drifted,
    Failed,
    LiveOutcome,
    Resolver,
    ScheduledActivity,
    StartedTimer,
    error_dict,
    identity_of,
    is_start,
    resolved_seq,
)

# Re-exported: the engine and tests import these from here.
__all__ = [
    "Blocked",
    "Completed",
    "Drifted",
    "Failed",
    "LiveOutcome",
    "Replayer",
    "Resolver",
    "ScheduledActivity",
    "StartedTimer",
    "error_dict",
    "identity_of",
]


class _DriftSignal(BaseException):
    """Raised inside workflow code to abort it on drift (BaseException: `except Exception`
    in workflow code cannot swallow it)."""


class _Slot:
    """One command being answered (a gather has children). Plain slots class: replay creates
    one per journaled command, so it must be cheap."""

    __slots__ = ("cmd", "ordinal", "start", "children", "resolution", "done", "value", "exc")

    def __init__(self, cmd: Command, ordinal: int) -> None:
        self.cmd = cmd
        self.ordinal = ordinal
        self.start: Event | None = None
        self.children: list[_Slot] = []
        self.resolution: Event | None = None
        self.done = False
        self.value: Any = None
        self.exc: BaseException | None = None


class Replayer:
    """Holds one run's coroutine and its position in the journal.

    Lives as long as the coroutine is kept in memory; discard it when the lease is lost or the
    commit fails (its batch was never written).
    """

    def __init__(
        self,
        run_id: str,
        workflow: str,
        coro_factory: Callable[[], Coroutine[Any, Any, Any]],
        journal: list[Event],
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self._factory = coro_factory
        self._coro: Coroutine[Any, Any, Any] | None = None
        self.events: list[Event] = []  # the whole known journal (snapshots are built from it)
        self._starts: list[Event] = []
        self._start_ids: list[tuple[str, str, int | None]] = []  # (kind, target, ordinal) per start
        self.start_by_seq: dict[int, Event] = {}
        self._resolutions: dict[int, Event] = {}
        self.last_seq = 0
        for ev in journal:
            self._index(ev)
        self.replay_events = len(self._starts)
        self._cursor = 0
        self._ordinals: dict[tuple[str, str], int] = {}
        self._blocked: _Slot | None = None
        self._resolver: Resolver | None = None
        self.batch = Batch()
        self.finished = False

    # --- journal index ---------------------------------------------------------------------
    def _index(self, ev: Event) -> None:
        self.events.append(ev)
        if ev.seq > self.last_seq:
            self.last_seq = ev.seq
        if is_start(ev):
            self._starts.append(ev)
            kind, target = identity_of(ev)
            self._start_ids.append((kind, target, ev.payload.get("ordinal")))
            self.start_by_seq[ev.seq] = ev
            return
        rs = resolved_seq(ev)
        if rs is not None and rs not in self._resolutions:
            self._resolutions[rs] = ev

    def unresolved_activities(self) -> list[int]:
        return [
            ev.seq for ev in self._starts
            if ev.event_type == "activity_scheduled" and ev.seq not in self._resolutions
        ]

    @property
    def replaying(self) -> bool:
        return self._cursor < len(self._starts)

    def _record(self, event_type: str, payload: dict[str, Any]) -> Event:
        ev = Event(self.last_seq + 1, event_type, payload)
        self._index(ev)
        if is_start(ev):
            self._cursor = len(self._starts)  # recorded at the live tail
        self.batch.events.append(ev)
        return ev

    # --- the workflow context (cn.now() etc. call side_effect) ----------------------------
    def now(self) -> datetime:
        assert self._resolver is not None
        return self._resolver.now()

    def _next_ordinal(self, kind: str, target: str) -> int:
        key = (kind, target)
        n = self._ordinals.get(key, 0)
        self._ordinals[key] = n + 1
        return n

    def side_effect(self, kind: str, compute: Callable[[], Any]) -> Any:
        ordinal = self._next_ordinal("side_effect", kind)
        if self.replaying:
            ev = self._starts[self._cursor]
            self._match(ev, "side_effect", kind, ordinal)
            self._cursor += 1
            return ev.payload.get("value")
        value = compute()
        check_json(value, f"value of {kind}()")
        self._record("side_effect", {"kind": kind, "ordinal": ordinal, "value": value})
        return value

    # --- drift ------------------------------------------------------------------------------
    drift: dict[str, Any] | None = None

    def _drift(self, message: str, expected: Event | None, actual: dict[str, Any]) -> _DriftSignal:
        exp = None
        if expected is not None:
            kind, target = identity_of(expected)
            exp = {
                "kind": kind,
                "target": target,
                "ordinal": expected.payload.get("ordinal"),
                "event_type": expected.event_type,
                "seq": expected.seq,
            }
        self.drift = {
            "type": "drift",
            "message": message,
            "position": self._cursor,
            "seq": expected.seq if expected is not None else None,
            "expected": exp,
            "actual": actual,
        }
        return _DriftSignal(message)

    def _match(self, ev: Event, kind: str, target: str, ordinal: int) -> None:
        ek, et, eo = self._start_ids[self._cursor]
        if ek != kind or et != target or (eo is not None and eo != ordinal):
            raise self._drift(
                f"the workflow now asks for {kind} {target!r} (#{ordinal}) where the journal has "
                f"{ek} {et!r} (#{eo}, seq {ev.seq})",
                ev,
                {"kind": kind, "target": target, "ordinal": ordinal},
            )

    # --- opening and resolving commands ------------------------------------------------------
    def _open(self, cmd: Command) -> _Slot:
        if isinstance(cmd, GatherCommand):
            slot = _Slot(cmd, 0)
            slot.children = [self._open(c) for c in cmd.children]
            return slot
        ordinal = self._next_ordinal(cmd.kind, cmd.target)
        slot = _Slot(cmd, ordinal)
        if self._cursor < len(self._starts):
            ev = self._starts[self._cursor]
            self._match(ev, cmd.kind, cmd.target, ordinal)
            self._cursor += 1
            slot.start = ev
            if ev.event_type == "signal_received":  # delivered at the await: start = resolution
                slot.resolution = ev
            else:
                slot.resolution = self._resolutions.get(ev.seq)
            return slot
        slot.start = self._record_start(cmd, ordinal, slot)
        return slot

    def _record_start(self, cmd: Command, ordinal: int, slot: _Slot) -> Event:
        assert self._resolver is not None
        now = self._resolver.now()
        if isinstance(cmd, ActivityCommand):
            assert cmd.activity is not None
            # Checked here, at the live tail, where they are journaled (replay skips the cost).
            check_json(cmd.args, f"arguments of activity {cmd.target!r}")
            check_json(cmd.kwargs, f"keyword arguments of activity {cmd.target!r}")
            key = cmd.activity.key_for(cmd.args, cmd.kwargs)
            task_id = uuid.uuid4()
            ev = self._record(
                "activity_scheduled",
                {
                    "activity": cmd.target,
                    "ordinal": ordinal,
                    "args": cmd.args,
                    "kwargs": cmd.kwargs,
                    "idempotency_key": key,
                    "task_id": str(task_id),
                },
            )
            self.batch.activities.append(
                ScheduledActivity(task_id, ev.seq, cmd.target, cmd.args, cmd.kwargs, key)
            )
            return ev
        if isinstance(cmd, TimerCommand):
            fire_at = now + timedelta(seconds=cmd.seconds)
            tid = uuid.uuid4()
            ev = self._record(
                "timer_started",
                {"ordinal": ordinal, "duration_s": cmd.seconds, "fire_at": fire_at.isoformat(), "timer_id": str(tid)},
            )
            self.batch.timers.append(StartedTimer(tid, ev.seq, fire_at))
            return ev
        if isinstance(cmd, SignalCommand):
            sig = self._resolver.signal(cmd.target, set(self.batch.consumed_signals))
            if sig is not None:
                # Already in the mailbox: only signal_received, no timeout timer (v0.2).
                ev = self._record(
                    "signal_received",
                    {"name": cmd.target, "ordinal": ordinal, "payload": sig.payload,
                     "signal_id": sig.id, "awaited_seq": None},
                )
                self.batch.consumed_signals[sig.id] = ev.seq
                slot.resolution = ev
                return ev
            payload: dict[str, Any] = {"name": cmd.target, "ordinal": ordinal, "timeout_s": cmd.timeout,
                                       "timeout_at": None, "timer_id": None}
            timeout_at = None
            if cmd.timeout is not None:
                timeout_at = now + timedelta(seconds=cmd.timeout)
                payload["timeout_at"] = timeout_at.isoformat()
                payload["timer_id"] = str(uuid.uuid4())
            ev = self._record("signal_awaited", payload)
            if timeout_at is not None:
                self.batch.timers.append(StartedTimer(uuid.UUID(payload["timer_id"]), ev.seq, timeout_at))
            return ev
        raise TypeError(f"unknown command {cmd!r}")

    def _resolve(self, slot: _Slot) -> bool:
        """Try to resolve a slot (recording resolution events at the live tail). True when done."""
        if slot.done:
            return True
        if isinstance(slot.cmd, GatherCommand):
            # Resolve every child (each may record its resolution), then answer in order.
            states = [self._resolve(c) for c in slot.children]
            if not all(states):
                return False
            slot.done = True
            slot.value = [c.value for c in slot.children]
            slot.exc = next((c.exc for c in slot.children if c.exc is not None), None)
            return True
        if slot.resolution is None and not self.replaying:
            slot.resolution = self._resolve_live(slot)
        if slot.resolution is None:
            return False
        self._apply(slot, slot.resolution)
        return True

    def _apply(self, slot: _Slot, ev: Event) -> None:
        p = ev.payload
        slot.done = True
        if ev.event_type == "activity_completed":
            slot.value = p.get("result")
        elif ev.event_type == "activity_failed":
            err = p.get("error") or {}
            slot.exc = ActivityFailed(
                f"activity {p.get('activity')!r} failed after {p.get('attempts')} attempt(s): "
                f"{err.get('type', 'error')}: {err.get('message', '')}",
                activity=p.get("activity"),
                error_type=err.get("type"),
                attempts=p.get("attempts"),
            )
        elif ev.event_type == "timer_fired":
            if slot.cmd.kind == "signal":
                slot.exc = SignalTimeout(
                    f"signal {slot.cmd.target!r} did not arrive within {p.get('timeout_s')}s"
                )
            else:
                slot.value = None
        elif ev.event_type == "signal_received":
            slot.value = p.get("payload")

    def _resolve_live(self, slot: _Slot) -> Event | None:
        assert self._resolver is not None and slot.start is not None
        start = slot.start
        now = self._resolver.now()
        if start.event_type == "activity_scheduled":
            out = self._resolver.task_outcome(start.seq)
            if out is None:
                return None
            if out.local:
                self.batch.outcomes.append((start.seq, out))
            common = {"activity": start.payload["activity"], "scheduled_seq": start.seq, "attempts": out.attempts}
            if out.state == "completed":
                return self._record(
                    "activity_completed", {**common, "result": out.result, "idempotency_hit": out.idempotency_hit}
                )
            return self._record("activity_failed", {**common, "error": out.error})
        if start.event_type == "timer_started":
            fire_at = datetime.fromisoformat(start.payload["fire_at"])
            if now < fire_at:
                return None
            self.batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
            return self._record("timer_fired", {"started_seq": start.seq, "fire_at": start.payload["fire_at"]})
        if start.event_type == "signal_awaited":
            name = start.payload["name"]
            sig = self._resolver.signal(name, set(self.batch.consumed_signals))
            if sig is not None:
                ev = self._record(
                    "signal_received",
                    {"name": name, "payload": sig.payload, "signal_id": sig.id, "awaited_seq": start.seq},
                )
                self.batch.consumed_signals[sig.id] = ev.seq
                if start.payload.get("timer_id"):
                    self.batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
                return ev
            timeout_at = start.payload.get("timeout_at")
            if timeout_at and now >= datetime.fromisoformat(timeout_at):
                self.batch.fired_timers.append(uuid.UUID(start.payload["timer_id"]))
                return self._record(
                    "timer_fired",
                    {"started_seq": start.seq, "fire_at": timeout_at, "timeout_s": start.payload.get("timeout_s"),
                     "signal": name},
                )
            return None
        return None

    def _blocked_state(self, slot: _Slot) -> Blocked:
        wake: datetime | None = None
        names: list[str] = []
        acts: list[int] = []

        def visit(s: _Slot) -> None:
            nonlocal wake
            if s.done:
                return
            for c in s.children:
                visit(c)
            if s.start is None:
                return
            p = s.start.payload
            at = None
            if s.start.event_type == "timer_started":
                at = p["fire_at"]
            elif s.start.event_type == "signal_awaited":
                names.append(p["name"])
                at = p.get("timeout_at")
            elif s.start.event_type == "activity_scheduled":
                acts.append(s.start.seq)
            if at:
                t = datetime.fromisoformat(at)
                wake = t if wake is None or t < wake else wake

        visit(slot)
        return Blocked(wake, names, acts)

    # --- driving ------------------------------------------------------------------------------
    def advance(self, resolver: Resolver) -> Completed | Failed | Drifted | Blocked:
        """Run the coroutine until it blocks on something unresolved, returns, or fails.
        Recorded events accumulate in ``self.batch`` (reset it after a commit)."""
        self._resolver = resolver
        send: Any = None
        throw: BaseException | None = None
        with _context.active(self):
            if self._coro is None:
                try:
                    self._coro = self._factory()
                except Exception as exc:  # bad input for the workflow's signature, etc.
                    return self._finish(Failed(error_dict(exc)))
            elif self._blocked is not None:
                try:
                    if not self._resolve(self._blocked):
                        if self.replaying:
                            return self._drift_blocked(self._blocked)
                        return self._blocked_state(self._blocked)
                except _DriftSignal:
                    return self._finish(Drifted(self.drift or {}))
                send, throw = self._blocked.value, self._blocked.exc
                self._blocked = None
            while True:
                try:
                    if throw is not None:
                        cmd = self._coro.throw(throw)
                    else:
                        cmd = self._coro.send(send)
                except StopIteration as stop:
                    if self.drift:
                        return self._finish(Drifted(self.drift))
                    if self.replaying:
                        return self._drift_end(f"returned {stop.value!r:.80}")
                    try:
                        check_json(stop.value, f"result of workflow {self.workflow!r}")
                    except TypeError as exc:
                        return self._finish(Failed(error_dict(exc)))
                    return self._finish(Completed(stop.value))
                except _DriftSignal:
                    return self._finish(Drifted(self.drift or {}))
                except Exception as exc:
                    if self.drift:
                        return self._finish(Drifted(self.drift))
                    if self.replaying:
                        return self._drift_end(f"raised {type(exc).__name__}: {exc}")
                    if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
                        exc = TypeError(
                            f"workflow {self.workflow!r} used asyncio, which is not a continuum awaitable: workflows "
                            "never run on an event loop; use cn.timer() instead of asyncio.sleep() and move other "
                            "async I/O into an @cn.activity"
                        )
                    return self._finish(Failed(error_dict(exc)))
                if self.drift:  # workflow code swallowed the drift signal (bare except)
                    return self._finish(Drifted(self.drift))
                if not isinstance(cmd, Command):
                    exc2 = TypeError(
                        f"workflow {self.workflow!r} awaited {cmd!r}, which is not a continuum awaitable; "
                        "inside a workflow await only activities, cn.signal(), cn.timer() and cn.gather() "
                        "(asyncio and other libraries cannot be awaited: move that code into an @cn.activity)"
                    )
                    send, throw = None, exc2
                    continue
                try:
                    slot = self._open(cmd)
                    done = self._resolve(slot)
                except _DriftSignal:
                    return self._finish(Drifted(self.drift or {}))
                except TypeError as exc:  # non-JSON activity arguments: raised at the await
                    send, throw = None, exc
                    continue
                if not done:
                    self._blocked = slot
                    if self.replaying:
                        return self._drift_blocked(slot)
                    return self._blocked_state(slot)
                send, throw = slot.value, slot.exc

    def _drift_blocked(self, slot: _Slot) -> Drifted:
        ev = self._starts[self._cursor]
        kind, target = slot.cmd.kind, slot.cmd.target
        self._drift(
            f"the workflow now waits on {kind} {target!r} (#{slot.ordinal}) that has no outcome yet, but "
            f"the journal goes on with {ev.event_type} (seq {ev.seq})",
            ev,
            {"kind": kind, "target": target, "ordinal": slot.ordinal, "waiting": True},
        )
        return self._finish(Drifted(self.drift or {}))

    def _drift_end(self, what: str) -> Drifted:
        ev = self._starts[self._cursor]
        self._drift(
            f"the workflow {what} but the journal has {len(self._starts) - self._cursor} more command(s), "
            f"starting with {ev.event_type} (seq {ev.seq})",
            ev,
            {"kind": "end", "target": what[:200], "ordinal": None},
        )
        return self._finish(Drifted(self.drift or {}))

    def _finish(self, outcome: Any) -> Any:
        self.finished = True
        if self._coro is not None:
            try:
                self._coro.close()
            except BaseException:  # noqa: S110 - a workflow that refuses to close is abandoned
                pass
        return outcome

    def reset_batch(self) -> None:
        self.batch = Batch()
