"""``cn.testing.environment()``: an instance for users' tests, on the in-memory store, with a
virtual clock that skips ahead by itself.

Time skips when nothing can happen without it: no wake is running, no activity attempt is in
flight, no run is due, no signal waits to be delivered, and every active run waits on a timer
or a retry backoff. The clock then jumps to the earliest of them. A signal's timeout is skipped
over only while the test itself waits for a run (``env.wait``), when nobody else could send it;
otherwise a test that starts a run and then signals it would race the skip.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from .. import telemetry
from ..api import Run, cancel, events, get_run, signal, start, wait
from ..definitions.activity import ActivityDef
from ..definitions.workflow import WorkflowDef
from ..engine.clock import VirtualClock
from ..engine.instance import Instance
from ..errors import ConfigurationError, RunNotFound
from ..history import export_history, replay_history
from ..store.base import ACTIVE_STATES, Event
from ..store.memory import MemoryStore
from .stubs import Stubs

__all__ = ["Environment", "environment"]

#: How often (real seconds) the skipper looks, and how many equal looks in a row mean "quiet".
_POLL = 0.005
_QUIET_LOOKS = 3


def _run_uuid(run: Run | str | uuid.UUID) -> uuid.UUID:
    raw = run.id if isinstance(run, Run) else run
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except ValueError:
        raise RunNotFound(f"{raw!r} is not a run id (run ids are UUIDs)") from None


def _signal_timeouts(journal: list[Event]) -> set[datetime]:
    """When the run's unanswered signal awaits time out."""
    answered = {e.payload.get("awaited_seq") for e in journal if e.event_type == "signal_received"}
    answered |= {e.payload.get("started_seq") for e in journal if e.event_type == "timer_fired"}
    return {
        datetime.fromisoformat(e.payload["timeout_at"])
        for e in journal
        if e.event_type == "signal_awaited" and e.seq not in answered and e.payload.get("timeout_at")
    }


class Environment:
    """An instance for tests with a virtual clock that skips ahead by itself (see module doc).

    ``env.start``/``env.wait``/``env.signal``/``env.cancel``/``env.result`` are the API calls on
    this instance; ``env.advance`` moves the clock by hand; ``env.stub`` replaces an activity's
    body; ``env.crash`` and ``env.expire_lease`` play the failures a real deployment has.
    Use it as a context manager (or call ``close()``): stubs are undone and the engine stopped.
    """

    def __init__(self, *, database_url: str | None = None, start_at: datetime | None = None,
                 auto_skip: bool = True, paranoid: bool = False, **settings: Any) -> None:
        self.clock = VirtualClock(start_at)
        self.on_database = database_url is not None
        settings.setdefault("poll_interval", 0.05)
        settings.setdefault("lease_ttl", 5.0)
        store = None if self.on_database else MemoryStore()
        self.instance = Instance(f"test-{uuid.uuid4().hex[:8]}",
                                 database_url=database_url or "postgresql://unused@/memory",
                                 store=store, clock=self.clock, **settings)
        self.paranoid = paranoid
        self.auto_skip = auto_skip
        #: paranoid: runs seen completing (telemetry), and those already replayed
        self._completed: list[str] = []
        self._checked: set[str] = set()
        self._handler = f"{self.instance.name}-paranoid"
        if paranoid:
            telemetry.attach(self._handler, [("continuum", "run", "completed")], self._on_completed)
        self._stubs = Stubs()
        self._waiting = 0  # test threads inside env.wait (signal timeouts may be skipped)
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self.instance.start_engine()
        self._skipper = threading.Thread(target=self._skip_loop, name=f"{self.instance.name}-skip", daemon=True)
        self._skipper.start()

    # --- the API on this instance ------------------------------------------------------------
    def start(self, wf: WorkflowDef | str, input: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        return start(wf, input, instance=self.instance, **kwargs)

    def wait(self, run: Run | str, timeout: float = 30.0) -> Any:
        """The run's result (``cn.wait``), skipping signal timeouts too while waiting. With
        ``paranoid=True``, a completed run is also replayed offline against the code and its
        result compared (``cn.DriftError`` when they differ)."""
        with self._count_lock:
            self._waiting += 1
        try:
            result = wait(run.id if isinstance(run, Run) else run, timeout=timeout, instance=self.instance)
        finally:
            with self._count_lock:
                self._waiting -= 1
        if self.paranoid:
            self.check_replay(run)
        return result

    def _on_completed(self, event: Any, measurements: Any, metadata: dict[str, Any]) -> None:
        """(engine thread) Remember a run of this instance that completed: checked by ``wait``
        or, at the latest, by ``close``. Never replays here: the engine thread must go on."""
        if metadata.get("instance") == self.instance.name and metadata.get("run_id"):
            with self._count_lock:
                self._completed.append(str(metadata["run_id"]))

    def run(self, wf: WorkflowDef | str, input: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Start a run and wait for its result."""
        return self.wait(self.start(wf, input), timeout=timeout)

    def signal(self, run: Run | str, name: str, payload: Any = None) -> int:
        return signal(run.id if isinstance(run, Run) else run, name, payload, instance=self.instance)

    def cancel(self, run: Run | str) -> Any:
        return cancel(run.id if isinstance(run, Run) else run, instance=self.instance)

    def get_run(self, run: Run | str) -> Any:
        return get_run(run.id if isinstance(run, Run) else run, instance=self.instance)

    def events(self, run: Run | str) -> list[Any]:
        return events(run.id if isinstance(run, Run) else run, instance=self.instance)

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the virtual clock by hand; every timer and backoff that became due fires."""
        return self.clock.advance(delta)

    def check_replay(self, run: Run | str) -> str:
        """Replay the run's recorded history offline against the current code (``cn.testing.replay``)
        and, for a completed run, compare the result; the outcome, or ``cn.DriftError``."""
        rid = run.id if isinstance(run, Run) else str(run)
        with self._count_lock:
            self._checked.add(rid)
        history = export_history(rid, instance=self.instance)
        wf = self.instance.find_workflow(history["workflow"])
        if wf is None:
            raise ConfigurationError(f"workflow {history['workflow']!r} is not defined here; define it before replaying")
        return replay_history(wf, history)

    # --- stubs --------------------------------------------------------------------------------
    def stub(self, activity: ActivityDef | str, fn_or_value: Any) -> None:
        """Replace the body of ``activity`` until the environment closes: a function is called
        with the activity's arguments; an exception instance is raised by every attempt; any
        other value is returned. Refused on a real database, whose other engines would run the
        real body."""
        if self.on_database:
            raise ConfigurationError(
                "env.stub is refused on a real database: other engines there would run the real activity; "
                "use cn.testing.environment() without database_url")
        self._stubs.replace(activity, fn_or_value)

    # --- failures -------------------------------------------------------------------------------
    def fire_timers(self) -> int:
        """Move the clock to the last timer (or signal timeout) set right now, so that every one
        fires; how many were pending."""
        store = self.instance.store
        due = [t.fires_at for r in self._active_runs() for t in store.pending_timers(r.id)]
        if due and max(due) > self.clock.now():
            self.clock.advance(max(due) - self.clock.now())
        elif due:
            self.clock.advance(0)  # due already: the jump's wake-up still runs them
        return len(due)

    def crash(self, run: Run | str) -> None:
        """Drop the engine's memory of the run (its cached coroutine) and drive it again from its
        journal, as a new engine would after a crash: the workflow's code replays from the top."""
        rid = _run_uuid(run)
        engine = self._engine()
        if rid in engine.held:
            engine.release_now(rid)
        claimed = self.instance.store.claim_run(rid, engine.owner, self.instance.config.lease_ttl)
        if claimed is not None:
            engine.post(engine.adopt, claimed)

    def expire_lease(self, run: Run | str) -> None:
        """The run's lease lapses and another engine takes the run over, as when its engine
        stalls: the engine that held it finds its lease lost at its next commit (nothing it
        does is written) and the run is claimed anew, with a new lease token, and replayed from
        its journal."""
        rid = _run_uuid(run)
        engine = self._engine()
        store = self.instance.store
        store.expire_run_lease(rid)  # type: ignore[attr-defined]
        taken = store.claim_run(rid, f"{self.instance.name}-takeover", self.instance.config.lease_ttl)
        if taken is not None and taken.lease_token is not None:
            store.release_run(rid, taken.lease_token)  # free for any engine, under a new token
        done = threading.Event()

        def forget() -> None:
            if engine.held.idle(rid):  # a wake in progress learns it at its commit
                engine.let_go(rid, tell_waiters=True)
            done.set()
            engine.kick()

        engine.post(forget)
        done.wait(10.0)

    # --- life -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the engine and undo the stubs. In paranoid mode, every run that completed and was
        not checked yet is replayed first (``cn.DriftError`` for the first that does not match)."""
        self._stop.set()
        self._skipper.join(5.0)
        failure: Exception | None = None
        if self.paranoid:
            telemetry.detach(self._handler)
            with self._count_lock:
                pending = [r for r in dict.fromkeys(self._completed) if r not in self._checked]
            for rid in pending:
                try:
                    self.check_replay(rid)
                except Exception as exc:  # reported once everything is closed
                    failure = failure or exc
        self._stubs.restore()
        self.instance.close()
        if failure is not None:
            raise failure

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _engine(self) -> Any:
        engine = self.instance.engine
        if engine is None:
            raise ConfigurationError("the environment's engine is not running (closed?)")
        return engine

    def _active_runs(self) -> list[Any]:
        store = self.instance.store
        return [r for state in ACTIVE_STATES for r in store.list_runs(state=state, limit=100_000)]

    # --- skipping ahead -------------------------------------------------------------------------
    def _skip_target(self) -> tuple[datetime, tuple[Any, ...]] | None:
        """When to jump to, with what was seen (to tell a quiet system from a busy one); None
        while something can happen without the clock."""
        engine = self.instance.engine
        if engine is None or engine.held.waking or engine.activities.inflight:
            return None
        store, now = self.instance.store, self.clock.now()
        waiting = self._waiting > 0
        due: list[datetime] = []
        limits: list[datetime] = []  # signal timeouts not to skip past
        seen: list[Any] = []
        for r in self._active_runs():
            if r.next_wakeup_at is None and r.state == "running":
                return None  # runnable now
            if r.next_wakeup_at is not None and r.next_wakeup_at <= now:
                return None
            if store.pending_signals(r.id):
                return None
            for t in store.open_tasks(r.id):  # type: ignore[attr-defined]
                if t.state == "leased" or t.available_at is None or t.available_at <= now:
                    return None
                due.append(t.available_at)
            journal = store.load_journal(r.id)
            seen.append((r.id, r.state, r.next_wakeup_at, len(journal)))
            if r.next_wakeup_at is None:
                continue
            if r.next_wakeup_at in _signal_timeouts(journal) and not waiting:
                limits.append(r.next_wakeup_at)
            else:
                due.append(r.next_wakeup_at)
        if not due:
            return None
        target = min(due)
        if limits and target >= min(limits):
            return None
        return target, tuple(sorted(seen, key=str))

    def _skip_loop(self) -> None:
        last: tuple[datetime, tuple[Any, ...]] | None = None
        looks = 0
        while not self._stop.wait(_POLL):
            if not self.auto_skip:
                continue
            try:
                seen = self._skip_target()
            except Exception:  # the store closed under us, a run ended meanwhile: look again
                seen = None
            if seen is None or seen != last:
                last, looks = seen, (0 if seen is None else 1)
                continue
            looks += 1
            if looks >= _QUIET_LOOKS:
                target = seen[0]
                now = self.clock.now()
                if target > now:
                    self.clock.advance(target - now)
                last, looks = None, 0


def environment(**kwargs: Any) -> Environment:
    """A test environment (see :class:`Environment`): ``with cn.testing.environment() as env:``.
    Keyword arguments: ``database_url`` (a real database instead of the in-memory store),
    ``start_at`` (the virtual clock's start), ``auto_skip`` (default True), ``paranoid`` (replay
    every run ``env.wait`` sees complete, and compare its result), and instance settings."""
    return Environment(**kwargs)

