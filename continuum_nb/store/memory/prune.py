"""``MemoryStore``'s ``prune``: what ``store.postgres.prune`` does, over the in-memory tables.

A run is pruned only when it ended (completed, failed, cancelled) and its ``retention_until`` is
at or before ``now``; with it go its events, signals, timers, tasks, snapshots and activity
results, and (``drop_keys``) its keys and the keys of runs pruned before.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..base import FINISHED_STATES, PruneReport
from .tables import MemoryTables

__all__ = ["MemoryPrune"]


class MemoryPrune(MemoryTables):
    def prune(self, now: datetime, *, execute: bool, drop_keys: bool, batch_size: int) -> PruneReport:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        with self._lock:
            due = sorted(
                (r for r in self._runs.values()
                 if r.state in FINISHED_STATES and r.retention_until is not None and r.retention_until <= now),
                key=lambda r: r.retention_until or now,
            )
            doomed = {r.id for r in due}
            counts = self._owned(doomed, drop_keys)
            if not execute:
                return PruneReport(False, **counts)
            for run_id in doomed:
                self._delete_run(run_id)
            if drop_keys:  # now every key whose run is gone: this call's and earlier prunes'
                for key in [k for k, rid in self._ingress_keys.items() if rid not in self._runs]:
                    del self._ingress_keys[key]
                for skey in [k for k in self._signal_keys if k[0] not in self._runs]:
                    del self._signal_keys[skey]
            return PruneReport(True, batches=-(-len(doomed) // batch_size), **counts)

    def _owned(self, doomed: set[UUID], drop_keys: bool) -> dict[str, int]:
        """Rows of each table that pruning ``doomed`` deletes (caller holds the lock)."""
        counts = {
            "runs": len(doomed),
            "events": sum(len(self._events.get(r, [])) for r in doomed),
            "signals": sum(1 for s in self._signals.values() if s.run_id in doomed),
            "timers": sum(1 for t in self._timers.values() if t.run_id in doomed),
            "tasks": sum(1 for t in self._tasks.values() if t.run_id in doomed),
            "snapshots": sum(len(self._snapshots.get(r, {})) for r in doomed),
            "activity_results": sum(1 for v in self._results.values() if v[0] in doomed),
        }
        if drop_keys:  # theirs, and those left by runs pruned before
            counts["ingress_keys"] = sum(
                1 for rid in self._ingress_keys.values() if rid in doomed or rid not in self._runs
            )
            counts["signal_keys"] = sum(
                1 for k in self._signal_keys if k[0] in doomed or k[0] not in self._runs
            )
        return counts

    def _delete_run(self, run_id: UUID) -> None:
        del self._runs[run_id]
        self._events.pop(run_id, None)
        self._last_seq.pop(run_id, None)
        self._snapshots.pop(run_id, None)
        for sig_id in [i for i, s in self._signals.items() if s.run_id == run_id]:
            del self._signals[sig_id]
        for timer_id in [i for i, t in self._timers.items() if t.run_id == run_id]:
            del self._timers[timer_id]
        for task_id in [i for i, t in self._tasks.items() if t.run_id == run_id]:
            del self._tasks[task_id]
        for key in [k for k, v in self._results.items() if v[0] == run_id]:
            del self._results[key]
