"""``MemoryStore``'s forks (store/forks.py): the fork inserted with its events, tasks and
timers under the one lock, and the links between runs and their forks."""

from __future__ import annotations

from uuid import UUID

from ..base import CHANNEL_TASKS, CHANNEL_WAKE, Event, Notification, RunRecord, TaskRecord
from ..checks import run_exists
from ..forks import ForkLinks, NewFork
from .rows import TimerRow, copy_json
from .tables import MemoryTables

__all__ = ["MemoryForks"]


class MemoryForks(MemoryTables):
    """Forks; the links live beside the run rows (``RunRecord`` does not carry them)."""

    #: fork id -> (origin run id, at seq); made on first use
    _forked_from: dict[UUID, tuple[UUID, int]] | None = None

    def _fork_table(self) -> dict[UUID, tuple[UUID, int]]:
        if self._forked_from is None:
            self._forked_from = {}
        return self._forked_from

    def fork_run(self, fork: NewFork) -> None:
        run = fork.run
        with self._lock:
            if run.id in self._runs:
                raise run_exists(run.id)
            for t in fork.tasks:
                if t.id in self._tasks:
                    raise ValueError(f"activity task {t.id} already exists")
            self._runs[run.id] = RunRecord(
                id=run.id, workflow=run.workflow, version_hash=run.version_hash, state="suspended",
                input=copy_json(run.input), started_at=run.started_at, next_wakeup_at=run.started_at,
                attributes=copy_json(run.attributes) or None, retention=run.retention,
            )
            self._events[run.id] = [Event(e.seq, e.event_type, copy_json(e.payload)) for e in fork.events]
            self._last_seq[run.id] = fork.events[-1].seq if fork.events else 0
            for t in fork.tasks:
                self._tasks[t.id] = TaskRecord(
                    id=t.id, run_id=run.id, seq=t.seq, activity=t.activity, args=copy_json(t.args), attempt=1,
                    state="available", available_at=t.available_at, idempotency_key=t.idempotency_key,
                )
            for tm in fork.timers:
                self._timers[tm.id] = TimerRow(tm.id, run.id, tm.seq, tm.fires_at)
            self._fork_table()[run.id] = (fork.forked_from, fork.at_seq)
            notes = [Notification(CHANNEL_WAKE, str(run.id))]
            notes += [Notification(CHANNEL_TASKS, a) for a in sorted({t.activity for t in fork.tasks})]
            self._notify(notes)

    def fork_links(self, run_id: UUID) -> ForkLinks:
        with self._lock:
            table = self._fork_table()
            origin = table.get(run_id)
            forks = [(rid, at) for rid, (src, at) in table.items() if src == run_id and rid in self._runs]
            forks.sort(key=lambda f: (self._runs[f[0]].started_at, f[0].bytes))
            return ForkLinks(origin[0] if origin else None, origin[1] if origin else None, forks)
