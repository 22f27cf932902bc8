"""The rows of ``MemoryStore`` that have no record type in ``store.base`` (signals, timers,
workflow versions), and the two things every part of the store does to values: copy JSON as a
jsonb column would, and read "database now". Plain data, no behaviour of the store contract."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from ..payloads import dumps

__all__ = ["OPEN_TASK_STATES", "SignalRow", "TimerRow", "VersionRow", "contains", "copy_json", "db_now"]

#: Task states a cancel or a cancelling wake closes (the rows still waiting for an outcome).
OPEN_TASK_STATES = ("available", "leased")


def copy_json(value: Any) -> Any:
    """A JSON round trip: what a jsonb column gives back (tuples become lists, no aliasing)."""
    return None if value is None else json.loads(dumps(value))


def _same_scalar(a: Any, b: Any) -> bool:
    """jsonb equality of two JSON scalars: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def contains(attributes: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """``attributes @> wanted`` for objects of scalars, as jsonb containment answers it."""
    have = attributes or {}
    return all(k in have and _same_scalar(have[k], v) for k, v in wanted.items())


def db_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SignalRow:
    id: int
    run_id: UUID
    name: str
    payload: Any
    inserted_at: datetime
    delivered: bool = False
    delivered_seq: int | None = None


@dataclass
class TimerRow:
    id: UUID
    run_id: UUID
    seq: int
    fires_at: datetime
    fired: bool = False


@dataclass
class VersionRow:
    source: str
    origin: str
    order: int

