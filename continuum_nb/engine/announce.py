"""What a committed wake announces of the composing commands: each ``workflow_log`` line to
Python logging (logger ``continuum_nb.workflow``) and telemetry, and telemetry for patches and
compensations. Called after the commit only, so a line is logged once: a wake whose commit fails
is replayed, and replay journals (and logs) nothing it already journaled."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..store.base import Event, Store
from ..telemetry import emit
from .continuing import announce_continued

__all__ = ["announce_committed"]

log = logging.getLogger("continuum_nb.workflow")

_TELEMETRY = {
    "patched": ("continuum", "workflow", "patched"),
    "compensation_scheduled": ("continuum", "compensation", "scheduled"),
    "compensation_completed": ("continuum", "compensation", "completed"),
    "compensation_failed": ("continuum", "compensation", "failed"),
}


def announce_committed(events: Iterable[Event], meta: dict[str, Any], telemetry: bool,
                       store: Store | None = None) -> None:
    for ev in events:
        t, p = ev.event_type, ev.payload
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
