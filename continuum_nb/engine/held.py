"""The runs an engine holds the lease of, and who may touch that table from which thread.

Thread ownership — the one place these rules are written; every part follows them:

- The engine loop owns the table. It adds claimed runs (``add``), marks recent use (``touch``),
  and forgets runs (``pop``): lease lost, cancelled elsewhere, evicted, released, a failed wake.
- Exactly two writes happen on a drive thread, each on a run no other thread writes meanwhile:
  ``register_started`` (a run the drive thread itself just inserted; it is marked waking since
  ``begin_start``, so nothing evicts it) and ``let_go_ended`` (a run that ended, whose loop-side
  state is empty: no timer handle, no outcomes to write).
- Any other thread (the listener, a heartbeat's snapshot, a user thread in ``wait()``) only
  reads: membership, ``get``, ``idle``, and copies (``snapshot``, ``ids``); the loop itself
  iterates over copies too, since a drive thread may register a run meanwhile. A copy and every
  write of the table take ``_lock``: copying runs Python code per entry (``UUID.__hash__``), so
  another thread can write the table in the middle of a copy, which then fails ("OrderedDict
  mutated during iteration": it ended the engine loop of a worker holding 10,000 runs).
- ``on_leave`` (set once, before the engine starts) is called, on the thread that removed it,
  whenever a run leaves the table (``pop``, ``let_go_ended``); it must only post to the loop.
- ``waking`` maps a run with a wake in progress to whether it must be woken once more when that
  wake returns. The loop sets and pops it; ``begin_start`` sets a new key from the caller's
  thread; ``let_go_ended`` pops it on the drive thread, after the run left the table.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..definitions.workflow import WorkflowDef
from ..replay.outcomes import LiveOutcome
from ..replay.replayer import Replayer
from ..store.base import Event, RunRecord

__all__ = ["ENDED", "HeldRun", "HeldRuns"]

#: The report states in which a run has ended (its outcome goes to local waiters).
ENDED = ("completed", "failed", "drifted")


@dataclass
class HeldRun:
    """A run this engine holds the lease of (its coroutine may be cached in ``replayer``)."""

    record: RunRecord
    token: int
    wf: WorkflowDef
    exact_version: bool = True
    replayer: Replayer | None = None
    outcomes: dict[int, LiveOutcome] = field(default_factory=dict)
    outcome_records: dict[int, Any] = field(default_factory=dict)  # seq -> TaskRecord of a local outcome
    inflight: set[int] = field(default_factory=set)  # scheduled seqs executing on this engine
    waiting_on: list[int] = field(default_factory=list)
    next_wakeup_at: datetime | None = None
    attempts: int = 0
    snapshot_seq: int = 0
    trace_context: bytes | None = None
    pending_trace_context: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Its journal as read with its claim (``Store.load_journals``, under this lease), for its
    #: first load only: any later load reads the store (``Runner._load``).
    journal: list[Event] | None = None

    @property
    def run_id(self) -> uuid.UUID:
        return self.record.id


class HeldRuns:
    """The held runs, least recently woken first (see the module docstring for who may write)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[uuid.UUID, HeldRun] = OrderedDict()
        self._lock = threading.Lock()  # copies and writes of _runs (see the module docstring)
        self._starting: set[uuid.UUID] = set()  # started by this process, not registered yet
        self.waking: dict[uuid.UUID, bool] = {}
        #: Told (from the thread that removed it) that a run left the table: room for a claim.
        self.on_leave: Callable[[], None] = lambda: None

    # --- reads (any thread) ---------------------------------------------------------------------
    def get(self, run_id: uuid.UUID | None) -> HeldRun | None:
        return None if run_id is None else self._runs.get(run_id)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def __len__(self) -> int:
        return len(self._runs)

    def snapshot(self) -> list[HeldRun]:
        with self._lock:
            return list(self._runs.values())

    def ids(self) -> list[uuid.UUID]:
        """Run ids, least recently woken first."""
        with self._lock:
            return list(self._runs)

    def idle(self, run_id: uuid.UUID) -> bool:
        """Held, and no wake of it in progress."""
        return run_id in self._runs and run_id not in self.waking

    def holds(self, run_id: uuid.UUID) -> bool:
        """Held, or being started by this process (its end will be reported here)."""
        return run_id in self._runs or run_id in self._starting

    # --- the loop's writes ------------------------------------------------------------------------
    def add(self, held: HeldRun) -> None:
        with self._lock:
            self._runs[held.run_id] = held

    def touch(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._runs.move_to_end(run_id)

    def pop(self, run_id: uuid.UUID) -> HeldRun | None:
        with self._lock:
            held = self._runs.pop(run_id, None)
        if held is not None:
            self.on_leave()
        return held

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()

    # --- a run started by this process ----------------------------------------------------------
    def begin_start(self, run_id: uuid.UUID) -> None:
        """(caller's thread) A run about to be inserted with its first wake: marked waking (a new
        key nothing else touches) so that nothing evicts or wakes it before it is registered."""
        self._starting.add(run_id)
        self.waking[run_id] = False

    def start_failed(self, run_id: uuid.UUID) -> None:
        """(drive thread) The insert failed: the run was never held. ``waking`` is the loop's: the
        caller posts its removal there."""
        self._starting.discard(run_id)

    def register_started(self, held: HeldRun) -> None:
        """(drive thread) The run's first wake is committed: it is held from now on."""
        with self._lock:
            self._runs[held.run_id] = held
        self._starting.discard(held.run_id)

    def let_go_ended(self, held: HeldRun, timer_pending: bool) -> bool:
        """(drive thread) Forget a run that ended, when the loop has nothing of it to undo (no
        timer handle, no outcomes to write). Out of the table first, so a wake the loop requests
        meanwhile finds nothing to wake. False: the loop must handle the report."""
        run_id = held.run_id
        with self._lock:
            if held.outcomes or timer_pending or self._runs.get(run_id) is not held:
                return False
            self._runs.pop(run_id, None)
        self.waking.pop(run_id, None)
        self.on_leave()
        return True
