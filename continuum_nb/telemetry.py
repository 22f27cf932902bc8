"""Telemetry: named events with measurements and metadata, delivered to attached handlers.

Modelled on Erlang's ``:telemetry`` (which Continuum uses): an event name is a tuple of strings,
e.g. ``("continuum", "activity", "idempotency_hit")``; a handler is called as
``handler(event, measurements, metadata)``. Handlers run synchronously on the emitting thread
(usually the engine thread), so they must be quick; an exception in a handler is logged and never
reaches the engine.

Every event's metadata carries ``instance``; run events carry ``run_id`` and ``workflow``.
``docs/observability.md`` lists each event with its measurements and metadata.

A *trace context source* is the one function ``cn.start()`` asks for the caller's trace context
(stored in ``continuum_runs.trace_context``) when it is not given one; ``continuum_nb.otel.setup()``
registers it, so the core never imports a tracing library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "EVENTS",
    "Handler",
    "TraceContextSource",
    "attach",
    "current_trace_context",
    "detach",
    "emit",
    "handlers",
    "remove_trace_context_source",
    "set_trace_context_source",
]

log = logging.getLogger("continuum_nb.telemetry")

EventName = tuple[str, ...]
Handler = Callable[[EventName, dict[str, Any], dict[str, Any]], None]
#: Returns the calling thread's trace context as stored bytes, or None when there is none.
TraceContextSource = Callable[[], bytes | None]

#: Every event continuum_nb emits. v0.1 names are unchanged in v0.2; v0.2 adds the snapshot
#: and idempotency events.
EVENTS: tuple[EventName, ...] = (
    ("continuum", "run", "started"),
    ("continuum", "run", "claimed"),
    ("continuum", "run", "suspended"),
    ("continuum", "run", "completed"),
    ("continuum", "run", "failed"),
    ("continuum", "run", "cancelled"),
    ("continuum", "run", "drifted"),
    ("continuum", "run", "released"),
    ("continuum", "run", "upgraded"),
    ("continuum", "run", "history_warning"),
    ("continuum", "replay", "stop"),
    ("continuum", "activity", "scheduled"),
    ("continuum", "activity", "started"),
    ("continuum", "activity", "completed"),
    ("continuum", "activity", "failed"),
    ("continuum", "activity", "retried"),
    ("continuum", "activity", "idempotency_hit"),
    ("continuum", "timer", "scheduled"),
    ("continuum", "timer", "fired"),
    ("continuum", "signal", "sent"),
    ("continuum", "signal", "awaited"),
    ("continuum", "signal", "received"),
    ("continuum", "lease", "lost"),
    ("continuum", "lease", "recovered"),
    ("continuum", "snapshot", "taken"),
    ("continuum", "snapshot", "skipped"),
    ("continuum", "partition", "missing"),
    ("continuum", "workflow", "log"),
    ("continuum", "workflow", "patched"),
    ("continuum", "compensation", "scheduled"),
    ("continuum", "compensation", "completed"),
    ("continuum", "compensation", "failed"),
)

_lock = threading.Lock()
# handler_id -> (set of event names, handler); replaced wholesale on change so emit() can read
# it without taking the lock.
_handlers: dict[str, tuple[frozenset[EventName], Handler]] = {}
_trace_context_source: TraceContextSource | None = None


def _normalise(event: Iterable[str]) -> EventName:
    name = tuple(event)
    if not name or not all(isinstance(p, str) for p in name):
        raise TypeError(f"an event name is a non-empty tuple of strings, not {event!r}")
    return name


def attach(handler_id: str, events: Iterable[Iterable[str]] | tuple[str, ...], handler: Handler) -> str:
    """Attach ``handler`` to ``events`` under ``handler_id``; returns the id.

    ``events`` is a list of event names, or a single event name. Attaching an id that is
    already attached raises ``ValueError`` (detach it first).
    """
    global _handlers
    if not callable(handler):
        raise TypeError("handler must be callable as handler(event, measurements, metadata)")
    evs: list[Any] = list(events)
    if evs and all(isinstance(p, str) for p in evs):  # a single event name
        names = [_normalise(evs)]
    else:
        names = [_normalise(e) for e in evs]
    with _lock:
        if handler_id in _handlers:
            raise ValueError(f"telemetry handler {handler_id!r} is already attached; detach it first")
        new = dict(_handlers)
        new[handler_id] = (frozenset(names), handler)
        _handlers = new
    return handler_id


def detach(handler_id: str) -> bool:
    """Detach a handler; returns False when no handler had that id."""
    global _handlers
    with _lock:
        if handler_id not in _handlers:
            return False
        new = dict(_handlers)
        del new[handler_id]
        _handlers = new
    return True


def _active() -> bool:
    """Whether any handler is attached (the engine skips building metadata when none is)."""
    return bool(_handlers)


def handlers() -> list[str]:
    """The ids of the attached handlers."""
    return sorted(_handlers)


def emit(event: EventName, measurements: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None) -> None:
    """Deliver an event to every handler attached to it. Never raises."""
    current = _handlers
    if not current:
        return
    for handler_id, (names, handler) in current.items():
        if event in names:
            try:
                handler(event, dict(measurements or {}), dict(metadata or {}))
            except BaseException as exc:  # a broken handler (even sys.exit()) must never break the engine
                if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                    raise  # Ctrl-C while the caller's own thread ran the handler: theirs to handle
                log.exception("telemetry handler %r failed on %s", handler_id, ".".join(event))


def set_trace_context_source(source: TraceContextSource) -> None:
    """Make ``source`` what ``cn.start()`` asks for the caller's trace context (replacing any other)."""
    global _trace_context_source
    if not callable(source):
        raise TypeError("a trace context source must be callable as source() -> bytes | None")
    with _lock:
        _trace_context_source = source


def remove_trace_context_source(source: TraceContextSource) -> bool:
    """Unregister ``source``; returns False (and changes nothing) when it is not the registered one."""
    global _trace_context_source
    with _lock:
        if _trace_context_source is not source:
            return False
        _trace_context_source = None
    return True


def current_trace_context() -> bytes | None:
    """The caller's trace context from the registered source; None when no source is registered."""
    source = _trace_context_source
    return None if source is None else source()
