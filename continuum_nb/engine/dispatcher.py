"""Claims runnable runs and activity tasks (FOR UPDATE SKIP LOCKED in the store), woken by
LISTEN/NOTIFY, with a poll as the fallback.

Only runs of workflows this engine knows are claimed: registered in this process (any version),
or stored ``%%workflow`` sources it may load. Only tasks of activities defined here are claimed.
Notifications arrive on the instance's shared LISTEN connection (its thread) and are forwarded
to the loop: a wake for a held run, a run's end that concerns this engine, else a claim.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from ..definitions.activity import ACTIVITIES
from ..errors import DatabaseUnavailable
from ..store.base import CHANNEL_DONE, CHANNEL_TASKS, CHANNEL_WAKE, Event, RunRecord
from .activities import Activities
from .listening import Notifications
from .part import Part, Surroundings

__all__ = ["Dispatcher"]

log = logging.getLogger("continuum_nb.dispatcher")

#: How many claim rounds pass between re-reads of the stored workflow names.
_REFRESH_EVERY = 5

#: A run claimed in a batch gets its journal read with the batch's when it has at most this many
#: events and this many bytes of payloads; a longer one loads its own (``Runner._load``).
PREFETCH_MAX_EVENTS = 500
PREFETCH_MAX_BYTES = 256 * 1024

#: With runs runnable and no room for a batch, the claim loop looks again this often at most.
ROOM_RECHECK = 0.05


class Dispatcher(Part):
    """The claim loop, and the forwarding of notifications to the engine loop."""

    def __init__(self, surroundings: Surroundings, *, activities: Activities, hub: Notifications,
                 known_workflows: Callable[[], list[str]], refresh_stored_names: Callable[[], None],
                 adopt: Callable[[RunRecord, list[Event] | None], None]) -> None:
        super().__init__(surroundings)
        self._activities = activities
        self._hub = hub
        self._known_workflows = known_workflows
        self._refresh_stored_names = refresh_stored_names
        self._adopt = adopt
        self._key: int | None = None
        #: The last claim took as many runs as it had room for: more may be runnable (runs whose
        #: lease merely lapsed, among them, which ``next_wakeup`` does not count).
        self._more = False
        #: Runnable runs are waiting for room here: a run leaving the table kicks the claim loop
        #: once there is room for a batch.
        self._want_room = False
        self._held.on_leave = self._left

    # --- claims (loop) ----------------------------------------------------------------------------
    async def claim_loop(self) -> None:
        cfg = self._config
        backoff = cfg.poll_interval
        n = 0
        while not self._loop.stopping:
            self._runtime.clear_kick()
            try:
                if n % _REFRESH_EVERY == 0:
                    await self._runtime.db(self._refresh_stored_names)
                n += 1
                await self._claim_once()
                backoff = cfg.poll_interval
                timeout = cfg.poll_interval
                names = self._known_workflows()
                if names:
                    nxt = await self._runtime.db(self._store.next_wakeup, names)
                    if nxt is not None:
                        timeout = min(timeout, max(0.0, (nxt - self._clock.now()).total_seconds()))
                if self._more or timeout == 0.0:
                    timeout = self._runnable_now()
            except DatabaseUnavailable as exc:
                log.warning("engine %s: database unavailable (%s); retrying in %.1fs", self._owner, exc, backoff)
                timeout = backoff
                backoff = min(backoff * 2, 30.0)
            except Exception:
                log.exception("engine %s: claim loop error", self._owner)
                timeout = cfg.poll_interval
            if self._loop.stopping:
                break
            await self._runtime.wait_for_kick(timeout)

    def _room(self) -> bool:
        """(any thread) Room for a claim worth its round trips: half the run slots free."""
        cfg = self._config
        return cfg.run_concurrency - len(self._held) >= max(1, cfg.run_concurrency // 2)

    def _runnable_now(self) -> float:
        """(loop) How long to wait before the next claim when runs are runnable now: none with
        room for a batch; else until runs leave the table (``_left``), re-checked every
        ``ROOM_RECHECK`` seconds (a held run may settle without leaving). Not 0 then: each
        claim round without room would only cost round trips while the wakes need the cores."""
        if self._room():
            return 0.0
        self._want_room = True
        return min(self._config.poll_interval, ROOM_RECHECK)

    def _left(self) -> None:
        """(any thread: ``HeldRuns.on_leave``) A run left the table."""
        if self._want_room and self._room():
            self._want_room = False
            self._runtime.post(self._loop.kick)

    async def _claim_once(self) -> None:
        cfg = self._config
        names = self._known_workflows()
        free_runs = cfg.run_concurrency - len(self._held)
        self._more = self._want_room = False
        if names and free_runs > 0:
            claimed = await self._runtime.db(
                self._store.claim_runs, self._owner, names, self._clock.now(), cfg.lease_ttl, free_runs
            )
            self._more = len(claimed) >= free_runs
            journals = await self._prefetch(claimed)
            for record in claimed:
                self._adopt(record, journals.get(record.id))
        free_tasks = self._activities.free_slots()
        acts = sorted(ACTIVITIES)
        if acts and free_tasks > 0:
            leased_at = time.monotonic()
            tasks = await self._runtime.db(
                self._store.claim_tasks, self._owner, acts, self._clock.now(), cfg.lease_ttl, free_tasks
            )
            for task in tasks:
                self._activities.start(self._held.get(task.run_id), task, leased_at)

    async def _prefetch(self, claimed: list[RunRecord]) -> dict[uuid.UUID, list[Event]]:
        """The journals of a batch of claimed runs in one round trip, so that each first wake
        does not pay one of its own. Read under the leases just taken (the store checks each
        token): nobody else appends to those journals until this engine lets go. With snapshots
        on, only journals shorter than the threshold, which the wake replays whole anyway; a
        longer one may have a snapshot, which its wake loads instead."""
        if len(claimed) < 2:
            return {}  # one run: its wake's own read costs the same round trip
        max_events = PREFETCH_MAX_EVENTS
        if self._config.snapshot_threshold is not None:
            max_events = min(max_events, self._config.snapshot_threshold - 1)
        leases = {r.id: r.lease_token for r in claimed if r.lease_token is not None}
        try:
            return await self._runtime.db(self._store.load_journals, leases, max_events, PREFETCH_MAX_BYTES)
        except Exception as exc:  # never lose the claimed runs: each wake loads its own (and meets
            # the outage there)
            log.warning("engine %s: journals of %d claimed runs not read together (%s)", self._owner,
                        len(leases), exc)
            return {}

    # --- notifications ----------------------------------------------------------------------------
    def listen(self) -> None:
        """(caller's thread) Subscribe to the instance's shared LISTEN connection."""
        self._key = self._hub.subscribe(
            [CHANNEL_WAKE, CHANNEL_TASKS, CHANNEL_DONE],
            self._forward, lambda: self._runtime.post(self._loop.kick),
        )

    @property
    def listening(self) -> bool:
        """Whether this engine is subscribed to the instance's notifications."""
        return self._key is not None

    def unlisten(self) -> None:
        if self._key is not None:
            self._hub.unsubscribe(self._key)
            self._key = None

    def _forward(self, channel: str, payload: str) -> None:
        """(listening thread) Post a notification to the loop, unless it cannot concern us."""
        if channel == CHANNEL_DONE:
            run_id = _run_id(payload)
            if run_id is None or not self._done_concerns(run_id):
                return  # most often the NOTIFY of a run this engine just finished: no loop wake-up
        self._runtime.post(self._on_notification, channel, payload)

    def _done_concerns(self, run_id: uuid.UUID) -> bool:
        """Whether a run's end (NOTIFY on CHANNEL_DONE) means this engine must let go of it: it
        holds the run and no wake of its own is running. A wake of ours reports the end itself (this
        may be the NOTIFY of its own commit, which can arrive before the wake returns); if the run
        was cancelled meanwhile, that wake's commit is refused and the run is dropped then.
        Membership tests only: the listening thread filters with it, the loop decides with it."""
        return self._held.idle(run_id)

    def _on_notification(self, channel: str, payload: str) -> None:
        """(loop)"""
        run_id = _run_id(payload) if channel in (CHANNEL_WAKE, CHANNEL_DONE) else None
        if channel == CHANNEL_DONE:
            held = self._held.get(run_id)
            if held is not None and self._done_concerns(held.run_id):
                # Cancelled (or finished) elsewhere: forget it; its lease was cleared. Local
                # waiters skip reads while the run was held: they must read now.
                held.replayer = None
                self._loop.let_go(held.run_id, tell_waiters=True)
            return
        if channel == CHANNEL_WAKE and run_id is not None and run_id in self._held:
            self._loop.request_wake(run_id)
            return
        self._loop.kick()


def _run_id(payload: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(payload)
    except ValueError:
        return None
