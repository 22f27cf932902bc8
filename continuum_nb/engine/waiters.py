"""``wait()`` support: finished runs from the instance's shared LISTEN connection, plus direct
notification from this process's engine (no round trip when the run finished here)."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..store.base import CHANNEL_DONE
from .listening import Notifications

__all__ = ["RECENT_OUTCOMES", "DoneWatcher", "LocalOutcomes"]

#: How many outcomes of runs that ended here are kept for wait() calls that come after the end.
RECENT_OUTCOMES = 256


class DoneWatcher:
    def __init__(self, hub: Notifications) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        # Registering before the first state check makes a notification impossible to miss;
        # waiting for LISTEN to be in place makes that true across processes too. On failure
        # waiters fall back to their periodic re-check.
        self._hub = hub
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


class LocalOutcomes:
    """What an engine tells this process's ``wait()`` callers: a run's outcome when it ended here
    (kept a while, bounded: results can be large), or that the engine let go of a run."""

    def __init__(self, watcher: Callable[[], DoneWatcher | None]) -> None:
        self._watcher = watcher
        self._recent: OrderedDict[uuid.UUID, tuple[str, Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def notify(self, run_id: uuid.UUID, outcome: tuple[str, Any, Any] | None = None) -> None:
        """(any thread) The outcome of a run that ended here, or (None) that this engine no
        longer drives the run, so waiters read its state instead. Only terminal outcomes are
        kept: a drifted run can be resumed."""
        if outcome is not None and outcome[0] in ("completed", "failed"):
            with self._lock:
                self._recent[run_id] = outcome
                if len(self._recent) > RECENT_OUTCOMES:
                    self._recent.popitem(last=False)
        watcher = self._watcher()
        if watcher is not None:
            watcher.notify_local(str(run_id), outcome)

    def recent(self, run_id: uuid.UUID) -> tuple[str, Any, Any] | None:
        """(any thread) The outcome of a run that ended here lately, if it is still kept."""
        with self._lock:
            return self._recent.get(run_id)
