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

__all__ = ["OPEN_TASK_STATES", "SignalRow", "TimerRow", "VersionRow", "copy_json", "db_now"]

#: Task states a cancel or a cancelling wake closes (the rows still waiting for an outcome).
OPEN_TASK_STATES = ("available", "leased")


def copy_json(value: Any) -> Any:
    """A JSON round trip: what a jsonb column gives back (tuples become lists, no aliasing)."""
    return None if value is None else json.loads(dumps(value))


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

