"""Deterministic primitives and durations.

Inside a workflow, ``now()``, ``today()``, ``uuid4()``, ``random()`` and ``side_effect(fn)`` are
journaled once as ``side_effect`` events and return the recorded value on every replay; they are
committed with the next suspension point, before anything external happens. Outside a workflow
they return the real clock / fresh values.
"""

from __future__ import annotations

import random as _random
import uuid as _uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from .definitions.context import current
from .store.payloads import check_json

__all__ = ["days", "hours", "minutes", "now", "random", "seconds", "side_effect", "today", "uuid4"]

T = TypeVar("T")


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def now() -> datetime:
    """The current time (UTC, timezone-aware); inside a workflow, the engine clock, journaled."""
    ctx = current()
    if ctx is None:
        return datetime.now(timezone.utc)
    value = ctx.side_effect("now", lambda: ctx.now().isoformat())
    return datetime.fromisoformat(value)


def today() -> date:
    ctx = current()
    if ctx is None:
        return datetime.now(timezone.utc).date()
    value = ctx.side_effect("today", lambda: ctx.now().date().isoformat())
    return date.fromisoformat(value)


def uuid4() -> _uuid.UUID:
    ctx = current()
    if ctx is None:
        return _uuid.uuid4()
    return _uuid.UUID(ctx.side_effect("uuid4", lambda: str(_uuid.uuid4())))


def random() -> float:
    """A float in [0, 1)."""
    ctx = current()
    if ctx is None:
        return _random.random()
    return float(ctx.side_effect("random", _random.random))


def side_effect(fn: Callable[[], T]) -> T:
    """Run ``fn()`` once and journal its (JSON) result; replays return the recorded value.
    Use it for small nondeterministic reads; use an activity for anything with effects."""
    ctx = current()
    if ctx is None:
        return fn()

    def compute() -> Any:
        value = fn()
        check_json(value, f"result of side_effect({getattr(fn, '__name__', 'fn')})")
        return value

    return ctx.side_effect("side_effect", compute)  # type: ignore[no-any-return,unused-ignore]
