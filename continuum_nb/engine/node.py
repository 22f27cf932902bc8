"""The engine of one instance in this process: its parts, wired together, on a loop thread.

The loop (``loop.LoopThread``) only schedules. Wakes run on drive threads (``drives.py``),
activity attempts on an activity pool or inline after a commit (``activities.py``), claims and
notifications in ``dispatcher.py``, lease renewal and recovery in ``leases.py``, the held runs'
timers in ``timers.py``. Each part is handed what it needs and the ``Loop`` interface, which the
``Engine`` implements; no part sees the Engine. The held-run table and its thread-ownership
rules are in ``held.py``. Nothing here touches IPython or widgets; observers subscribe to
telemetry instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from ..definitions.registry import StoredCodeRefused, resolve_for_run
from ..definitions.workflow import WorkflowDef
from ..store.base import Event, NewRun, RunRecord
from ..telemetry import emit
from .activities import Activities
from .children import ChildRuns
from .dispatcher import Dispatcher
from .drives import Drives
from .group_commit import GroupCommit
from .held import ENDED, HeldRun, HeldRuns
from .history import HistoryGuard
from .leases import Leases
from .loop import LoopThread
from .part import Surroundings
from .runner import Runner, WakeReport
from .timers import Timers
from .waiters import LocalOutcomes

if TYPE_CHECKING:
    from .instance import Instance

__all__ = ["Engine"]

log = logging.getLogger("continuum_nb.engine")


class Engine:
    """The parts of one engine, and the ``Loop`` interface they share (see loop.py)."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.config = cfg = instance.config
        self.store = instance.store
        self.clock = instance.clock
        self.owner = f"{instance.name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running = False
        self._stopping = False
        #: How long ``_shutdown`` waits for wakes and attempts in flight (``stop(timeout)``).
        self._drain_timeout = 10.0
        self._stored_names: set[str] = set()
        #: Stored versions this engine refused to load (altered rows, code that fails): never
        #: loaded again, logged once. Written on the store executor, one adopt at a time per run.
        self._refused: set[tuple[str, str]] = set()
        self.held = HeldRuns()
        self.runtime = LoopThread(f"continuum-{instance.name}", max(2, cfg.pool_size))
        self.outcomes = LocalOutcomes(lambda: instance.done_watcher_if_started)
        parts = Surroundings(owner=self.owner, config=cfg, store=self.store, clock=self.clock,
                             runtime=self.runtime, loop=self, held=self.held, emit=self.emit)
        self.activities = Activities(parts)
        self.group_commit = GroupCommit(self.store, cfg.wake_batch_size,
                                        lambda event, measurements: self.emit(event, measurements, {}))
        self.runner = Runner(
            self.store, self.clock, self.owner, instance.name, cfg.lease_ttl, cfg.release_after,
            self.activities.knows, cfg.snapshot_threshold, cfg.snapshot_max_size_bytes,
            HistoryGuard(cfg.history_warn_events, cfg.history_max_events, cfg.max_payload_bytes),
            ChildRuns(self.store, lambda: instance.registries, cfg.allow_stored_code, cfg.max_child_depth,
                      cfg.retention),
            commit=self.group_commit.commit, outcome_journaled=self.activities.forget,
        )
        self.timers = Timers(parts)
        self.drives = Drives(parts, runner=self.runner, activities=self.activities, timers=self.timers,
                             on_report=self._handle, notify_waiters=self.outcomes.notify)
        # The instance's shared LISTEN connection, resolved here on the caller's thread, so the
        # loop never takes the instance lock.
        self.dispatcher = Dispatcher(parts, activities=self.activities, hub=instance.notifications(),
                                     known_workflows=self.known_workflows,
                                     refresh_stored_names=self.refresh_stored_names, adopt=self.adopt)
        self.leases = Leases(parts, activities=self.activities)

    # --- the Loop interface (loop.py) ----------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping

    def post(self, fn: Any, *args: Any) -> None:
        self.runtime.post(fn, *args)

    def kick(self) -> None:
        self.runtime.kick()

    def request_wake(self, run_id: uuid.UUID) -> None:
        self.drives.request_wake(run_id)

    def deliver_outcome(self, run_id: uuid.UUID, seq: int, outcome: Any, record: Any = None) -> bool:
        held = self.held.get(run_id)
        if held is None or self._stopping:
            return False
        held.outcomes[seq] = outcome
        if record is not None:
            held.outcome_records[seq] = record
        held.inflight.discard(seq)
        self.request_wake(run_id)
        return True

    def let_go(self, run_id: uuid.UUID, *, tell_waiters: bool) -> None:
        held = self.held.pop(run_id)
        if held is not None and held.outcomes:
            # Outcomes handed to the run after its last wake read them (it was being released,
            # or its lease was lost): write them to their task rows instead, so they are
            # journaled by whoever runs it next and the bodies do not run again.
            pending, held.outcomes = dict(held.outcomes), {}
            for seq, outcome in pending.items():
                record = held.outcome_records.pop(seq, None)
                if outcome.local and record is not None:
                    self.runtime.spawn(self.activities.write_outcome(record, seq, outcome))
        self.timers.cancel(run_id)
        self.drives.forget(run_id)
        if tell_waiters:
            self.outcomes.notify(run_id)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.running = True
        self.runtime.run(self._main, self._exited)
        # Here, not on the loop: in place before start() returns, and before a wait() that
        # follows subscribes for run ends only (which would otherwise restart the connection).
        self.dispatcher.listen()
        self.timers.follow_clock()

    def _exited(self) -> None:
        self.running = False

    async def _main(self) -> None:
        # Module-defined workflows are stored too, so clients can start them by name and
        # operators can see which versions exist.
        for wf in [w for reg in self.instance.registries for w in reg.all()]:
            try:
                await self.runtime.db(self.instance.save_version, wf)
            except Exception:
                log.warning("could not store version of workflow %s", wf.name, exc_info=True)
        try:
            await asyncio.gather(
                self.dispatcher.claim_loop(), self.leases.heartbeat_loop(), self.leases.recovery_loop()
            )
        finally:
            self.dispatcher.unlisten()
            await self._shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, wait up to ``timeout`` seconds for wakes and attempts in flight, then
        release every run lease (attempts still running keep their task leases until expiry)."""
        if not self.running or self.runtime.loop is None:
            return
        self.timers.unfollow_clock()
        self._drain_timeout = max(0.0, timeout)
        self._stopping = True
        self.runtime.post(self.kick)
        self.runtime.post(self.runtime.wake_sleepers)
        self.runtime.join(timeout + 5)
        self.drives.shutdown()
        self.activities.shutdown()

    async def _shutdown(self) -> None:
        # Let in-flight wakes and activity attempts finish (bounded by stop()), then release every lease.
        await self.runtime.drain(self.drives.running, self._drain_timeout)
        self.timers.cancel_all()
        for held in self.held.snapshot():
            for seq, outcome in list(held.outcomes.items()):
                record = held.outcome_records.get(seq)
                if outcome.local and record is not None:
                    await self.activities.write_outcome(record, seq, outcome)
            held.outcomes.clear()
            try:
                await self.runtime.db(self.runner.release, held)
            except Exception:
                log.warning("could not release run %s on shutdown", held.run_id, exc_info=True)
        self.held.clear()

    # --- what runs here ------------------------------------------------------------------------------
    def known_workflows(self) -> list[str]:
        names: set[str] = set()
        for reg in self.instance.registries:
            names |= reg.names()
        return sorted(names | self._stored_names)

    def refresh_stored_names(self) -> None:
        if self.config.allow_stored_code:
            self._stored_names = set(self.store.stored_workflow_names())

    # --- starting runs (called from user threads) -------------------------------------------------
    def start_run(self, wf: WorkflowDef, run: NewRun, timeout: float = 60.0) -> None:
        """Insert ``run`` together with its first wake, leased to this engine. Returns once that
        commit is durable; the run goes on in the background (on a drive thread: the caller's
        thread hands it over directly, without a hop through the loop)."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.drives.start(wf, run, started)
        started.result(timeout)

    @property
    def waking(self) -> dict[uuid.UUID, bool]:
        """Runs with a wake in progress (value: woken again once it returns)."""
        return self.held.waking

    def recent_outcome(self, run_id: uuid.UUID) -> tuple[str, Any, Any] | None:
        """(any thread) The outcome of a run that ended here lately, if it is still kept."""
        return self.outcomes.recent(run_id)

    def holds(self, run_id: uuid.UUID) -> bool:
        """Whether this engine drives the run now (it reports the run's end to local waiters)."""
        return self.held.holds(run_id)

    def release_now(self, run_id: uuid.UUID, timeout: float = 10.0) -> None:
        """Drop a held run and release its lease (from a user thread; used by upgrade)."""

        async def go() -> None:
            held = self.held.get(run_id)
            if held is None:
                return
            self.let_go(run_id, tell_waiters=False)
            await self.runtime.db(self.runner.release, held)

        self.runtime.submit(go()).result(timeout)

    # --- the loop's side of a wake -------------------------------------------------------------------
    def _handle(self, held: HeldRun, report: WakeReport) -> None:
        """(loop) Act on a wake's report: start its activities, set its timer, bound the cache."""
        run_id = held.run_id
        if report.state in (*ENDED, "lost", "released"):
            # Local waiters skip reads while this engine drives the run; after a lost or released
            # run they must read. (A run that ended was reported by its drive thread, with the
            # outcome.)
            self.let_go(run_id, tell_waiters=report.state in ("lost", "released"))
            if report.state == "released":
                self.kick()  # a signal may already be waiting for it
            return
        self.held.touch(run_id)
        for task in report.new_tasks:
            self.activities.start(held, task, report.leased_at)
        self.timers.schedule(held)
        self._evict()

    def _evict(self) -> None:
        """Keep at most max_cached_runs coroutines: release the least recently woken idle runs."""
        excess = len(self.held) - self.config.max_cached_runs
        if excess <= 0:
            return  # no copy of the table: this runs after every wake, and it may hold 10,000 runs
        for run_id in self.held.ids()[:excess]:
            held = self.held.get(run_id)  # a drive thread may have let go of it since
            if held is None or held.inflight or run_id in self.held.waking:
                continue
            self.let_go(run_id, tell_waiters=False)
            self.runtime.spawn(self.runtime.db(self.runner.release, held))

    def adopt(self, record: RunRecord, journal: list[Event] | None = None) -> None:
        """(loop) Take a run this engine just claimed (with its journal, when the claim's batch
        read it) and wake it: at once when its exact version is registered here, else once its
        code is found off the loop (that may read the store and load a stored cell)."""
        if not self._stopping:
            for reg in self.instance.registries:
                wf = reg.get(record.workflow, record.version_hash)
                if wf is not None:  # its exact version is registered here: no store read, no hop
                    self._hold(record, wf, True, journal)
                    return
        self.runtime.spawn(self._adopt(record, journal))

    def _hold(self, record: RunRecord, wf: WorkflowDef, exact: bool, journal: list[Event] | None) -> None:
        token = record.lease_token
        assert token is not None
        self.held.add(HeldRun(record=record, token=token, wf=wf, exact_version=exact,
                              trace_context=record.trace_context, journal=journal))
        self.request_wake(record.id)

    async def _adopt(self, record: RunRecord, journal: list[Event] | None) -> None:
        token = record.lease_token
        assert token is not None
        try:
            wf, exact = await self.runtime.db(
                resolve_for_run, self.instance.registries, self.store, record.workflow, record.version_hash,
                self.config.allow_stored_code, self._refused,
            )
        except StoredCodeRefused as exc:
            # Refused once (the version is remembered): the run is parked, visibly, with why.
            log.error("run %s (%s) cannot run: %s", record.id, record.workflow, exc)
            error = {"type": "stored_code_refused", "message": f"{exc}; fix or re-run the %%workflow cell, "
                     f"then cn.resume({str(record.id)!r})", "version_hash": record.version_hash}
            await self.runtime.db(self.runner.park, record, token, error)
            return
        except Exception as exc:
            log.warning("cannot run %s (%s): %s", record.id, record.workflow, exc)
            wf, exact = None, False
        if wf is None or self._stopping:
            # Nobody here can run it: give it back; it stays visible as suspended.
            await self.runtime.db(self.store.release_run, record.id, token)
            return
        self._hold(record, wf, exact, journal)

    def emit(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        emit(event, measurements, {"instance": self.instance.name, **metadata})
