"""``MemoryTables``: the rows of a ``MemoryStore`` and the one lock over them, what every part of
the store shares (copies out, notifications to listeners). The parts (``journal``, ``leases``,
``store``) are subclasses, one idea each, over these same tables."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from typing import Any
from uuid import UUID

from ..base import Event, Notification, RunRecord, Snapshot, TaskRecord
from .listener import MemoryListener
from .rows import SignalRow, TimerRow, VersionRow, copy_json

__all__ = ["MemoryTables"]


class MemoryTables:
    """The tables; one ``RLock`` stands in for the run-row lock and for transactions."""

    def __init__(self, *, instance: str = "default") -> None:
        self.instance = instance
        self._lock = threading.RLock()
        self._runs: dict[UUID, RunRecord] = {}
        self._events: dict[UUID, list[Event]] = {}
        #: Run id -> its journal's last seq (continuum_runs.last_seq): what the wake checks.
        self._last_seq: dict[UUID, int] = {}
        self._signals: dict[int, SignalRow] = {}
        self._timers: dict[UUID, TimerRow] = {}
        self._tasks: dict[UUID, TaskRecord] = {}
        self._results: dict[tuple[str, str], tuple[UUID, int, Any]] = {}
        self._snapshots: dict[UUID, dict[int, Snapshot]] = {}
        self._versions: dict[tuple[str, str], VersionRow] = {}
        #: (workflow, key) -> run id; (run id, signal name, key) -> signal id.
        self._ingress_keys: dict[tuple[str, str], UUID] = {}
        self._signal_keys: dict[tuple[UUID, str, str], int] = {}
        #: child run id -> 'cancel' | 'abandon' (continuum_runs.on_parent_cancel)
        self._on_parent_cancel: dict[UUID, str] = {}
        self._tokens = itertools.count(1)  # one sequence for run and task leases, as in PostgreSQL
        self._signal_ids = itertools.count(1)
        self._order = itertools.count(1)  # the order versions were saved in (latest_version)
        self._listeners: list[MemoryListener] = []

    def _notify(self, notes: list[Notification]) -> None:
        for listener in list(self._listeners):
            listener._deliver(notes)

    def _drop_listener(self, listener: MemoryListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _run_copy(self, run: RunRecord) -> RunRecord:
        return replace(run, input=copy_json(run.input), result=copy_json(run.result), error=copy_json(run.error),
                       attributes=copy_json(run.attributes))

    def _task_copy(self, task: TaskRecord) -> TaskRecord:
        return replace(task, args=copy_json(task.args), result=copy_json(task.result), error=copy_json(task.error))
