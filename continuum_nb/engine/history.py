"""Long histories are guarded: the limits a wake is checked against before it is committed.

- ``history_warn_events``: the wake that takes a run's journal past it warns, once per run
  (``[continuum, run, history_warning]`` telemetry and a log line): the run goes on.
- ``history_max_events``: a wake that would take a suspended run's journal past it is not
  journaled; the run fails instead, its error naming the count, the limit and the fix
  (continue as new: end the run and start a fresh one with the state it needs as input). A run
  that finishes in that wake is left to finish.
- ``max_payload_bytes``: a value the wake would journal (an event's payload: activity arguments
  and results, signal payloads, side-effect values) or the run's result, larger than this as
  JSON, is refused before it is written: the run fails with a ``ValueError`` naming the value.
  The values that enter from outside a run (``cn.start``'s input, ``cn.signal``'s payload) are
  refused to their caller, before anything is written (``engine/lifecycle.py``, ``api.py``).

Workflow code is user code: a limit fails only that run, never the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..store.base import Event, Wake
from ..store.chains import ContinuingWake
from ..store.payloads import check_size, payload_size
from ..telemetry import emit
from .held import HeldRun

__all__ = ["HistoryGuard"]

log = logging.getLogger("continuum_nb.engine")


def _what(run: HeldRun, ev: Event) -> str:
    p = ev.payload
    name = p.get("activity") or p.get("name") or p.get("kind")
    target = f" ({name})" if isinstance(name, str) else ""
    return f"the {ev.event_type} event{target} at seq {ev.seq} of run {run.run_id} ({run.record.workflow})"


class HistoryGuard:
    """The history limits of one engine (each None: no such limit)."""

    def __init__(self, warn_events: int | None = None, max_events: int | None = None,
                 max_payload_bytes: int | None = None) -> None:
        self.warn_events = warn_events
        self.max_events = max_events
        self.max_payload_bytes = max_payload_bytes

    def _oversized(self, held: HeldRun, wake: Wake) -> str | None:
        limit = self.max_payload_bytes
        if limit is None:
            return None
        try:
            for ev in wake.events:
                if payload_size(ev.payload) > limit:  # named only when it is over: the hot path
                    check_size(ev.payload, _what(held, ev), limit)
            if wake.result is not None:
                check_size(wake.result, f"the result of run {held.run_id} ({held.record.workflow})", limit)
        except ValueError as exc:
            return str(exc)
        return None

    def check(self, held: HeldRun, wake: Wake, meta: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Apply the limits to ``wake`` (built, not committed): None when it may be committed as
        it is; else the error it now fails the run with (``wake`` is rewritten to do only that:
        nothing of it is journaled). ``meta()``: the run's telemetry metadata (built only for a
        warning)."""
        rep = held.replayer
        events = rep.last_seq if rep is not None else 0
        error: dict[str, Any] | None = None
        message = self._oversized(held, wake)
        if message is not None:
            error = {"type": "builtins.ValueError", "message": message}
        elif self.max_events is not None and events > self.max_events and wake.state == "suspended":
            error = {
                "type": "history_limit",
                "message": (
                    f"run {held.run_id} ({held.record.workflow}) would journal {events} events, over the "
                    f"history_max_events limit of {self.max_events}; continue as new: call "
                    "cn.continue_as_new(state) with the state the run carries (it ends the run and starts "
                    "a fresh one with that input), e.g. every few thousand iterations of a long loop"
                ),
                "events": events,
                "max_events": self.max_events,
            }
        elif self.warn_events is not None and events - len(wake.events) <= self.warn_events < events:
            emit(("continuum", "run", "history_warning"), {"events": events},
                 {**meta(), "warn_events": self.warn_events, "max_events": self.max_events})
            log.warning("run %s (%s) has journaled %d events, past history_warn_events=%d (it fails past "
                        "history_max_events=%s): continue as new before that", held.run_id,
                        held.record.workflow, events, self.warn_events, self.max_events)
        if error is None:
            return None
        _fail(wake, error)
        return error


def _fail(wake: Wake, error: dict[str, Any]) -> None:
    """Rewrite ``wake`` so that it only fails the run with ``error``: no event, task or timer is
    written; what it answered (outcomes, fired timers, consumed signals) is still recorded."""
    wake.state, wake.error, wake.result = "failed", error, None
    wake.events, wake.new_tasks, wake.new_timers = [], [], []
    wake.awaiting_signals, wake.awaiting_tasks = [], []
    wake.next_wakeup_at, wake.release = None, False
    if isinstance(wake, ContinuingWake):
        wake.continuation = None  # a failed run has no successor
