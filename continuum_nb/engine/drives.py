"""The drive threads of an engine: where wakes run, outside the engine loop (a run's first wake
runs on the thread that starts it, unless that is the main thread: ``Drives.start``).

A wake runs on a drive thread (``Runner.wake``) and posts its report to the loop, which acts on
it (``_drive_done``). A wake whose only new work is one plain activity (no timeout) runs that
attempt on the same drive thread right after the commit, then the next wake, and so on
(``_chain``): a chain of steps costs one commit per step and no thread hand-offs. A run that
ended is reported to local waiters, and forgotten, by its drive thread (``_let_go_here``).

The drive threads never touch the loop's state except as ``held.py`` allows; everything else
they hand to the loop (``Loop.post``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from ..definitions.activity import ACTIVITIES
from ..definitions.workflow import WorkflowDef
from ..errors import DatabaseUnavailable
from ..replay.outcomes import error_dict
from ..store.base import NewRun
from .activities import Activities, inline_eligible
from .held import ENDED, HeldRun
from .part import Part, Surroundings
from .runner import Runner, WakeReport
from .timers import Timers

__all__ = ["Drives"]

log = logging.getLogger("continuum_nb.engine")

#: Wakes of one run that may fail in a row for a reason outside its workflow (the workflow's
#: own exceptions fail the run, not the wake) before the run is parked; between them the wake
#: is retried after a growing delay.
MAX_WAKE_FAILURES = 5
MAX_WAKE_BACKOFF = 60.0

#: (any thread) Tell local waiters a run's outcome, or (None) that this engine let go of it.
NotifyWaiters = Callable[[uuid.UUID, "tuple[str, Any, Any] | None"], None]


class Drives(Part):
    """Wakes held runs on the drive threads."""

    def __init__(self, surroundings: Surroundings, *, runner: Runner, activities: Activities, timers: Timers,
                 on_report: Callable[[HeldRun, WakeReport], None], notify_waiters: NotifyWaiters) -> None:
        super().__init__(surroundings)
        config, runtime = self._config, self._runtime
        self._runner = runner
        self._activities = activities
        self._timers = timers
        self._on_report = on_report
        self._notify_waiters = notify_waiters
        # Wakes (and the attempts chained to them) run here, not on the store executor, so
        # claims, heartbeats and releases never queue behind activity bodies. At most
        # activity_concurrency threads run attempts at once (Activities.bodies), so the rest are
        # always free for wakes.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.activity_concurrency + max(2, config.pool_size),
            thread_name_prefix=f"{runtime.name}-drive",
        )
        #: Drives submitted and not finished (shutdown waits for them).
        self.running: set[concurrent.futures.Future[None]] = set()
        #: (loop) Run id -> wakes of it that failed in a row.
        self._failures: dict[uuid.UUID, int] = {}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- a run started by this process --------------------------------------------------------
    def start(self, wf: WorkflowDef, run: NewRun, started: concurrent.futures.Future[None]) -> None:
        """(caller's thread) Insert ``run`` with its first wake; ``started`` is resolved once that
        commit is durable, and the run goes on on a drive thread.

        The first wake runs on the caller's own thread (it waits for that commit anyway): one
        thread hand-off less per run than handing it to a drive thread and waiting for its
        answer. Not on the main thread: Ctrl-C is delivered there, and a KeyboardInterrupt inside
        a group commit could strand the other runs' wakes queued with this one; nor while the
        engine stops (the drive threads refuse new work, and so does this)."""
        self._held.begin_start(run.id)
        if threading.current_thread() is threading.main_thread() or self._loop.stopping:
            self._submit(self._start_drive, wf, run, started)
            return
        here: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._track(here)  # a stop waits for it as for any drive, then releases the run
        try:
            first = self._first_wake(wf, run, started)
            if first is not None:
                try:
                    self._submit(self._finish_drive, first[0], lambda: self._chain(*first))
                except RuntimeError:  # the engine stopped meanwhile: its stop releases the held run
                    log.info("run %s started while its engine stopped; it goes on wherever it is claimed next",
                             run.id)
        finally:
            here.set_result(None)

    def _start_drive(self, wf: WorkflowDef, run: NewRun, started: concurrent.futures.Future[None]) -> None:
        """(drive thread) The first wake with the insert, then the run goes on here."""
        first = self._first_wake(wf, run, started)
        if first is not None:
            self._finish_drive(first[0], lambda: self._chain(*first))

    def _first_wake(self, wf: WorkflowDef, run: NewRun,
                    started: concurrent.futures.Future[None]) -> tuple[HeldRun, WakeReport] | None:
        """(the thread that runs it) The first wake with the insert; the caller is released as
        soon as it is committed (``started``). None: it failed, and ``started`` says why."""
        try:
            held, report = self._runner.start(wf, run)
        except BaseException as exc:
            self._held.start_failed(run.id)
            self._loop.post(self._held.waking.pop, run.id, None)
            started.set_exception(exc)
            return None
        # Registered here, before the chain goes on (the heartbeat renews its lease meanwhile),
        # not through the loop: a hop there would compete with this chain for the interpreter.
        self._held.register_started(held)
        started.set_result(None)
        return held, report

    # --- waking held runs ----------------------------------------------------------------------------
    def request_wake(self, run_id: uuid.UUID) -> None:
        """(loop) Wake a held run (coalesced: a wake requested while one runs runs once more
        after it)."""
        held = self._held.get(run_id)
        if held is None or self._loop.stopping:
            return
        waking = self._held.waking
        if run_id in waking:
            waking[run_id] = True
            if run_id not in self._held:
                # Its drive thread let go of it in between (let_go_ended pops the run, then
                # `waking`): leave no entry behind, or a later claim of the run would wait for a
                # wake that never runs.
                waking.pop(run_id, None)
            return
        waking[run_id] = False
        self._submit(self._drive, held)

    def forget(self, run_id: uuid.UUID) -> None:
        """(loop) The run left this engine: its count of failed wakes goes with it."""
        self._failures.pop(run_id, None)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._track(self._pool.submit(fn, *args))

    def _track(self, fut: concurrent.futures.Future[None]) -> None:
        self.running.add(fut)
        fut.add_done_callback(self.running.discard)

    def _drive(self, held: HeldRun) -> None:
        """(drive thread) One wake, then the chain of inline steps after it."""
        self._finish_drive(held, lambda: self._chain(held, self._runner.wake(held)))

    def _finish_drive(self, held: HeldRun, drive: Callable[[], WakeReport]) -> None:
        """(drive thread) Run ``drive`` and post its report to the loop. A run that ended is
        reported to local waiters from here, without waiting for the loop."""
        try:
            report = drive()
        except DatabaseUnavailable as exc:
            self._loop.post(self._drive_failed, held, exc, True)
            return
        except BaseException as exc:
            # Whatever it is (workflow code's own exceptions fail the run inside the replayer,
            # so this is the engine's or the store's): without the loop's clean-up the run would
            # stay marked waking, and no wake would ever run again.
            log.exception("wake of run %s failed", held.run_id)
            self._loop.post(self._drive_failed, held, exc, False)
            return
        if report.state in ENDED:
            self._notify_waiters(held.run_id, (report.state, report.result, report.error))
            # Forgotten here when the loop has nothing of it to undo: one thread wake-up less per
            # run, at the moment the next run starts.
            if self._held.let_go_ended(held, self._timers.pending(held.run_id)):
                return
        self._loop.post(self._drive_done, held, report)

    def _drive_done(self, held: HeldRun, report: WakeReport) -> None:
        """(loop) Act on a drive's report, then wake the run again if that was asked meanwhile."""
        run_id = held.run_id
        self._failures.pop(run_id, None)
        waking = self._held.waking
        again = waking.pop(run_id, False)  # done: from here on the cache may evict it
        if self._held.get(run_id) is held:
            if again:
                waking[run_id] = False  # a wake is due: not evictable meanwhile
            self._on_report(held, report)
        # else: dropped meanwhile (lease lost, cancelled elsewhere), maybe claimed again since as
        # a new HeldRun: this report no longer applies, but a wake asked for the new one does.
        current = self._held.get(run_id)
        if again and current is not None and not self._loop.stopping:
            waking[run_id] = False
            self._submit(self._drive, current)
        else:
            waking.pop(run_id, None)

    def _drive_failed(self, held: HeldRun, exc: BaseException, outage: bool) -> None:
        """(loop) A drive raised: the commit may or may not have happened, so the run replays.
        With the database unavailable it is woken again after poll_interval, for as long as the
        outage lasts. Any other failure is retried with a growing delay, MAX_WAKE_FAILURES times
        in a row at most; then the run is parked (``drifted``, with the reason), never looped."""
        held.replayer = None
        run_id = held.run_id
        self._held.waking.pop(run_id, None)
        if self._held.get(run_id) is not held:
            return  # dropped meanwhile (maybe held again as a new HeldRun, which wakes itself)
        if outage:
            log.warning("wake of %s postponed: %s", run_id, exc)
            self._runtime.call_later(self._config.poll_interval, self._loop.request_wake, run_id)
            return
        failures = self._failures.get(run_id, 0) + 1
        if failures < MAX_WAKE_FAILURES:
            self._failures[run_id] = failures
            delay = min(self._config.poll_interval * 2 ** failures, MAX_WAKE_BACKOFF)
            log.warning("wake of %s failed (%d in a row); retrying in %.1fs: %s", run_id, failures, delay, exc)
            self._runtime.call_later(delay, self._loop.request_wake, run_id)
            return
        self._failures.pop(run_id, None)
        err = error_dict(exc)
        error = {**err, "type": "wake_failed", "cause": err["type"],
                 "message": f"the run's wake failed {failures} times in a row; last: {err['type']}: "
                            f"{err['message']}; fix the cause, then cn.resume({str(run_id)!r})"}
        self._loop.let_go(run_id, tell_waiters=False)
        self._runtime.spawn(self._park(held, error))

    async def _park(self, held: HeldRun, error: dict[str, Any]) -> None:
        log.error("run %s parked as drifted: %s", held.run_id, error["message"])
        await self._runtime.db(self._runner.park, held.record, held.token, error)
        # No outcome with it: by now the run may have been resumed; waiters read its state.
        self._notify_waiters(held.run_id, None)

    def _chain(self, held: HeldRun, report: WakeReport) -> WakeReport:
        """(drive thread) While the run waits on exactly one new plain activity and nothing else,
        run its attempt here and commit the next wake. Returns the last report for the loop."""
        while (report.state == "suspended" and len(report.new_tasks) == 1 and report.next_wakeup_at is None
               and not self._loop.stopping):
            task = report.new_tasks[0]
            act = ACTIVITIES.get(task.activity)
            if not inline_eligible(act) or held.waiting_on != [task.seq]:
                break
            if not self._activities.bodies.acquire(blocking=False):
                break  # every slot busy: the activity pool queues it
            assert act is not None
            report.new_tasks = []  # taken here: the loop must not start it again
            try:
                delivered = self._activities.attempt_inline(held, task, act, report.leased_at)
            finally:
                self._activities.bodies.release()
            if not delivered:
                break  # put back for a retry: the claim loop takes it when it is due
            report = self._runner.wake(held)
        return report
