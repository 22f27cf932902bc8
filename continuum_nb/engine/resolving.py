"""What the live tail of a wake asks of the world (``replay.outcomes.Resolver``): the wake's one
instant, the activity outcomes delivered to the held run, its children's targets and outcomes,
and the signals in its mailbox (read once per name per wake)."""

from __future__ import annotations

from datetime import datetime

from ..replay.outcomes import ChildOutcome, ChildTarget, LiveOutcome
from ..store.base import SignalRecord, Store
from .children import ChildRuns
from .clock import Clock
from .held import HeldRun

__all__ = ["LiveResolver"]


class LiveResolver:
    def __init__(self, store: Store, clock: Clock, children: ChildRuns, held: HeldRun) -> None:
        self._store = store
        self._children = children
        self._held = held
        self._signals: dict[str, list[SignalRecord]] = {}
        self._now = clock.now()

    def now(self) -> datetime:
        return self._now

    def task_outcome(self, seq: int) -> LiveOutcome | None:
        return self._held.outcomes.get(seq)

    def child_target(self, workflow: str) -> ChildTarget:
        return self._children.target(self._held.record, workflow)

    def child_outcome(self, child_run_id: str) -> ChildOutcome | None:
        return self._children.outcome(child_run_id)

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None:
        if name not in self._signals:
            self._signals[name] = self._store.pending_signals(self._held.run_id, [name])
        for sig in self._signals[name]:
            if sig.id not in skip:
                return sig
        return None
