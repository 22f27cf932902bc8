"""Drives a workflow coroutine against its journal. Pure logic: no I/O.

The coroutine re-executes from the top. Every command it yields (and every deterministic
primitive it calls) is matched against the journal at the cursor by *command identity*: effect
kind + target (activity name / signal name / side-effect kind / "timer") + ordinal among equal
targets. A mismatch is drift: nothing is recorded, and the caller marks the run ``drifted`` with
both sides of the mismatch. Past the end of the journal (the live tail) commands are recorded as
new events into the current batch, which the caller commits in one transaction.

Journal shape (docs/events.md): command-start events, matched by identity at the cursor, and
resolution events, which name their start by seq (replay/journal.py indexes both).
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from ..definitions.children import ChildResultCommand, StartChildCommand
from ..definitions.commands import Command, FirstCommand, GatherCommand
from ..definitions.context import active
from ..store.base import Event
from ..store.payloads import check_json, storable_text
from . import continuation
from .drift import DriftSignal, drift_report, end_message, mismatch_message, waiting_message
from .journal import Answer, JournalIndex, StartsBySeq, answer_of, outcome_of
from .live import blocked_on, cancel_started, not_awaitable, resolve_started, start_command
from .outcomes import Batch, Blocked, Completed, Continued, Drifted, Failed, Resolver, error_dict

__all__ = ["Replayer"]


_MISSING: Any = object()


class _Slot:
    """One command being answered (a gather has children). Plain slots class. Replaying a
    resolved single command takes a fast path in ``advance`` that creates no slot at all."""

    __slots__ = ("cmd", "ordinal", "start", "children", "resolution", "done", "value", "exc")

    def __init__(self, cmd: Command, ordinal: int) -> None:
        self.cmd = cmd
        self.ordinal = ordinal
        self.start = -1  # index of its start among the replayer's starts (-1: none, a gather)
        self.children: list[_Slot] = []
        self.resolution: Answer | None = None
        self.done = False
        self.value: Any = None
        self.exc: BaseException | None = None


class Replayer:
    """Holds one run's coroutine and its position in the journal.

    Lives as long as the coroutine is kept in memory; discard it when the lease is lost or the
    commit fails (its batch was never written).
    """

    def __init__(self, run_id: str, workflow: str, coro_factory: Callable[[], Coroutine[Any, Any, Any]],
                 journal: list[Event]) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self._factory = coro_factory
        self._coro: Coroutine[Any, Any, Any] | None = None
        self._ix = JournalIndex()  # the journal as replay reads it (steps.py)
        for ev in journal:
            self._ix.add(ev)
        self.start_by_seq: Mapping[int, Event] = StartsBySeq(self._ix)
        self.replay_events = len(self._ix.seqs)
        self._cursor = 0
        # ordinal counters per kind, then per target (no tuple key to build per command)
        self._ordinals: dict[str, dict[str, int]] = {}
        self._blocked: _Slot | None = None
        self._resolver: Resolver | None = None
        self._patches: dict[str, bool] = {}  # what cn.patched(name) decided in this run
        self._logs_seen: dict[int, int] = {}  # cn.log calls per number of commands before them
        self.batch = Batch()
        self.finished = False

    @classmethod
    def from_index(
        cls,
        run_id: str,
        workflow: str,
        coro_factory: Callable[[], Coroutine[Any, Any, Any]],
        index: JournalIndex,
        rest: list[Event],
    ) -> Replayer:
        """A replayer over an indexed prefix (a decoded snapshot) plus the events after it; every
        start of the prefix is still matched against the workflow's commands."""
        rep = cls(run_id, workflow, coro_factory, [])
        rep._ix = index
        rep.start_by_seq = StartsBySeq(index)
        for ev in rest:
            index.add(ev)
        rep.replay_events = len(index.seqs)
        return rep

    # --- journal index ---------------------------------------------------------------------
    @property
    def events(self) -> list[Event]:
        """The whole known journal (snapshots are built from it)."""
        return self._ix.all_events()

    @property
    def last_seq(self) -> int:
        return self._ix.last_seq

    def unresolved_activities(self) -> list[int]:
        return self._ix.unresolved_activities()

    @property
    def replaying(self) -> bool:
        return self._cursor < len(self._ix.seqs)

    def _record(self, event_type: str, payload: dict[str, Any]) -> Event:
        ev = Event(self._ix.last_seq + 1, event_type, payload)
        starts = len(self._ix.seqs)
        self._ix.add(ev)
        if len(self._ix.seqs) > starts:
            self._cursor = len(self._ix.seqs)  # recorded at the live tail
        self.batch.events.append(ev)
        return ev

    # --- the workflow context (cn.now() etc. call side_effect) ----------------------------
    def now(self) -> datetime:
        assert self._resolver is not None
        return self._resolver.now()

    def _next_ordinal(self, kind: str, target: str) -> int:
        counts = self._ordinals.get(kind)
        if counts is None:
            counts = self._ordinals[kind] = {}
        n = counts.get(target, 0)
        counts[target] = n + 1
        return n

    def side_effect(self, kind: str, compute: Callable[[], Any]) -> Any:
        ordinal = self._next_ordinal("side_effect", kind)
        if self.replaying:
            i = self._cursor
            self._match(i, "side_effect", kind, ordinal)
            self._cursor = i + 1
            # a matched side_effect start answers itself with its value (see JournalIndex.add)
            answer = self._ix.answer(self._ix.seqs[i])
            return None if answer is None else answer[1]
        value = compute()
        check_json(value, f"value of {kind}()")
        self._record("side_effect", {"kind": kind, "ordinal": ordinal, "value": value})
        return value

    def patched(self, name: str, deprecated: bool) -> bool:
        """``cn.patched`` (``deprecated``: ``cn.deprecate_patch``), decided once per run and name:
        journaled at the live tail (True); replaying, the marker at the cursor is consumed (True);
        none ahead: recorded before the patch (False); one further ahead: the patch moved (drift)."""
        known = self._patches.get(name)
        if known is not None:
            return known
        ix, i = self._ix, self._cursor
        if i >= len(ix.seqs):
            self._record("patched", {"name": name, "ordinal": 0, "deprecated": deprecated})
            decided = True
        elif ix.kinds[i] == "patched" and ix.targets[i] == name:
            self._cursor = i + 1
            decided = True
        else:
            ahead = any(k == "patched" and t == name for k, t in zip(ix.kinds[i:], ix.targets[i:], strict=True))
            if ahead and not deprecated:
                self._match(i, "patched", name, 0)  # raises: the journal has another command here
            decided = False
        self._patches[name] = decided
        return decided

    def log(self, message: str, fields: dict[str, Any], level: str) -> None:
        """``cn.log``: journaled as ``workflow_log`` at the live tail only (a replay re-runs the
        call and records nothing). Not a command: adding or removing a log line is never drift.
        (self._logs_seen and JournalIndex.logs_at count the log lines at the journal's end.)"""
        if self.replaying:
            return
        # At the end of the journal's commands: the logs already journaled there were written by
        # an earlier wake that ended here (its run completed, or its code has moved on since).
        at = self._cursor
        n = self._logs_seen[at] = self._logs_seen.get(at, 0) + 1
        if n > self._ix.logs_at.get(at, 0):
            self._record("workflow_log", {"message": storable_text(message), "level": level, "fields": fields})

    def continue_as_new(self, input: dict[str, Any], version: str) -> BaseException:
        return continuation.request(self, input, version)  # cn.continue_as_new: its journaling

    # --- drift ------------------------------------------------------------------------------
    drift: dict[str, Any] | None = None
    continued: Continued | None = None  # cn.continue_as_new was called: how the run ends

    def _drift(self, message: str, expected_index: int | None, actual: dict[str, Any]) -> DriftSignal:
        expected = None if expected_index is None else self._ix.start_event(expected_index)
        self.drift = drift_report(message, self._cursor, expected, actual)
        return DriftSignal(message)

    def _match(self, i: int, kind: str, target: str, ordinal: int) -> None:
        """Check the command against start ``i`` (the cursor): same kind, target and ordinal."""
        ix = self._ix
        ek, et, eo = ix.kinds[i], ix.targets[i], ix.ordinals[i]
        if ek != kind or et != target or (eo is not None and eo != ordinal):
            raise self._drift(mismatch_message((kind, target, ordinal), (ek, et, eo, ix.seqs[i])), i,
                              {"kind": kind, "target": target, "ordinal": ordinal})

    # --- opening and resolving commands ------------------------------------------------------
    def _open(self, cmd: Command) -> _Slot:
        if isinstance(cmd, GatherCommand):
            slot = _Slot(cmd, 0)
            slot.children = [self._open(c) for c in cmd.children]
            return slot
        if isinstance(cmd, ChildResultCommand):  # ``await handle``: the child's start, no new one
            slot = _Slot(cmd, 0)
            slot.start = bisect_left(self._ix.seqs, cmd.started_seq)
            slot.resolution = self._ix.answer(cmd.started_seq)
            return slot
        ordinal = self._next_ordinal(cmd.kind, cmd.target)
        slot = _Slot(cmd, ordinal)
        i = self._cursor
        if i < len(self._ix.seqs):
            self._match(i, cmd.kind, cmd.target, ordinal)
            self._cursor = i + 1
            slot.start = i
            # (a signal_received start, delivered at the await, is its own answer)
            slot.resolution = self._ix.answer(self._ix.seqs[i])
            return slot
        assert self._resolver is not None
        slot.resolution = start_command(cmd, ordinal, self._resolver, self.batch, self._record, self.run_id)
        slot.start = len(self._ix.seqs) - 1
        return slot

    def _resolve(self, slot: _Slot) -> bool:
        """Try to resolve a slot (recording resolution events at the live tail). True when done."""
        if slot.done:
            return True
        if isinstance(slot.cmd, FirstCommand):
            return self._resolve_first(slot, slot.cmd)
        if isinstance(slot.cmd, StartChildCommand):  # answered at once with the child's handle
            start = self._ix.start_event(slot.start)
            slot.done, slot.value = True, {"run_id": start.payload["child_run_id"], "seq": start.seq}
            return True
        if isinstance(slot.cmd, GatherCommand):
            # Resolve every child (each may record its resolution), then answer in order.
            states = [self._resolve(c) for c in slot.children]
            if not all(states):
                return False
            slot.done = True
            if slot.cmd.return_exceptions:
                slot.value = [c.value if c.exc is None else c.exc for c in slot.children]
                return True
            slot.value = [c.value for c in slot.children]
            slot.exc = next((c.exc for c in slot.children if c.exc is not None), None)
            return True
        if slot.resolution is None and not self.replaying:
            assert self._resolver is not None and slot.start >= 0
            ev = resolve_started(self._ix.start_event(slot.start), self._resolver, self.batch, self._record)
            slot.resolution = None if ev is None else answer_of(ev)
        if slot.resolution is None:
            return False
        slot.done = True
        slot.value, slot.exc = outcome_of(slot.cmd.kind, slot.cmd.target, slot.resolution)
        return True

    def _resolve_first(self, slot: _Slot, cmd: FirstCommand) -> bool:
        """``cn.first``: the child whose resolution comes first in the journal wins. At the live
        tail the children are tried in argument order and the first that resolves wins; the
        others resolve nothing (a loser's signal stays in the mailbox)."""
        kids = slot.children
        decided = any(c.done or c.resolution is not None for c in kids)
        for c in kids:
            if decided:
                if c.resolution is not None:
                    self._resolve(c)
            elif self._resolve(c):
                break  # the first to resolve now wins: the others take nothing (no signal consumed)
        ix = self._ix
        done = [i for i, c in enumerate(kids) if c.done]
        if not done:
            return False
        win = min(done, key=lambda i: (ix.resolution_seq(ix.seqs[kids[i].start]) or 0, i))
        if cmd.cancel_others and not self.replaying:
            for c in kids:
                if not c.done and c.start >= 0:
                    cancel_started(ix.start_event(c.start), self.batch, self._record)
                    c.done = True
        slot.done = True
        w = kids[win]
        slot.value, slot.exc = (None if w.exc is not None else (win, w.value)), w.exc
        return True

    def _blocked_state(self, slot: _Slot) -> Blocked:
        """What the workflow waits on: the unresolved starts under ``slot``, in command order
        (a slot's children before it). A loop: a self-calling closure would be a reference
        cycle holding this replayer for the cyclic garbage collector, on every wake."""
        pending, order = [slot], []
        while pending:  # pre-order, children last to first; reversed, the order above
            s = pending.pop()
            if not s.done:
                order.append(s)
                pending.extend(s.children)
        return blocked_on([self._ix.start_event(s.start) for s in reversed(order) if s.start >= 0])

    # --- driving ------------------------------------------------------------------------------
    def advance(self, resolver: Resolver) -> Completed | Failed | Drifted | Blocked:
        """Run the coroutine until it blocks on something unresolved, returns, or fails.
        Recorded events accumulate in ``self.batch`` (reset it after a commit)."""
        self._resolver = resolver
        with active(self):
            if self._coro is None:
                try:
                    self._coro = self._factory()
                except BaseException as exc:  # bad input for the workflow's signature, etc.
                    return self._finish(Failed(error_dict(exc)))
                return self._drive(self._coro, None, None)
            if self._blocked is None:
                return self._drive(self._coro, None, None)
            try:
                if not self._resolve(self._blocked):
                    return self._still_blocked(self._blocked)
            except DriftSignal:
                return self._finish(Drifted(self.drift or {}))
            send, throw = self._blocked.value, self._blocked.exc
            self._blocked = None
            return self._drive(self._coro, send, throw)

    def _drive(self, coro: Coroutine[Any, Any, Any], send: Any,
               throw: BaseException | None) -> Completed | Failed | Drifted | Blocked:
        """Step the coroutine, answering each command, until it blocks or ends."""
        # Local names for the fast path below (the index's lists only grow at the live tail).
        ix = self._ix
        kinds, targets, ords, seqs, values = ix.kinds, ix.targets, ix.ordinals, ix.seqs, ix.values
        ordinals = self._ordinals
        while True:
            try:
                cmd = coro.throw(throw) if throw is not None else coro.send(send)
            except StopIteration as stop:
                return self._returned(stop.value)
            except DriftSignal:
                return self._finish(Drifted(self.drift or {}))
            except BaseException as exc:  # user code: SystemExit etc. fail the run, never the engine
                return self._raised(exc)
            if self.drift:  # workflow code swallowed the drift signal (bare except)
                return self._finish(Drifted(self.drift))
            if not isinstance(cmd, Command):
                send, throw = None, not_awaitable(self.workflow, cmd)
                continue
            # Fast path, the bulk of any replay: a single command whose start is at the cursor
            # with the same identity and whose answer is journaled. The same checks as _open
            # (kind, target, ordinal) and the same answer as _resolve, without a slot; anything
            # else (gather, drift, no answer yet, live tail) takes _answer below.
            i = self._cursor
            if i < len(seqs) and not isinstance(cmd, (GatherCommand, StartChildCommand)):
                kind, target = cmd.kind, cmd.target
                counts = ordinals.get(kind)
                ordinal = 0 if counts is None else counts.get(target, 0)
                eo = ords[i]
                if kinds[i] == kind and targets[i] == target and (eo is None or eo == ordinal):
                    seq = seqs[i]
                    value = values.get(seq, _MISSING)
                    answer = ix.answers.get(seq) if value is _MISSING else None
                    if value is not _MISSING or answer is not None:
                        if counts is None:
                            counts = ordinals[kind] = {}
                        counts[target] = ordinal + 1
                        self._cursor = i + 1
                        if answer is None:
                            send, throw = value, None  # a completed activity
                        else:
                            send, throw = outcome_of(kind, target, answer)
                        continue
            try:
                slot = self._open(cmd)
                done = self._resolve(slot)
            except DriftSignal:
                return self._finish(Drifted(self.drift or {}))
            except (TypeError, ValueError) as exc:  # arguments that cannot be stored, a bad key: raised at the await
                send, throw = None, exc
                continue
            if not done:
                self._blocked = slot
                return self._still_blocked(slot)
            send, throw = slot.value, slot.exc

    # --- how a drive ends -------------------------------------------------------------------------
    def _returned(self, value: Any) -> Completed | Failed | Drifted:
        """The workflow returned: completed, unless the journal goes on (drift) or the result
        is not JSON (failed)."""
        if self.drift:
            return self._finish(Drifted(self.drift))
        if self.continued is not None:
            return continuation.ended(self)
        if self.replaying:
            return self._drift_end(f"returned {value!r:.80}")
        try:
            check_json(value, f"result of workflow {self.workflow!r}")
        except (TypeError, ValueError) as exc:
            return self._finish(Failed(error_dict(exc)))
        return self._finish(Completed(value))

    def _raised(self, exc: BaseException) -> Completed | Failed | Drifted:
        """The workflow raised (anything, SystemExit and KeyboardInterrupt too: recorded, not
        obeyed): failed, unless the journal goes on (drift)."""
        if self.drift:
            return self._finish(Drifted(self.drift))
        if self.continued is not None:  # (raised ContinueAsNew, or swallowed it and raised another)
            return continuation.ended(self)
        if self.replaying:
            return self._drift_end(f"raised {type(exc).__name__}: {exc}")
        if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
            exc = TypeError(
                f"workflow {self.workflow!r} used asyncio, which is not a continuum awaitable: workflows "
                "never run on an event loop; use cn.timer() instead of asyncio.sleep() and move other "
                "async I/O into an @cn.activity"
            )
        return self._finish(Failed(error_dict(exc)))

    def _still_blocked(self, slot: _Slot) -> Blocked | Drifted:
        """The workflow waits on ``slot``: blocked at the live tail, drift while replaying (the
        journal holds more commands after one it never resolved)."""
        if not self.replaying:
            return self._blocked_state(slot)
        ev = self._ix.start_event(self._cursor)
        kind, target = slot.cmd.kind, slot.cmd.target
        self._drift(waiting_message(kind, target, slot.ordinal, ev), self._cursor,
                    {"kind": kind, "target": target, "ordinal": slot.ordinal, "waiting": True})
        return self._finish(Drifted(self.drift or {}))

    def _drift_end(self, what: str) -> Drifted:
        ev = self._ix.start_event(self._cursor)
        self._drift(end_message(what, len(self._ix.seqs) - self._cursor, ev), self._cursor,
                    {"kind": "end", "target": what[:200], "ordinal": None})
        return self._finish(Drifted(self.drift or {}))

    def _finish(self, outcome: Any) -> Any:
        self.finished = True
        if self._coro is not None:
            with contextlib.suppress(BaseException):  # a workflow that refuses to close is abandoned
                self._coro.close()
        return outcome

    def reset_batch(self) -> None:
        self.batch = Batch()
