"""Lease renewal (heartbeat) and recovery.

The heartbeater pushes the expiry of every run and task lease this engine holds; a lease it
finds lost is dropped at once (``[continuum, lease, lost]``), and a held run that has been due
for more than an interval without being woken is woken (its NOTIFY was lost). Recovery — at boot
and every lease TTL — clears expired run leases and makes expired task leases available again,
so a crashed engine's work is picked up by any other.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from ..errors import DatabaseUnavailable
from .activities import Activities
from .part import Part, Surroundings

__all__ = ["Leases"]

log = logging.getLogger("continuum_nb.leases")


class Leases(Part):
    """(loop) The heartbeat and the recovery loop of one engine."""

    def __init__(self, surroundings: Surroundings, *, activities: Activities) -> None:
        super().__init__(surroundings)
        self._activities = activities

    def _stopping(self) -> bool:
        return self._loop.stopping

    async def heartbeat_loop(self) -> None:
        interval = self._config.heartbeat_interval
        beat = time.monotonic()
        while not self._loop.stopping:
            # A beat starts an interval after the previous one started, not after it ended: the
            # renewal of 10,000 leases takes a second of its own on a busy machine, which would
            # otherwise stretch the time between two renewals towards the lease TTL (3 intervals).
            await self._runtime.sleep(beat + interval - time.monotonic(), self._stopping)
            beat = time.monotonic()
            if self._loop.stopping:
                return
            # a snapshot: drive threads register the runs they start while this runs
            runs = {h.run_id: h.token for h in self._held.snapshot() if h.token}
            tasks = self._activities.leases()
            if not runs and not tasks:
                continue
            since = time.monotonic()
            try:
                lost_runs, lost_tasks = await self._runtime.db(
                    self._store.renew_leases, self._owner, runs, tasks, self._config.lease_ttl
                )
            except DatabaseUnavailable as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            except Exception:
                # Never the end of the engine: the leases outlive a missed beat (TTL = 3 beats).
                log.exception("heartbeat failed")
                continue
            for rid in lost_runs:
                held = self._held.get(rid)
                if held is not None and held.token == runs.get(rid):
                    self._emit(("continuum", "lease", "lost"), {},
                               {"run_id": str(rid), "workflow": held.record.workflow, "lease_token": held.token})
                    held.replayer = None
                    self._loop.let_go(rid, tell_waiters=False)
            for tid in lost_tasks:
                self._activities.forget(tid)
            self._activities.renewed([tid for tid in tasks if tid not in lost_tasks], since)
            await self._wake_overdue([rid for rid in runs if rid not in lost_runs], interval)

    async def _wake_overdue(self, run_ids: list[uuid.UUID], interval: float) -> None:
        """Wake held runs that have been due for more than a heartbeat interval and are not being
        woken: the NOTIFY that should have woken them (a signal, an outcome written by another
        engine) was lost, e.g. while the listening connection reconnected. Without this such a run
        would wait for its next timer, or forever."""
        idle = [rid for rid in run_ids if self._held.idle(rid)]
        if not idle:
            return
        cutoff = self._clock.now() - timedelta(seconds=interval)
        try:
            overdue = await self._runtime.db(self._store.overdue_runs, idle, cutoff)
        except DatabaseUnavailable as exc:
            log.warning("overdue sweep failed: %s", exc)
            return
        for rid in overdue:
            if self._held.idle(rid):
                log.info("run %s was due and not woken (a lost notification?); waking it", rid)
                self._loop.request_wake(rid)

    async def recovery_loop(self) -> None:
        while not self._loop.stopping:
            try:
                counts = await self._runtime.db(self._store.recover)
                if any(counts.values()):
                    log.info("recovery: %s", counts)
                    self._emit(("continuum", "lease", "recovered"), dict(counts), {"owner": self._owner})
                    self._loop.kick()
            except DatabaseUnavailable as exc:
                log.warning("recovery failed: %s", exc)
            except Exception:
                log.exception("recovery failed")
            await self._runtime.sleep(self._config.lease_ttl, self._stopping)
