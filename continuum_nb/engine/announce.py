"""What a committed wake announces of the composing commands: each ``workflow_log`` line to
Python logging (logger ``continuum_nb.workflow``) and telemetry, and telemetry for patches and
compensations. Called after the commit only, so a line is logged once: a wake whose commit fails
is replayed, and replay journals (and logs) nothing it already journaled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..store.base import Event, Store
from ..telemetry import emit
from .continuing import announce_continued

__all__ = ["announce_committed", "emit_events"]

log = logging.getLogger("continuum_nb.workflow")

_TELEMETRY = {
    "patched": ("continuum", "workflow", "patched"),
    "compensation_scheduled": ("continuum", "compensation", "scheduled"),
    "compensation_completed": ("continuum", "compensation", "completed"),
    "compensation_failed": ("continuum", "compensation", "failed"),
}


def announce_committed(events: Iterable[Event], run_meta: Callable[[], dict[str, Any]], telemetry: bool,
                       store: Store | None = None) -> None:
    """``run_meta()``: the run's telemetry metadata, built only when an event needs it (most
    wakes announce nothing)."""
    meta: dict[str, Any] | None = None
    for ev in events:
        t, p = ev.event_type, ev.payload
        if t not in _ANNOUNCED:
            continue
        if meta is None:
            meta = run_meta()
        if t == "workflow_log":
            fields = p.get("fields") or {}
            level = logging.getLevelName(str(p.get("level", "info")).upper())
            log.log(level if isinstance(level, int) else logging.INFO, "[%s %s] %s",
                    meta.get("workflow"), meta.get("run_id"), p.get("message"),
                    extra={"continuum_run_id": meta.get("run_id"), "continuum_fields": fields})
            if telemetry:
                emit(("continuum", "workflow", "log"), {},
                     {**meta, "seq": ev.seq, "message": p.get("message"), "level": p.get("level"), "fields": fields})
        elif telemetry and t == "run_continued_as_new" and store is not None:
            announce_continued(store, ev, meta)
        elif telemetry and t in _TELEMETRY:
            emit(_TELEMETRY[t], {}, {**meta, "seq": ev.seq, "name": p.get("name") or p.get("activity")})


#: The event types announce_committed may act on.
_ANNOUNCED = frozenset({"workflow_log", "run_continued_as_new", *_TELEMETRY})


def emit_events(events: Iterable[Event], meta: Callable[..., dict[str, Any]]) -> None:
    """Telemetry of a committed wake's activity, timer, signal and child events (``meta(**extra)``:
    the run's metadata plus ``extra``)."""
    for ev in events:
        p = ev.payload
        t = ev.event_type
        if t == "activity_scheduled":
            emit(("continuum", "activity", "scheduled"), {}, meta(activity=p["activity"], seq=ev.seq))
        elif t == "timer_started":
            emit(("continuum", "timer", "scheduled"), {"duration_s": p["duration_s"]}, meta(seq=ev.seq))
        elif t == "timer_fired":
            emit(("continuum", "timer", "fired"), {}, meta(seq=ev.seq, started_seq=p["started_seq"]))
        elif t == "signal_awaited":
            emit(("continuum", "signal", "awaited"), {}, meta(name=p["name"], seq=ev.seq))
        elif t == "signal_received":
            emit(("continuum", "signal", "received"), {}, meta(name=p["name"], seq=ev.seq))
        elif t in _CHILD_TELEMETRY:
            emit(_CHILD_TELEMETRY[t], {}, meta(child_workflow=p["workflow"], child_run_id=p.get("child_run_id"),
                                               seq=ev.seq))


_CHILD_TELEMETRY = {
    "child_started": ("continuum", "child", "started"),
    "child_completed": ("continuum", "child", "completed"),
    "child_failed": ("continuum", "child", "failed"),
    "child_cancelled": ("continuum", "child", "cancelled"),
}
