"""The timer wheel of the runs an engine holds: one loop timer per held run, at its next wakeup.

Durable timers live in ``continuum_timers`` (written by the wake that starts them); this only
wakes a held run in memory when its earliest timer or signal timeout is due. A run that is not
held is claimed when due by any engine (the store orders claims by ``next_wakeup_at``). A
virtual clock that jumps (tests) wakes the held runs that are due now.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from .held import HeldRun
from .part import Part, Surroundings

__all__ = ["Timers"]


class Timers(Part):
    """(loop) Timer handles of held runs."""

    def __init__(self, surroundings: Surroundings) -> None:
        super().__init__(surroundings)
        self._handles: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def schedule(self, held: HeldRun) -> None:
        """Replace the run's timer with one at its ``next_wakeup_at`` (none when it has none)."""
        self.cancel(held.run_id)
        if held.next_wakeup_at is None:
            return
        delay = max(0.0, (held.next_wakeup_at - self._clock.now()).total_seconds())
        self._handles[held.run_id] = self._runtime.call_later(delay, self._loop.request_wake, held.run_id)

    def cancel(self, run_id: uuid.UUID) -> None:
        h = self._handles.pop(run_id, None)
        if h is not None:
            h.cancel()

    def pending(self, run_id: uuid.UUID) -> bool:
        """(any thread: a membership test) Whether the run has a timer handle on the loop."""
        return run_id in self._handles

    def cancel_all(self) -> None:
        for h in self._handles.values():
            h.cancel()
        self._handles.clear()

    # --- a virtual clock ------------------------------------------------------------------------
    def follow_clock(self) -> None:
        """(caller's thread) Wake due runs whenever the clock jumps (a virtual clock only)."""
        self._unsubscribe = self._clock.subscribe(lambda: self._runtime.post(self._on_clock_jump))

    def unfollow_clock(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_clock_jump(self) -> None:
        """(loop) Wake held runs that are due now, and claim others."""
        now = self._clock.now()
        for held in self._held.snapshot():
            if held.next_wakeup_at is not None and held.next_wakeup_at <= now:
                self._loop.request_wake(held.run_id)
        self._loop.kick()
