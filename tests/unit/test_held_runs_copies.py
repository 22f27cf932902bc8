"""``HeldRuns`` copies (``snapshot``, ``ids``) while another thread writes the table: copying an
OrderedDict keyed by UUIDs runs Python code per entry (``UUID.__hash__``), so without the table's
lock a drive thread registering or letting go of a run could write it in the middle of a copy,
which then raised "OrderedDict mutated during iteration" (that ended an engine loop in its
heartbeat, with 10,000 runs held)."""

from __future__ import annotations

import sys
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from continuum_nb.engine.held import HeldRun, HeldRuns
from continuum_nb.store.base import RunRecord


def _held(wf: Any) -> HeldRun:
    record = RunRecord(id=uuid.uuid4(), workflow="w", version_hash="v", state="suspended", input=None,
                       started_at=datetime.now(timezone.utc))
    return HeldRun(record=record, token=1, wf=wf)


def test_copies_never_meet_a_write_from_another_thread() -> None:
    table = HeldRuns()
    wf: Any = object()
    for _ in range(5000):
        table.add(_held(wf))
    churn = [_held(wf) for _ in range(200)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def drive_thread() -> None:  # what drive threads do: register a run, let go of one that ended
        while not stop.is_set():
            for h in churn:
                table.register_started(h)
            for h in churn:
                table.let_go_ended(h, timer_pending=False)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    writer = threading.Thread(target=drive_thread)
    writer.start()
    try:
        for _ in range(300):
            try:
                assert len(table.snapshot()) >= 5000 and len(table.ids()) >= 5000
            except RuntimeError as exc:
                errors.append(exc)
                break
    finally:
        stop.set()
        writer.join()
        sys.setswitchinterval(interval)
    assert errors == []
