"""``MemoryListener``: the in-memory stand-in for a LISTEN connection."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from ..base import Notification

__all__ = ["MemoryListener"]


class _ListenerOwner(Protocol):
    """The store a listener unregisters from when closed (kept abstract: no import of the store)."""

    def _drop_listener(self, listener: MemoryListener) -> None: ...


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
