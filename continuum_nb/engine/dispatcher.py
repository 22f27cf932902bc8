"""Claims runnable runs and activity tasks (FOR UPDATE SKIP LOCKED in the store), woken by
LISTEN/NOTIFY, with a poll as the fallback.

Only runs of workflows this engine knows are claimed: registered in this process (any version),
or stored ``%%workflow`` sources it may load. Only tasks of activities defined here are claimed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from ..errors import DatabaseUnavailable
from ..store.base import CHANNEL_DONE, CHANNEL_TASKS, CHANNEL_WAKE
from ..workflow import ACTIVITIES
from .clock import wall_now

if TYPE_CHECKING:
    from .node import Engine

log = logging.getLogger("continuum_nb.dispatcher")


async def claim_loop(engine: Engine) -> None:
    backoff = engine.config.poll_interval
    refresh_every = 5
    n = 0
    while not engine.stopping:
        assert engine._kick is not None
        engine._kick.clear()
        try:
            if n % refresh_every == 0:
                await engine.db(engine.refresh_stored_names)
            n += 1
            await _claim_once(engine)
            backoff = engine.config.poll_interval
            timeout = engine.config.poll_interval
            names = engine.known_workflows()
            if names:
                nxt = await engine.db(engine.store.next_wakeup, names)
                if nxt is not None:
                    timeout = min(timeout, max(0.0, (nxt - engine.clock.now()).total_seconds()))
        except DatabaseUnavailable as exc:
            log.warning("engine %s: database unavailable (%s); retrying in %.1fs", engine.owner, exc, backoff)
            timeout = backoff
            backoff = min(backoff * 2, 30.0)
        except Exception:
            log.exception("engine %s: claim loop error", engine.owner)
            timeout = engine.config.poll_interval
        if engine.stopping:
            break
        try:
            await asyncio.wait_for(engine._kick.wait(), timeout=max(timeout, 0.001))
        except asyncio.TimeoutError:
            pass


async def _claim_once(engine: Engine) -> None:
    names = engine.known_workflows()
    free_runs = engine.config.run_concurrency - len(engine.held)
    if names and free_runs > 0:
        claimed = await engine.db(
            engine.store.claim_runs, engine.owner, names, engine.clock.now(), engine.config.lease_ttl, free_runs
        )
        for record in claimed:
            engine.adopt(record)
    free_tasks = engine.activity_slots - len(engine.tasks_inflight)
    acts = sorted(ACTIVITIES)
    if acts and free_tasks > 0:
        tasks = await engine.db(
            engine.store.claim_tasks, engine.owner, acts, wall_now(), engine.config.lease_ttl, free_tasks
        )
        for task in tasks:
            engine.start_activity(engine.held.get(task.run_id), task)


class ListenerThread:
    """Forwards the instance's notifications (its shared LISTEN connection, on that thread) to
    the engine loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._hub = engine.instance.notifications()
        self._key: int | None = None

    def start(self) -> None:
        self._key = self._hub.subscribe(
            [CHANNEL_WAKE, CHANNEL_TASKS, CHANNEL_DONE],
            lambda channel, payload: self._post((channel, payload)), lambda: self._post(None),
        )

    def stop(self) -> None:
        if self._key is not None:
            self._hub.unsubscribe(self._key)
            self._key = None

    def _post(self, item: tuple[str, str] | None) -> None:
        loop = self.engine.loop
        if loop is None:
            return
        if item is not None and item[0] == CHANNEL_DONE:
            run_id = _run_id(item[1])
            if run_id is None or not _done_concerns(self.engine, run_id):
                return  # most often the NOTIFY of a run this engine just finished: no loop wake-up
        try:
            loop.call_soon_threadsafe(_on_notification, self.engine, item)
        except RuntimeError:
            pass


def _done_concerns(engine: Engine, run_id: uuid.UUID) -> bool:
    """Whether a run's end (NOTIFY on CHANNEL_DONE) means this engine must let go of it: it
    holds the run and no wake of its own is running. A wake of ours reports the end itself (this
    may be the NOTIFY of its own commit, which can arrive before the wake returns); if the run
    was cancelled meanwhile, that wake's commit is refused and the run is dropped then.
    Membership tests only: the listener thread filters with it, the loop decides with it."""
    return run_id in engine.held and run_id not in engine.waking


def _run_id(payload: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(payload)
    except ValueError:
        return None


def _on_notification(engine: Engine, item: tuple[str, str] | None) -> None:
    if item is None:
        engine.kick()
        return
    channel, payload = item
    run_id = _run_id(payload) if channel in (CHANNEL_WAKE, CHANNEL_DONE) else None
    if channel == CHANNEL_DONE:
        held = engine.held.get(run_id) if run_id is not None else None
        if held is not None and _done_concerns(engine, held.run_id):
            # Cancelled (or finished) elsewhere: forget it; its lease was cleared.
            held.replayer = None
            engine._drop(held.run_id)
            engine.notify_waiters(held.run_id)  # local waiters skip reads while the run was held
        return
    if channel == CHANNEL_WAKE and run_id is not None and run_id in engine.held:
        engine.request_wake(run_id)
        return
    engine.kick()
