"""Snapshots on real PostgreSQL: taken about every N events, used on resume (still validated),
ignored on another version, skipped when too large."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef
from tests.engine.helpers import Recorder, double, eventually, suspended_on
from tests.snapshot_format1 import build_v1


async def long_run(steps: int) -> Any:
    total = 0
    for i in range(steps):
        total += await double(i)
    return [total, await cn.signal("finish")]


async def long_run_refactored(steps: int) -> Any:
    values = []
    for i in range(steps):
        values.append(await double(i))
    return [sum(values), await cn.signal("finish")]


@pytest.fixture
def make(db_url: str) -> Iterator[Any]:
    made: list[cn.Instance] = []

    def make_instance(fn: Any = long_run, **settings: Any) -> cn.Instance:
        settings.setdefault("poll_interval", 0.2)
        inst = cn.Instance(f"snap-{uuid.uuid4().hex[:8]}", database_url=db_url, **settings)
        inst.registry.register(WorkflowDef(fn, name="long_run"))
        made.append(inst)
        return inst

    yield make_instance
    for inst in made:
        inst.close()


def _suspend(inst: cn.Instance, steps: int = 30) -> cn.Run:
    run = cn.start("long_run", {"steps": steps}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="suspension")
    eventually(lambda: cn.api.get_run(run.id, instance=inst).lease_owner is None, what="release")
    inst.stop()
    return run


def _finish_with_full_replay(rec: Recorder, run: cn.Run, inst: cn.Instance) -> None:
    """Finish a suspended long_run on ``inst``; its last replay must have read the whole journal."""
    cn.signal(run.id, "finish", "ok", instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [sum(2 * i for i in range(30)), "ok"]
    replays = [m for e, m, meta in rec.seen if meta["run_id"] == run.id]
    assert replays[-1]["snapshot_seq"] == 0 and replays[-1]["events"] > 30  # full replay


def test_snapshot_taken_and_used_on_resume(make: Any) -> None:
    rec = Recorder(("continuum", "snapshot", "taken"), ("continuum", "replay", "stop"))
    try:
        first = make(snapshot_threshold=10)
        run = _suspend(first)
        snap = first.store.load_snapshot(uuid.UUID(run.id))
        assert snap is not None and snap.through_seq >= 50  # 61 events; one snapshot about every 10
        taken = [m for e, m, meta in rec.seen if e[1] == "snapshot" and meta["run_id"] == run.id]
        assert len(taken) >= 5 and all(m["size_bytes"] > 0 for m in taken)
        second = make(snapshot_threshold=10)
        cn.signal(run.id, "finish", "ok", instance=second)
        assert cn.wait(run.id, timeout=30, instance=second) == [sum(2 * i for i in range(30)), "ok"]
        replays = [m for e, m, meta in rec.seen if e[1] == "replay" and meta["run_id"] == run.id]
        assert replays[-1]["snapshot_seq"] == snap.through_seq  # resumed from the snapshot
    finally:
        rec.close()


def test_snapshot_of_another_version_is_ignored(make: Any) -> None:
    rec = Recorder(("continuum", "replay", "stop"))
    try:
        run = _suspend(make(snapshot_threshold=10))
        _finish_with_full_replay(rec, run, make(long_run_refactored, snapshot_threshold=10))
    finally:
        rec.close()


def test_compacted_steps_are_still_validated(make: Any, db_url: str) -> None:
    run = _suspend(make(snapshot_threshold=10))
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Corrupt the newest snapshot: its steps now name another activity.
        conn.execute(
            "UPDATE continuum_snapshots SET payload = jsonb_set(payload, '{names,0}', '\"cases.other\"') "
            "WHERE run_id = %s", (uuid.UUID(run.id),))
    second = make(snapshot_threshold=10)
    cn.signal(run.id, "finish", "ok", instance=second)
    with pytest.raises(cn.DriftError, match="cases.other"):
        cn.wait(run.id, timeout=30, instance=second)


def test_format_1_snapshot_is_still_read(make: Any, db_url: str) -> None:
    # A snapshot stored by an engine that wrote format 1 (before the columnar format 2).
    rec = Recorder(("continuum", "replay", "stop"))
    try:
        first = make(snapshot_threshold=10)
        run = _suspend(first)
        run_id = uuid.UUID(run.id)
        snap = first.store.load_snapshot(run_id)
        assert snap is not None and snap.payload["format"] == 2
        prefix = [e for e in first.store.load_journal(run_id) if e.seq <= snap.through_seq]
        old = build_v1(prefix, snap.version_hash)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_snapshots SET payload = %s::jsonb WHERE run_id = %s AND through_seq = %s",
                         (json.dumps(old.payload), run_id, snap.through_seq))
        assert first.store.load_snapshot(run_id).payload["format"] == 1  # type: ignore[union-attr]
        second = make(snapshot_threshold=10)
        cn.signal(run.id, "finish", "ok", instance=second)
        assert cn.wait(run.id, timeout=30, instance=second) == [sum(2 * i for i in range(30)), "ok"]
        replays = [m for e, m, meta in rec.seen if meta["run_id"] == run.id]
        assert replays[-1]["snapshot_seq"] == snap.through_seq  # resumed from the format-1 snapshot
    finally:
        rec.close()


def test_a_snapshot_in_an_unknown_format_is_ignored(make: Any, db_url: str) -> None:
    """A snapshot this engine cannot read (e.g. from a newer engine) falls back to the journal."""
    rec = Recorder(("continuum", "replay", "stop"))
    try:
        run = _suspend(make(snapshot_threshold=10))
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_snapshots SET payload = jsonb_set(payload, '{format}', '99') "
                         "WHERE run_id = %s", (uuid.UUID(run.id),))
        _finish_with_full_replay(rec, run, make(snapshot_threshold=10))
    finally:
        rec.close()


def test_snapshot_over_the_size_limit_is_skipped(make: Any) -> None:
    rec = Recorder(("continuum", "snapshot", "skipped"), ("continuum", "snapshot", "taken"))
    try:
        inst = make(snapshot_threshold=10, snapshot_max_size_bytes=200)
        run = _suspend(inst)
        assert inst.store.load_snapshot(uuid.UUID(run.id)) is None
        mine = [(e, m, meta) for e, m, meta in rec.seen if meta["run_id"] == run.id]
        assert mine and all(e[2] == "skipped" for e, _, _ in mine)
        assert all(meta["reason"] == "too_large" and m["size_bytes"] > 200 for _, m, meta in mine)
    finally:
        rec.close()


def test_snapshots_are_off_by_default(make: Any) -> None:
    inst = make()
    run = _suspend(inst)
    assert inst.store.load_snapshot(uuid.UUID(run.id)) is None
