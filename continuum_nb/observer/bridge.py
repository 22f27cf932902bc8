"""Kernel-side live refresh: engine telemetry → a thread-safe queue → the kernel's event loop.

The engine thread must never touch a widget (ipykernel 7 routes output and comm messages by
thread, so updates made there land in the wrong cell or nowhere). The telemetry handler attached
here only puts the run id into a ``queue.SimpleQueue``; a periodic callback on the kernel's own
asyncio loop drains it and calls back into the observer, on the kernel thread, where widget trait
updates are safe. Without a running loop (plain Python), there is no live refresh: Refresh works.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from .. import telemetry

__all__ = ["LiveBridge", "WATCHED_EVENTS"]

log = logging.getLogger("continuum_nb.observer")

#: Events after which what the observer shows may have changed.
WATCHED_EVENTS: tuple[tuple[str, ...], ...] = tuple(
    e for e in telemetry.EVENTS if e[1] in ("run", "activity", "timer", "signal", "lease")
)

_ids = itertools.count(1)


class LiveBridge:
    """``on_change(run_ids, poll)`` is called on the kernel loop with the ids of runs that
    telemetry said changed (``poll`` True when it is the periodic fallback poll, which catches
    changes made by engines in other processes)."""

    def __init__(
        self,
        on_change: Callable[[set[str], bool], None],
        *,
        instance: str | None = None,
        interval: float = 0.5,
        poll_every: float = 5.0,
    ) -> None:
        self._on_change = on_change
        self._instance = instance
        self._interval = interval
        self._poll_every = poll_every
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._handler_id = f"continuum_nb.observer.{next(_ids)}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last_poll = time.monotonic()
        self.running = False
        self.paused = False

    # Runs on the engine thread: enqueue and nothing else.
    def _handler(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        if self._instance is not None and metadata.get("instance") not in (None, self._instance):
            return
        self._queue.put(str(metadata.get("run_id") or ""))

    def start(self) -> bool:
        """Attach the handler and start the periodic drain; False when there is no running event
        loop in this thread (not inside a kernel): then nothing is attached."""
        if self.running:
            return True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        telemetry.attach(self._handler_id, WATCHED_EVENTS, self._handler)
        self.running = True
        self._handle = self._loop.call_later(self._interval, self._tick)
        return True

    def drain(self) -> set[str]:
        ids: set[str] = set()
        while True:
            try:
                ids.add(self._queue.get_nowait())
            except queue.Empty:
                return ids

    def _tick(self) -> None:
        if not self.running:
            return
        try:
            ids = self.drain()
            now = time.monotonic()
            poll = now - self._last_poll >= self._poll_every
            if (ids or poll) and not self.paused:
                self._last_poll = now
                self._on_change({i for i in ids if i}, poll and not ids)
        except Exception:  # a failing refresh must not kill live refresh for good
            log.exception("observer live refresh failed")
        finally:
            if self.running and self._loop is not None and not self._loop.is_closed():
                self._handle = self._loop.call_later(self._interval, self._tick)

    def stop(self) -> None:
        """Detach the handler and cancel the callback (idempotent)."""
        self.running = False
        telemetry.detach(self._handler_id)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
