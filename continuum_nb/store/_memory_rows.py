"""Rows and the listener of ``MemoryStore`` (store/memory.py): plain data, no behaviour of the
store contract itself."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from uuid import UUID

from .base import Notification
from .payloads import dumps

__all__ = ["MemoryListener"]


class _ListenerOwner(Protocol):
    def _drop_listener(self, listener: MemoryListener) -> None: ...


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


class MemoryListener:
    """Receives the notifications of its channels; ``wait`` blocks on a Condition."""

    def __init__(self, store: _ListenerOwner, channels: Sequence[str]) -> None:
        self._store = store
        self.channels = frozenset(channels)
        self._cond = threading.Condition()
        self._queue: deque[Notification] = deque()
        self._closed = False
        #: Always 0: an in-memory listener never loses its connection (PgListener counts them).
        self.reconnects = 0

    def _deliver(self, notes: Sequence[Notification]) -> None:
        mine = [n for n in notes if n.channel in self.channels]
        if mine:
            with self._cond:
                self._queue.extend(mine)
                self._cond.notify_all()

    def wait(self, timeout: float) -> list[Notification]:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._queue) or self._closed, timeout=max(timeout, 0.0))
            out = list(self._queue)
            self._queue.clear()
            return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._store._drop_listener(self)
