"""Lease renewal (heartbeat) and recovery.

The heartbeater pushes the expiry of every run and task lease this engine holds; a lease it
finds lost is dropped at once (``[continuum, lease, lost]``), and a held run that has been due
for more than an interval without being woken is woken (its NOTIFY was lost). Recovery — at boot and every lease
TTL — clears expired run leases and makes expired task leases available again, so a crashed
engine's work is picked up by any other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from ..errors import DatabaseUnavailable

if TYPE_CHECKING:
    from .node import Engine

log = logging.getLogger("continuum_nb.leases")


async def heartbeat_loop(engine: Engine) -> None:
    interval = engine.config.heartbeat_interval
    while not engine.stopping:
        await _sleep(engine, interval)
        if engine.stopping:
            return
        # a snapshot: drive threads register the runs they start while this runs
        runs = {rid: h.token for rid, h in list(engine.held.items()) if h.token}
        tasks = dict(engine.tasks_inflight)
        if not runs and not tasks:
            continue
        try:
            lost_runs, lost_tasks = await engine.db(
                engine.store.renew_leases, engine.owner, runs, tasks, engine.config.lease_ttl
            )
        except DatabaseUnavailable as exc:
            log.warning("heartbeat failed: %s", exc)
            continue
        for rid in lost_runs:
            held = engine.held.get(rid)
            if held is not None and held.token == runs.get(rid):
                engine.emit(("continuum", "lease", "lost"), {},
                            {"run_id": str(rid), "workflow": held.record.workflow, "lease_token": held.token})
                held.replayer = None
                engine._drop(rid)
        for tid in lost_tasks:
            engine.tasks_inflight.pop(tid, None)
        await _wake_overdue(engine, [rid for rid in runs if rid not in lost_runs], interval)


async def _wake_overdue(engine: Engine, run_ids: list[uuid.UUID], interval: float) -> None:
    """Wake held runs that have been due for more than a heartbeat interval and are not being
    woken: the NOTIFY that should have woken them (a signal, an outcome written by another
    engine) was lost, e.g. while the listening connection reconnected. Without this such a run
    would wait for its next timer, or forever."""
    idle = [rid for rid in run_ids if rid in engine.held and rid not in engine.waking]
    if not idle:
        return
    cutoff = engine.clock.now() - timedelta(seconds=interval)
    try:
        overdue = await engine.db(engine.store.overdue_runs, idle, cutoff)
    except DatabaseUnavailable as exc:
        log.warning("overdue sweep failed: %s", exc)
        return
    for rid in overdue:
        if rid in engine.held and rid not in engine.waking:
            log.info("run %s was due and not woken (a lost notification?); waking it", rid)
            engine.request_wake(rid)


async def recovery_loop(engine: Engine) -> None:
    while not engine.stopping:
        try:
            counts = await engine.db(engine.store.recover)
            if any(counts.values()):
                log.info("recovery: %s", counts)
                engine.emit(("continuum", "lease", "recovered"), dict(counts), {"owner": engine.owner})
                engine.kick()
        except DatabaseUnavailable as exc:
            log.warning("recovery failed: %s", exc)
        await _sleep(engine, engine.config.lease_ttl)


async def _sleep(engine: Engine, seconds: float) -> None:
    step = 0.2
    remaining = seconds
    while remaining > 0 and not engine.stopping:
        await asyncio.sleep(min(step, remaining))
        remaining -= step
