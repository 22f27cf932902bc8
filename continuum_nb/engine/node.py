"""The engine of one instance in this process: a background thread with its own asyncio loop.

The loop only schedules: wakes run on a pool of drive threads (``Runner.wake``), activity
attempts on an activity pool (``activities.py``), claims and notifications in ``dispatcher.py``,
lease renewal and recovery in ``leases.py``. Nothing here touches IPython or widgets; observers
subscribe to telemetry instead.

A wake whose only new work is one plain activity (no timeout) runs that attempt on the same
drive thread right after the commit, then the next wake, and so on: a chain of steps costs one
commit per step and no thread hand-offs. Everything else (async activities, timeouts, several
activities at once, timers, signals) goes through the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ..store.base import NewRun, NewTask, RunRecord, TaskOutcome
from ..telemetry import emit
from ..workflow import ACTIVITIES, WorkflowDef
from . import activities, dispatcher, leases
from .drives import ENDED, Drives
from .registry import resolve_for_run
from .runner import HeldRun, Runner, WakeReport

if TYPE_CHECKING:
    from .instance import Instance

__all__ = ["Engine"]

log = logging.getLogger("continuum_nb.engine")
T = TypeVar("T")
#: How many outcomes of runs that ended here are kept for wait() calls that come after the end.
RECENT_OUTCOMES = 256


class Engine(Drives):
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.config = instance.config
        self.store = instance.store
        self.clock = instance.clock
        self.owner = f"{instance.name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runner = Runner(
            self.store, self.clock, self.owner, instance.name, self.config.lease_ttl,
            self.config.release_after, self.knows_activity,
            self.config.snapshot_threshold, self.config.snapshot_max_size_bytes,
        )
        # Runs this engine holds, least recently woken first. Owned by the loop, except that a
        # drive thread registers the run it starts (_start_drive) and forgets the run it ended
        # (_let_go_here): loop code iterates over snapshots (list(...)) of it and looks runs up
        # with .get().
        self.held: OrderedDict[uuid.UUID, HeldRun] = OrderedDict()
        self.tasks_inflight: dict[uuid.UUID, int] = {}  # task id -> lease token
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self.stopping = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._kick: asyncio.Event | None = None
        self._waking: dict[uuid.UUID, bool] = {}  # run id -> wake requested again while running
        self._starting: set[uuid.UUID] = set()  # started by start_run, not registered in held yet
        self._drives_running: set[concurrent.futures.Future[None]] = set()
        # Outcomes of runs that ended here (terminal states only: a drifted run can be resumed),
        # so a wait() that comes just after the end needs no read. Bounded: results can be large.
        self._recent: OrderedDict[uuid.UUID, tuple[str, Any, Any]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._db = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, self.config.pool_size), thread_name_prefix=f"continuum-{instance.name}-db"
        )
        # Wakes (and the attempts chained to them) run here, not on _db, so claims, heartbeats
        # and releases never queue behind activity bodies. At most activity_concurrency threads
        # run attempts at once (activity_bodies), so the rest are always free for wakes.
        self._drives = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.activity_concurrency + max(2, self.config.pool_size),
            thread_name_prefix=f"continuum-{instance.name}-drive",
        )
        #: Held while an activity body runs, inline or on the activity pool: at most
        #: activity_concurrency bodies at once in this engine.
        self.activity_bodies = threading.BoundedSemaphore(self.config.activity_concurrency)
        self.activity_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.activity_concurrency, thread_name_prefix=f"continuum-{instance.name}-act"
        )
        self.activity_slots = self.config.activity_concurrency
        self._bg: set[asyncio.Task[Any]] = set()
        self._unsubscribe_clock: Callable[[], None] | None = None
        self._stored_names: set[str] = set()
        # The instance's shared LISTEN connection, resolved and subscribed to on the caller's
        # thread (start()), so the loop never takes the instance lock.
        self._listener = dispatcher.ListenerThread(self)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._thread_main, name=f"continuum-engine-{self.instance.name}", daemon=True
        )
        self.running = True
        self._thread.start()
        self._ready.wait(10)
        # Here, not on the loop: in place before start() returns, and before a wait() that
        # follows subscribes for run ends only (which would otherwise restart the connection).
        self._listener.start()
        self._unsubscribe_clock = self.clock.subscribe(self._on_clock_jump)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        self._kick = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(self._main())
        except Exception:
            log.exception("engine %s crashed", self.owner)
        finally:
            self.running = False
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        # Module-defined workflows are stored too, so clients can start them by name and
        # operators can see which versions exist.
        for wf in [w for reg in self.instance.registries for w in reg.all()]:
            try:
                await self.db(self.instance.save_version, wf)
            except Exception:
                log.warning("could not store version of workflow %s", wf.name, exc_info=True)
        listener = self._listener
        try:
            await asyncio.gather(
                dispatcher.claim_loop(self),
                leases.heartbeat_loop(self),
                leases.recovery_loop(self),
            )
        finally:
            listener.stop()
            await self._shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.running or self.loop is None:
            return
        if self._unsubscribe_clock:
            self._unsubscribe_clock()
        self.stopping = True
        try:
            self.loop.call_soon_threadsafe(self.kick)
        except RuntimeError:
            pass
        if self._thread is not None:
            self._thread.join(timeout + 5)
        self._db.shutdown(wait=False, cancel_futures=True)
        self._drives.shutdown(wait=False, cancel_futures=True)
        self.activity_pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        # Let in-flight wakes and activity attempts finish (bounded), then release every lease.
        deadline = self.loop.time() + 10.0 if self.loop else 0
        while (self._bg or self._drives_running) and self.loop and self.loop.time() < deadline:
            pending: list[Any] = list(self._bg)
            pending += [asyncio.wrap_future(f) for f in list(self._drives_running)]
            await asyncio.wait(pending, timeout=max(0.0, deadline - self.loop.time()))
            # a finished drive posts its report to the loop: let those callbacks run
            await asyncio.sleep(0)
        for h in self._timers.values():
            h.cancel()
        for held in list(self.held.values()):
            for seq, outcome in list(held.outcomes.items()):
                record = held.outcome_records.get(seq)
                if outcome.local and record is not None:
                    await self.write_outcome(record, seq, outcome)
            held.outcomes.clear()
            try:
                await self.db(self.runner.release, held)
            except Exception:
                log.warning("could not release run %s on shutdown", held.run_id, exc_info=True)
        self.held.clear()

    # --- helpers -------------------------------------------------------------------------------
    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        assert self.loop is not None
        return await self.loop.run_in_executor(self._db, fn, *args)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task

    def kick(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def knows_activity(self, name: str) -> bool:
        """Whether this engine runs attempts of ``name`` itself. While stopping it does not:
        tasks created then are left available for other engines."""
        return not self.stopping and name in ACTIVITIES

    def known_workflows(self) -> list[str]:
        names: set[str] = set()
        for reg in self.instance.registries:
            names |= reg.names()
        return sorted(names | self._stored_names)

    def refresh_stored_names(self) -> None:
        if self.config.allow_stored_code:
            self._stored_names = set(self.store.stored_workflow_names())

    def _on_clock_jump(self) -> None:
        """A virtual clock moved: wake held runs that are due now, and claim others."""
        loop = self.loop
        if loop is None or not self.running:
            return

        def on_loop() -> None:
            now = self.clock.now()
            for held in list(self.held.values()):
                if held.next_wakeup_at is not None and held.next_wakeup_at <= now:
                    self.request_wake(held.run_id)
            self.kick()

        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError:
            pass

    # --- starting runs (called from user threads) -------------------------------------------------
    def start_run(self, wf: WorkflowDef, run: NewRun, timeout: float = 60.0) -> None:
        """Insert ``run`` together with its first wake, leased to this engine. Returns once that
        commit is durable; the run goes on in the background (on a drive thread: the caller's
        thread hands it over directly, without a hop through the loop)."""
        assert self.loop is not None
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._starting.add(run.id)
        self._waking[run.id] = False  # a new key: nothing else touches it until registered
        self._submit(self._start_drive, wf, run, started)
        started.result(timeout)

    @property
    def waking(self) -> dict[uuid.UUID, bool]:
        """Runs with a wake in progress (value: woken again once it returns)."""
        return self._waking

    def recent_outcome(self, run_id: uuid.UUID) -> tuple[str, Any, Any] | None:
        """(any thread) The outcome of a run that ended here lately, if it is still kept."""
        with self._recent_lock:
            return self._recent.get(run_id)

    def holds(self, run_id: uuid.UUID) -> bool:
        """Whether this engine drives the run now (it reports the run's end to local waiters)."""
        return run_id in self.held or run_id in self._starting

    def _handle(self, held: HeldRun, report: WakeReport) -> None:
        run_id = held.run_id
        if report.state in (*ENDED, "lost", "released"):
            self._drop(run_id)
            if report.state in ("lost", "released"):
                # Local waiters skip reads while this engine drives the run; now they must read.
                # (A run that ended was reported by its drive thread, with the outcome.)
                self.notify_waiters(run_id)
            if report.state == "released":
                self.kick()  # a signal may already be waiting for it
            return
        self.held.move_to_end(run_id)
        for task in report.new_tasks:
            self.start_activity(held, task)
        self._schedule_timer(held)
        self._evict()

    def notify_waiters(self, run_id: uuid.UUID, outcome: tuple[str, Any, Any] | None = None) -> None:
        """(any thread) Tell local waiters: the outcome of a run that ended here, or (no outcome)
        that this engine no longer drives the run, so they read its state instead."""
        if outcome is not None and outcome[0] in ("completed", "failed"):
            with self._recent_lock:
                self._recent[run_id] = outcome
                if len(self._recent) > RECENT_OUTCOMES:
                    self._recent.popitem(last=False)
        watcher = self.instance._done_watcher
        if watcher is not None:
            watcher.notify_local(str(run_id), outcome)

    def _schedule_timer(self, held: HeldRun) -> None:
        assert self.loop is not None
        old = self._timers.pop(held.run_id, None)
        if old is not None:
            old.cancel()
        if held.next_wakeup_at is None:
            return
        delay = max(0.0, (held.next_wakeup_at - self.clock.now()).total_seconds())
        self._timers[held.run_id] = self.loop.call_later(delay, self.request_wake, held.run_id)

    def _drop(self, run_id: uuid.UUID) -> None:
        held = self.held.pop(run_id, None)
        if held is not None and held.outcomes:
            # Outcomes handed to the run after its last wake read them (it was being released,
            # or its lease was lost): write them to their task rows instead, so they are
            # journaled by whoever runs it next and the bodies do not run again.
            pending, held.outcomes = dict(held.outcomes), {}
            for seq, outcome in pending.items():
                record = held.outcome_records.pop(seq, None)
                if outcome.local and record is not None:
                    self.spawn(self.write_outcome(record, seq, outcome))
        h = self._timers.pop(run_id, None)
        if h is not None:
            h.cancel()

    def _evict(self) -> None:
        """Keep at most max_cached_runs coroutines: release the least recently woken idle runs."""
        excess = len(self.held) - self.config.max_cached_runs
        for run_id in list(self.held)[: max(0, excess)]:
            held = self.held.get(run_id)  # a drive thread may have let go of it since
            if held is None or held.inflight or run_id in self._waking:
                continue
            self._drop(run_id)
            self.spawn(self.db(self.runner.release, held))

    def release_now(self, run_id: uuid.UUID, timeout: float = 10.0) -> None:
        """Drop a held run and release its lease (from a user thread; used by upgrade)."""
        assert self.loop is not None

        async def go() -> None:
            held = self.held.get(run_id)
            if held is None:
                return
            self._drop(run_id)
            await self.db(self.runner.release, held)

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout)

    # --- claimed runs -------------------------------------------------------------------------------
    def adopt(self, record: RunRecord) -> None:
        """Take a run this engine just claimed: find its code, then wake it."""
        try:
            wf, exact = resolve_for_run(
                self.instance.registries, self.store, record.workflow, record.version_hash,
                self.config.allow_stored_code,
            )
        except Exception as exc:  # WorkflowNotFound, or a stored cell that no longer executes
            log.warning("cannot run %s (%s): %s", record.id, record.workflow, exc)
            wf, exact = None, False
        assert record.lease_token is not None
        if wf is None:
            # Nobody here can run it: give it back; it stays visible as suspended.
            self.spawn(self.db(self.store.release_run, record.id, record.lease_token))
            return
        held = HeldRun(record=record, token=record.lease_token, wf=wf, exact_version=exact,
                       trace_context=record.trace_context)
        self.held[record.id] = held
        self.request_wake(record.id)

    # --- activities ------------------------------------------------------------------------------------
    def start_activity(self, held: HeldRun | None, task: NewTask | Any) -> None:
        self.spawn(activities.run_attempt(self, held, task))

    async def write_outcome(self, record: Any, seq: int, outcome: Any) -> None:
        """Write a local attempt's outcome to its task row (fenced by the task lease), for a run
        this engine does not (or no longer) hold: whoever runs it next journals it."""
        key = None
        if outcome.state == "completed" and not outcome.idempotency_hit and record.idempotency_key:
            key = (record.activity, record.idempotency_key)
        try:
            ok = await self.db(self.store.complete_task, record,
                               TaskOutcome(record.id, outcome.state, outcome.result, outcome.error, key, seq),
                               self.now())
        except Exception:
            log.warning("could not write the outcome of task %s; it will run again", record.id, exc_info=True)
            return
        if not ok:
            log.info("outcome of task %s dropped: its lease was lost", record.id)

    def deliver_outcome(self, run_id: uuid.UUID, seq: int, outcome: Any, record: Any = None) -> bool:
        """Hand an attempt's outcome to the run if this engine still holds it (the run's next
        wake journals it in the same commit). False: the caller must write it to the task row."""
        held = self.held.get(run_id)
        if held is None or self.stopping:
            return False
        held.outcomes[seq] = outcome
        if record is not None:
            held.outcome_records[seq] = record
        held.inflight.discard(seq)
        self.request_wake(run_id)
        return True

    def now(self) -> datetime:
        return self.clock.now()

    def emit(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        emit(event, measurements, {"instance": self.instance.name, **metadata})
