"""What a fork writes and how forks are linked (``cn.fork``; migration 20261207020000).

A fork is a new run whose journal is a copy of the first N events of another run (ids of tasks
and timers rewritten), inserted in one transaction with the tasks and timers that prefix left
open, and linked to its origin both ways: the fork names ``forked_from_run_id`` and
``forked_at_seq``; the forks of a run are found by that column. Both stores implement
``fork_run`` and ``fork_links``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from .base import Event, NewRun, NewTask, NewTimer

__all__ = ["ForkLinks", "ForkingStore", "NewFork"]


@dataclass(frozen=True)
class NewFork:
    run: NewRun                       # the new run (runnable at once: ``started_at`` is its wakeup)
    forked_from: UUID
    at_seq: int
    events: list[Event] = field(default_factory=list)      # seq 1..at_seq, ids rewritten
    tasks: list[NewTask] = field(default_factory=list)     # activities scheduled, not resolved
    timers: list[NewTimer] = field(default_factory=list)   # timers and signal timeouts pending


@dataclass(frozen=True)
class ForkLinks:
    forked_from_run_id: UUID | None
    forked_at_seq: int | None
    #: (run id, at seq) of the runs forked from this one, oldest first.
    forks: list[tuple[UUID, int]] = field(default_factory=list)


class ForkingStore(Protocol):
    def fork_run(self, fork: NewFork) -> None:
        """Insert the fork (state ``suspended``, due at once), its events, tasks and timers, in
        one transaction; NOTIFY CHANNEL_WAKE (and CHANNEL_TASKS for its tasks). A run id that
        exists raises ``ValueError``."""
        ...

    def fork_links(self, run_id: UUID) -> ForkLinks:
        """Where the run was forked from, and the runs forked from it."""
        ...
