"""``wait()`` support: finished runs from the instance's shared LISTEN connection, plus direct
notification from this process's engine (no round trip when the run finished here)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..store.base import CHANNEL_DONE

if TYPE_CHECKING:
    from .instance import Instance


class DoneWatcher:
    def __init__(self, instance: Instance) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        # Registering before the first state check makes a notification impossible to miss;
        # waiting for LISTEN to be in place makes that true across processes too. On failure
        # waiters fall back to their periodic re-check.
        self._hub = instance.notifications()
        self._key = self._hub.subscribe(
            [CHANNEL_DONE], lambda _channel, payload: self.notify_local(payload), self._wake_all, wait_connected=5.0,
        )

    def register(self, run_id: str) -> threading.Event:
        """An event set when the run finishes. When this process's engine finished it, the
        event carries ``.outcome`` = (state, result, error), sparing a read."""
        ev = threading.Event()
        ev.outcome = None  # type: ignore[attr-defined]
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(ev)
        return ev

    def unregister(self, run_id: str, ev: threading.Event) -> None:
        with self._lock:
            s = self._waiters.get(run_id)
            if s is not None:
                s.discard(ev)
                if not s:
                    del self._waiters[run_id]

    def notify_local(self, run_id: str, outcome: tuple[str, Any, Any] | None = None) -> None:
        with self._lock:
            events = list(self._waiters.get(run_id, ()))
        for ev in events:
            if outcome is not None:
                ev.outcome = outcome  # type: ignore[attr-defined]
            ev.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [e for s in self._waiters.values() for e in s]
        for ev in events:
            ev.set()

    def close(self) -> None:
        self._hub.unsubscribe(self._key)
