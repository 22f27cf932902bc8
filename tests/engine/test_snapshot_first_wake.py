"""Snapshots at the first wake: a run that journals more than ``snapshot_threshold`` events
before its first wait is snapshotted by that wake (the one that inserts it), and a resume from
that snapshot on another engine reaches the same state as the journal says."""

from __future__ import annotations

import uuid
from typing import Any

import continuum_nb as cn
from tests.engine.helpers import Recorder, define, eventually, journal, suspended_on


async def chatty(n: int) -> Any:
    # n side effects before the first wait: all of them journaled by the run's first wake
    values = [cn.random() for _ in range(n)]
    decision = await cn.signal("finish")
    return [values, decision]


def test_first_wake_crossing_the_threshold_is_snapshotted(make_instance: Any) -> None:
    rec = Recorder(("continuum", "snapshot", "taken"), ("continuum", "replay", "stop"))
    try:
        first = make_instance(snapshot_threshold=50, release_after=0)
        run = cn.start(define(first, chatty), {"n": 400}, instance=first)
        eventually(lambda: suspended_on(first, run, "signal_awaited"), what="the first wait")
        eventually(lambda: cn.api.get_run(run.id, instance=first).lease_owner is None, what="release")
        first.stop()

        events = journal(first, run)
        assert len(events) == 401 and events[-1].seq == 401  # one wake wrote all of them
        snap = first.store.load_snapshot(uuid.UUID(run.id))
        assert snap is not None, "the first wake crossed the threshold but no snapshot was taken"
        assert snap.through_seq == 401
        taken = [meta for e, _, meta in rec.seen if e[1] == "snapshot" and meta["run_id"] == run.id]
        assert [m["through_seq"] for m in taken] == [401]

        # Another engine resumes from the snapshot alone and returns what the journal recorded.
        second = make_instance(snapshot_threshold=50)
        define(second, chatty)
        cn.signal(run.id, "finish", "ok", instance=second)
        result = cn.wait(run.id, timeout=30, instance=second)
        recorded = [e.payload["value"] for e in events if e.event_type == "side_effect"]
        assert result == [recorded, "ok"]
        replays = [m for e, m, meta in rec.seen if e[1] == "replay" and meta["run_id"] == run.id]
        assert replays and replays[-1]["snapshot_seq"] == 401  # resumed from the snapshot
    finally:
        rec.close()
