"""The drive threads of an engine: where wakes run, outside the engine loop.

A wake runs on a drive thread (``Runner.wake``) and posts its report to the loop, which acts on
it (``_drive_done``). A wake whose only new work is one plain activity (no timeout) runs that
attempt on the same drive thread right after the commit, then the next wake, and so on
(``_chain``): a chain of steps costs one commit per step and no thread hand-offs. A run that
ended is reported to local waiters, and forgotten, by its drive thread (``_let_go_here``).

``Drives`` is a part of ``Engine`` (node.py), kept apart to keep each module to one idea.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ..errors import DatabaseUnavailable
from ..store.base import NewRun
from ..workflow import ACTIVITIES, WorkflowDef
from . import activities
from .runner import HeldRun, Runner, WakeReport

if TYPE_CHECKING:
    from ..config import Config
    from .node import Engine

__all__ = ["ENDED", "Drives"]

log = logging.getLogger("continuum_nb.engine")
#: The report states in which a run has ended (its outcome goes to local waiters).
ENDED = ("completed", "failed", "drifted")


class Drives:
    """Waking held runs on the drive threads (a part of ``Engine``)."""

    # Provided by Engine.
    config: Config
    runner: Runner
    held: OrderedDict[uuid.UUID, HeldRun]
    loop: asyncio.AbstractEventLoop | None
    stopping: bool
    activity_bodies: threading.BoundedSemaphore
    _waking: dict[uuid.UUID, bool]
    _starting: set[uuid.UUID]
    _drives: concurrent.futures.ThreadPoolExecutor
    _drives_running: set[concurrent.futures.Future[None]]
    _timers: dict[uuid.UUID, asyncio.TimerHandle]

    if TYPE_CHECKING:
        def _handle(self, held: HeldRun, report: WakeReport) -> None: ...
        def _drop(self, run_id: uuid.UUID) -> None: ...
        def notify_waiters(self, run_id: uuid.UUID, outcome: tuple[str, Any, Any] | None = None) -> None: ...

    def _start_drive(self, wf: WorkflowDef, run: NewRun, started: concurrent.futures.Future[None]) -> None:
        """(drive thread) The first wake with the insert; the caller is released as soon as it is
        committed, then the run goes on here."""
        try:
            held, report = self.runner.start(wf, run)
        except BaseException as exc:
            self._starting.discard(run.id)
            self._post(self._waking.pop, run.id, None)
            started.set_exception(exc)
            return
        # Registered here, before the chain goes on (the heartbeat renews its lease meanwhile),
        # not through the loop: a hop there would compete with this chain for the interpreter.
        # The only write to `held` off the loop; the loop iterates over snapshots of it, and
        # this run is in `_waking` (set by start_run), so nothing evicts it meanwhile.
        self._register(held)
        started.set_result(None)
        self._finish_drive(held, lambda: self._chain(held, report))

    def _register(self, held: HeldRun) -> None:
        self.held[held.run_id] = held
        self._starting.discard(held.run_id)

    # --- waking held runs ----------------------------------------------------------------------------
    def request_wake(self, run_id: uuid.UUID) -> None:
        """(loop) Wake a held run (coalesced: a wake requested while one runs runs once more
        after it)."""
        held = self.held.get(run_id)
        if held is None or self.stopping:
            return
        if run_id in self._waking:
            self._waking[run_id] = True
            if run_id not in self.held:
                # Its drive thread let go of it in between (_let_go_here pops `held`, then
                # `_waking`): leave no entry behind, or a later claim of the run would wait
                # for a wake that never runs.
                self._waking.pop(run_id, None)
            return
        self._waking[run_id] = False
        self._submit(self._drive, held)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        fut = self._drives.submit(fn, *args)
        self._drives_running.add(fut)
        fut.add_done_callback(self._drives_running.discard)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """(any thread) Run ``fn`` on the loop."""
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the engine stopped
            pass

    def _drive(self, held: HeldRun) -> None:
        """(drive thread) One wake, then the chain of inline steps after it."""
        self._finish_drive(held, lambda: self._chain(held, self.runner.wake(held)))

    def _finish_drive(self, held: HeldRun, drive: Callable[[], WakeReport]) -> None:
        """(drive thread) Run ``drive`` and post its report to the loop. A run that ended is
        reported to local waiters from here, without waiting for the loop."""
        try:
            report = drive()
        except DatabaseUnavailable as exc:
            self._post(self._drive_failed, held, exc, True)
            return
        except BaseException as exc:
            # Also what is not an Exception (a workflow raising SystemExit, say): without the
            # loop's clean-up the run would stay marked waking, and no wake would ever run again.
            log.exception("wake of run %s failed; dropping it from memory", held.run_id)
            self._post(self._drive_failed, held, exc, False)
            if not isinstance(exc, Exception):
                raise
            return
        if report.state in ENDED:
            self.notify_waiters(held.run_id, (report.state, report.result, report.error))
            if self._let_go_here(held):
                return
        self._post(self._drive_done, held, report)

    def _let_go_here(self, held: HeldRun) -> bool:
        """(drive thread) Forget a run that ended, without a hop through the loop, when the loop
        has nothing of it to undo (no timer handle, no outcomes to write): one thread wake-up
        less per run, at the moment the next run starts. Done as ``_drive_done`` would: out of
        ``held`` first, so a wake the loop requests meanwhile finds nothing to wake."""
        run_id = held.run_id
        if held.outcomes or run_id in self._timers or self.held.get(run_id) is not held:
            return False
        self.held.pop(run_id, None)
        self._waking.pop(run_id, None)
        return True

    def _drive_done(self, held: HeldRun, report: WakeReport) -> None:
        """(loop) Act on a drive's report, then wake the run again if that was asked meanwhile."""
        run_id = held.run_id
        again = self._waking.pop(run_id, False)  # done: from here on the cache may evict it
        current = self.held.get(run_id)
        if current is held:
            if again:
                self._waking[run_id] = False  # a wake is due: not evictable meanwhile
            self._handle(held, report)
        # else: dropped meanwhile (lease lost, cancelled elsewhere), maybe claimed again since as
        # a new HeldRun: this report no longer applies, but a wake asked for the new one does.
        current = self.held.get(run_id)
        if again and current is not None and not self.stopping:
            self._waking[run_id] = False
            self._submit(self._drive, current)
        else:
            self._waking.pop(run_id, None)

    def _drive_failed(self, held: HeldRun, exc: BaseException, retry: bool) -> None:
        """(loop) A drive raised: the commit may or may not have happened, so the run replays.
        With the database unavailable it is woken again after poll_interval; otherwise it is
        dropped from memory (its lease expires and any engine recovers it)."""
        held.replayer = None
        run_id = held.run_id
        self._waking.pop(run_id, None)
        if self.held.get(run_id) is not held:
            return  # dropped meanwhile (maybe held again as a new HeldRun, which wakes itself)
        if retry and self.loop is not None:
            log.warning("wake of %s postponed: %s", run_id, exc)
            self.loop.call_later(self.config.poll_interval, self.request_wake, run_id)
            return
        self._drop(run_id)
        self.notify_waiters(run_id)

    def _chain(self, held: HeldRun, report: WakeReport) -> WakeReport:
        """(drive thread) While the run waits on exactly one new plain activity and nothing else,
        run its attempt here and commit the next wake. Returns the last report for the loop."""
        while (report.state == "suspended" and len(report.new_tasks) == 1 and report.next_wakeup_at is None
               and not self.stopping):
            task = report.new_tasks[0]
            act = ACTIVITIES.get(task.activity)
            if not activities.inline_eligible(act) or held.waiting_on != [task.seq]:
                break
            if not self.activity_bodies.acquire(blocking=False):
                break  # every slot busy: the activity pool queues it
            assert act is not None
            report.new_tasks = []  # taken here: the loop must not start it again
            try:
                delivered = activities.attempt_inline(cast("Engine", self), held, task, act)
            finally:
                self.activity_bodies.release()
            if not delivered:
                break  # put back for a retry: the claim loop takes it when it is due
            report = self.runner.wake(held)
        return report
