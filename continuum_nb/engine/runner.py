"""One run's lifecycle on this engine: claim → replay → live tail → ONE commit → suspend.

Synchronous on purpose: a wake runs on one of the engine's worker threads (workflow code runs
there too, driven by ``send()``), so it can be unit-tested against the in-memory store without an
event loop. The engine decides *when* to wake (drives.py); this decides *what* a wake commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..definitions.workflow import WorkflowDef
from ..errors import LeaseLost
from ..replay.outcomes import Blocked, Completed, Continued, Drifted, Failed, LiveOutcome
from ..replay.replayer import Replayer
from ..store.base import (
    NewRun,
    NewTask,
    NewTimer,
    RunRecord,
    Store,
    TaskOutcome,
    Wake,
    WakeResult,
)
from ..store.starts import starting_wake
from ..telemetry import _active as telemetry_active
from ..telemetry import emit
from .announce import announce_committed, emit_events
from .children import ChildRuns, new_children
from .clock import Clock
from .compaction import Compaction
from .continuing import continuing_wake
from .held import HeldRun
from .history import HistoryGuard
from .resolving import LiveResolver

__all__ = ["HeldRun", "KeyTaken", "Runner", "WakeReport", "emit_run_started"]

log = logging.getLogger("continuum_nb.engine")


class KeyTaken(Exception):
    """A keyed start (``Runner.start``) that did not drive the run: its key names ``run_id``
    already (``existing``; no workflow code ran), or this start inserted the run but lost its
    lease before the first wake committed (another engine drives it)."""

    def __init__(self, run_id: UUID, *, existing: bool) -> None:
        super().__init__(f"run {run_id} {'already has this idempotency key' if existing else 'is driven elsewhere'}")
        self.run_id = run_id
        self.existing = existing


@dataclass
class WakeReport:
    state: str  # suspended | completed | failed | drifted | lost | released
    new_tasks: list[NewTask] = field(default_factory=list)
    next_wakeup_at: datetime | None = None
    released: bool = False
    result: Any = None
    error: Any = None
    #: ``time.monotonic()`` when the wake that leases ``new_tasks`` to this engine was built,
    #: before its commit: their leases run from no earlier than this (the server starts them on
    #: its receipt). None for reports with no new tasks.
    leased_at: float | None = None


class Runner:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        instance: str,
        lease_ttl: float,
        release_after: float,
        run_activities_locally: Callable[[str], bool],
        snapshot_threshold: int | None = None,
        snapshot_max_size_bytes: int = 1_000_000,
        history: HistoryGuard | None = None,
        children: ChildRuns | None = None,
        commit: Callable[[Wake], WakeResult] | None = None,
        outcome_journaled: Callable[[UUID], None] | None = None,
    ) -> None:
        self.children = children or ChildRuns(store)
        self.compaction = Compaction(store, snapshot_threshold, snapshot_max_size_bytes)
        self.history = history or HistoryGuard()
        self.store = store
        self.clock = clock
        self.owner = owner
        self.instance = instance
        self.lease_ttl = lease_ttl
        self.release_after = release_after
        self._local = run_activities_locally
        self._commit = commit or (lambda wake: store.commit_wake(wake))  # the group commit
        #: Told the task id of each activity outcome a wake journaled (its lease needs no renewal).
        self._outcome_journaled = outcome_journaled or (lambda task_id: None)

    # --- telemetry helpers ---------------------------------------------------------------------
    def _meta(self, held: HeldRun, **extra: Any) -> dict[str, Any]:
        return {
            "run_id": str(held.run_id),
            "workflow": held.record.workflow,
            "instance": self.instance,
            "lease_token": held.token,
            **extra,
        }

    def _begin_attempt(self, held: HeldRun) -> None:
        held.attempts += 1
        if not telemetry_active():
            return
        meta = self._meta(
            held,
            resumed=held.attempts > 1 or (held.replayer is None and held.record.state != "running")
            or (held.replayer is not None and held.replayer.last_seq > 0),
            trace_context=held.trace_context,
            version_hash=held.record.version_hash,
        )
        if held.trace_context is None:
            def set_trace_context(value: bytes) -> None:
                held.pending_trace_context = bytes(value)
                held.trace_context = bytes(value)

            meta["set_trace_context"] = set_trace_context
        emit(("continuum", "run", "claimed"), {"system_time": time.time_ns()}, meta)

    # --- starting a run with its first wake --------------------------------------------------
    def start(self, wf: WorkflowDef, run: NewRun) -> tuple[HeldRun, WakeReport]:
        """Drive a new run to its first suspension and insert it with that wake (one commit).

        A run with an idempotency key is inserted first, with its key, leased to this engine
        (``create_keyed_run``), and its first wake committed after: when the key already names
        a run, ``KeyTaken`` is raised before any workflow code ran."""
        record = RunRecord(
            id=run.id, workflow=run.workflow, version_hash=run.version_hash, state="running",
            input=run.input, trace_context=run.trace_context, started_at=run.started_at,
            attributes=run.attributes, retention=run.retention,
        )
        held = HeldRun(record=record, token=0, wf=wf, trace_context=run.trace_context)
        t0 = time.perf_counter_ns()
        keyed = run.idempotency_key is not None
        if keyed:
            got = self.store.create_keyed_run(run, owner=self.owner, lease_ttl=self.lease_ttl)
            if got.existing or got.lease_token is None:
                raise KeyTaken(got.run_id, existing=True)
            held.token = got.lease_token
        held.replayer = self._new_replayer(held, [])
        self._begin_attempt(held)
        outcome = held.replayer.advance(LiveResolver(self.store, self.clock, self.children, held))
        wake, report = self._build(held, outcome)
        self._guard(held, wake, report)
        compact = self._hold_for_snapshot(held, wake, report)
        if keyed:
            held.pending_trace_context = None  # _build put it in the wake
            try:
                self._commit(wake)  # the group commit, as every later wake
            except LeaseLost:  # a first wake longer than the lease: another engine took the run
                emit(("continuum", "lease", "lost"), {}, self._meta(held))
                raise KeyTaken(run.id, existing=False) from None
            token = held.token
        else:
            if held.pending_trace_context is not None:
                run = NewRun(**{**run.__dict__, "trace_context": held.pending_trace_context})
                held.pending_trace_context = None
            if type(wake) is Wake:  # the insert shares the group commit with other runs' wakes
                created = self._commit(starting_wake(wake, run, self.owner, self.lease_ttl)).lease_token
            else:  # a first wake that continues as new inserts its successor too: alone
                created = self.store.create_run(run, owner=self.owner, lease_ttl=self.lease_ttl, first_wake=wake)
            assert created is not None
            held.token = token = created
        emit_run_started(run, self.instance, token, t0)
        if compact:  # a long first wake is compacted like any other (a signal that came meanwhile
            # made the run due in the store: released, it is claimed at once)
            self._snapshot_then_release(held, report, pending=False)
        self._after_commit(held, wake, report, t0)
        return held, report

    @staticmethod
    def _factory(held: HeldRun) -> Callable[[], Any]:
        """A new coroutine of the run's workflow called with the run's input."""
        wf, inp = held.wf, held.record.input

        def factory() -> Any:
            if isinstance(inp, dict):
                return wf.fn(**inp)
            if inp is None:
                return wf.fn()
            return wf.fn(inp)

        return factory

    def _new_replayer(self, held: HeldRun, journal: list[Any]) -> Replayer:
        return Replayer(str(held.run_id), held.record.workflow, self._factory(held), journal)

    # --- waking a held run ----------------------------------------------------------------------
    def wake(self, held: HeldRun) -> WakeReport:
        """One wake (maybe several, when a signal arrived while committing). Never raises for
        lease loss: returns a report with state 'lost'."""
        with held.lock:
            while True:
                report = self._wake_once(held)
                if report.state != "again":
                    return report

    def _wake_once(self, held: HeldRun) -> WakeReport:
        t0 = time.perf_counter_ns()
        fresh = held.replayer is None
        if fresh:
            held.replayer = self._load(held)
            held.waiting_on = []
        rep = held.replayer
        assert rep is not None
        # Outcomes produced elsewhere (another engine, or before a restart) are in task rows.
        missing = self._unresolved_activity_seqs(held) if fresh else [
            s for s in held.waiting_on if s not in held.outcomes and s not in held.inflight
        ]
        if missing:
            for seq, task in self.store.task_outcomes(held.run_id, missing).items():
                held.outcomes[seq] = LiveOutcome(
                    state=task.state, result=task.result, error=task.error, attempts=task.attempt,
                    idempotency_hit=bool((task.error or {}).get("idempotency_hit")) if task.state == "failed" else False,
                    task_id=task.id, local=False,
                )
        self._begin_attempt(held)
        replayed = rep.replay_events
        outcome = rep.advance(LiveResolver(self.store, self.clock, self.children, held))
        if fresh:
            emit(("continuum", "replay", "stop"),
                 {"duration": time.perf_counter_ns() - t0, "events": replayed, "snapshot_seq": held.snapshot_seq},
                 self._meta(held))
        if isinstance(outcome, Drifted):
            return self._drift(held, outcome)
        wake, report = self._build(held, outcome)
        held.pending_trace_context = None  # _build put it in the wake (Wake.trace_context)
        self._guard(held, wake, report)
        compact = self._hold_for_snapshot(held, wake, report)
        try:
            result = self._commit(wake)
        except LeaseLost:
            emit(("continuum", "lease", "lost"), {}, self._meta(held))
            held.replayer = None
            return WakeReport("lost")
        if compact:
            self._snapshot_then_release(held, report, pending=result.signal_pending)
        self._after_commit(held, wake, report, t0)
        if result.signal_pending and report.state == "suspended" and not report.released:
            return WakeReport("again")
        # Released with a signal or outcome already waiting: the store made it runnable now, and
        # any engine (maybe this one) claims it.
        return report

    def _load(self, held: HeldRun) -> Replayer:
        """The run's history: the newest snapshot (when enabled and taken on this version) plus
        the events after it, else the whole journal. The first load of a run claimed in a batch
        uses the journal read with the batch (``Dispatcher._prefetch``), once."""
        journal, held.journal = held.journal, None
        if journal is not None:
            return self._new_replayer(held, journal)
        rep = self.compaction.load(held, self._factory(held))
        return rep if rep is not None else self._new_replayer(held, self.store.load_journal(held.run_id))

    def _guard(self, held: HeldRun, wake: Wake, report: WakeReport) -> None:
        """The history limits (engine/history.py): past one, the wake only fails the run."""
        error = self.history.check(held, wake, lambda: self._meta(held))
        if error is not None:
            report.state, report.error, report.result, report.released = "failed", error, None, False
            report.new_tasks, report.next_wakeup_at = [], None

    def _hold_for_snapshot(self, held: HeldRun, wake: Wake, report: WakeReport) -> bool:
        """Whether this wake (not committed yet) crosses the snapshot threshold. A snapshot is
        fenced by the lease, so a wake that would release its run keeps the lease through the
        commit; ``_snapshot_then_release`` releases it once the snapshot is saved."""
        if wake.state != "suspended" or not self.compaction.due(held):
            return False
        wake.release = False
        return True

    def _snapshot_then_release(self, held: HeldRun, report: WakeReport, pending: bool) -> None:
        """(after the commit of a wake that crossed the threshold) Save the snapshot under the
        lease, then release the run if the wake meant to; a signal or outcome that arrived
        meanwhile (``pending``) keeps it here instead, to be woken again at once."""
        self.compaction.take(held, self._meta(held))
        if not report.released:
            return
        if pending:
            report.released = False
            return
        try:
            self.store.release_run(held.run_id, held.token)
        except Exception:  # the commit is durable; the lease expires and any engine claims it
            log.warning("run %s: release after its snapshot failed; its lease will expire", held.run_id,
                        exc_info=True)

    def _unresolved_activity_seqs(self, held: HeldRun) -> list[int]:
        assert held.replayer is not None
        return held.replayer.unresolved_activities()

    def _drift(self, held: HeldRun, outcome: Drifted) -> WakeReport:
        try:
            self.store.mark_drifted(held.run_id, held.token, outcome.error)
        except LeaseLost:
            emit(("continuum", "lease", "lost"), {}, self._meta(held))
            held.replayer = None
            return WakeReport("lost")
        held.replayer = None
        emit(("continuum", "run", "drifted"), {}, self._meta(held, error=outcome.error))
        return WakeReport("drifted", error=outcome.error)

    def _build(self, held: HeldRun, outcome: Completed | Failed | Blocked | Drifted) -> tuple[Wake, WakeReport]:
        rep = held.replayer
        assert rep is not None
        batch = rep.batch
        now = self.clock.now()
        new_tasks = [
            NewTask(
                id=a.task_id, seq=a.seq, activity=a.activity,
                args={"args": a.args, "kwargs": a.kwargs}, available_at=now,
                idempotency_key=a.idempotency_key, lease_to_self=self._local(a.activity),
            )
            for a in batch.activities
        ]
        outcomes = []
        for seq, out in batch.outcomes:
            assert out.task_id is not None
            start = rep.start_by_seq[seq].payload
            key = None
            if out.state == "completed" and not out.idempotency_hit and start.get("idempotency_key"):
                key = (str(start["activity"]), str(start["idempotency_key"]))
            # Kept in the run until the wake is committed (_after_commit): a wake refused (the
            # lease lost) or lost with the connection leaves them to be written to their task
            # rows (Engine.let_go) or journaled by the replay that follows.
            outcomes.append(TaskOutcome(out.task_id, out.state, out.result, out.error, key, seq))
        wake = Wake(
            run_id=held.run_id, lease_token=held.token, now=now, state="suspended",
            events=list(batch.events), new_tasks=new_tasks,
            new_timers=[NewTimer(t.timer_id, t.seq, t.fires_at) for t in batch.timers],
            fired_timers=list(batch.fired_timers), consumed_signals=dict(batch.consumed_signals),
            task_outcomes=outcomes, lease_ttl=self.lease_ttl, new_children=new_children(batch, now),
            cancelled_children=list(batch.cancelled_children),
        )
        if not held.exact_version:
            wake.version_hash = held.wf.version_hash
        if held.pending_trace_context is not None:
            wake.trace_context = held.pending_trace_context
        # Stamped before the commit that leases new_tasks to this engine (Activities._begin).
        report = WakeReport("suspended", new_tasks=[t for t in new_tasks if t.lease_to_self],
                            leased_at=time.monotonic())
        if isinstance(outcome, Completed):
            wake.state, wake.result = "completed", outcome.result
            report.state, report.result = "completed", outcome.result
            if isinstance(outcome, Continued):  # cn.continue_as_new: the successor, in this commit
                wake = continuing_wake(wake, outcome)
        elif isinstance(outcome, Failed):
            wake.state, wake.error = "failed", outcome.error
            report.state, report.error = "failed", outcome.error
        elif isinstance(outcome, Blocked):
            wake.next_wakeup_at = outcome.next_wakeup_at
            wake.awaiting_signals = outcome.awaiting_signals
            # Only tasks from earlier wakes can already have an outcome in the store: the ones
            # this wake creates cannot, so the commit need not look them up.
            created = {t.seq for t in new_tasks}
            wake.awaiting_tasks = [s for s in outcome.waiting_on_activities if s not in created]
            wake.awaiting_children = [UUID(c) for c in outcome.waiting_on_children]
            held.waiting_on = outcome.waiting_on_activities
            report.next_wakeup_at = outcome.next_wakeup_at
            local_work = bool(report.new_tasks) or any(s in held.inflight for s in outcome.waiting_on_activities)
            far = outcome.next_wakeup_at is None or outcome.next_wakeup_at > now + timedelta(seconds=self.release_after)
            if not local_work and far:
                wake.release = True
                report.released = True
        return wake, report

    def _after_commit(self, held: HeldRun, wake: Wake, report: WakeReport, t0: int) -> None:
        rep = held.replayer
        if rep is not None:
            rep.reset_batch()
        held.record.state = wake.state
        held.next_wakeup_at = wake.next_wakeup_at
        for committed in wake.task_outcomes:  # journaled now (kept until here: _build)
            held.outcomes.pop(committed.seq, None)
            held.outcome_records.pop(committed.seq, None)
            self._outcome_journaled(committed.task_id)
        if wake.version_hash:
            held.record.version_hash = wake.version_hash
            held.exact_version = True
            emit(("continuum", "run", "upgraded"), {}, self._meta(held, version_hash=wake.version_hash))
        for t in report.new_tasks:
            held.inflight.add(t.seq)
        if report.state in ("completed", "failed") or report.released:
            held.replayer = None
        if report.released:
            report.state = "released"
        telemetry = telemetry_active()
        announce_committed(wake.events, lambda: self._meta(held), telemetry, self.store)
        if not telemetry:
            return
        emit_events(wake.events, lambda **extra: self._meta(held, **extra))
        duration = {"duration": time.perf_counter_ns() - t0}
        if report.state == "completed":
            emit(("continuum", "run", "completed"), duration, self._meta(held))
        elif report.state == "failed":
            emit(("continuum", "run", "failed"), duration, self._meta(held, error=wake.error))
        else:
            emit(("continuum", "run", "suspended"), duration,
                 self._meta(held, next_wakeup_at=wake.next_wakeup_at, released=report.released))

    def park(self, record: RunRecord, token: int, error: dict[str, Any]) -> bool:
        """Stop a run that cannot go on here for a reason outside its workflow (its stored code
        is refused, its wakes keep failing): ``drifted`` with ``error`` saying why, so it is
        visible and ``cn.resume`` retries it once the cause is fixed. False: the lease was lost
        meanwhile (whoever holds it now decides)."""
        try:
            self.store.mark_drifted(record.id, token, error)
        except LeaseLost:
            return False
        emit(("continuum", "run", "drifted"), {},
             {"run_id": str(record.id), "workflow": record.workflow, "instance": self.instance,
              "lease_token": token, "error": error})
        return True

    # --- leases -------------------------------------------------------------------------------
    def release(self, held: HeldRun) -> None:
        try:
            self.store.release_run(held.run_id, held.token)
        finally:
            held.replayer = None
            emit(("continuum", "run", "released"), {}, self._meta(held))


def emit_run_started(run: NewRun, instance: str, lease_token: int | None, t0: int) -> None:
    """``[continuum, run, started]``, once per run, by whoever inserted it: an engine with the
    run's first wake (``lease_token``), or a client that left the run to others (None)."""
    emit(("continuum", "run", "started"), {"duration": time.perf_counter_ns() - t0},
         {"run_id": str(run.id), "workflow": run.workflow, "instance": instance, "lease_token": lease_token,
          "version_hash": run.version_hash})
