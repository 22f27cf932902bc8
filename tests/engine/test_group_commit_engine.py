"""Group commit in a running engine: wakes of several runs that become ready while a commit is in
flight are committed by one ``commit_wakes`` call, and every run ends exactly as it would alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.errors import DatabaseUnavailable
from continuum_nb.store.base import Wake, WakeResult
from tests.engine.helpers import define, eventually, journal, types


@cn.activity(name="group_commit.add_one")
def add_one(n: int) -> int:
    return n + 1


async def plus_one(n: int) -> int:
    return await add_one(n)


async def signalled_plus_one(n: int) -> int:
    await cn.signal("go")
    return await add_one(n)


class HeldCommit:
    """Once ``arm()``ed, holds the next wake committed through the engine's group commit until
    ``release()``, so that the wakes ready meanwhile queue behind it; records each batch: the
    kinds of its wakes and their outcomes."""

    def __init__(self, inst: cn.Instance) -> None:
        engine = inst.start_engine()
        assert engine is not None
        self.gc = gc = engine.group_commit
        gc.max_in_flight = 1  # one commit in flight: the others queue behind the held one
        self._one, self._many = gc._commit_one, gc._commit_many
        self.armed, self.entered, self._release = threading.Event(), threading.Event(), threading.Event()
        self.batches: list[list[str]] = []
        self.kinds: list[list[str]] = []
        self.outcomes: list[dict[uuid.UUID, str]] = []
        gc._commit_one, gc._commit_many = self._commit_one, self._commit_many

    def arm(self) -> None:
        self.armed.set()

    def _commit_one(self, wake: Wake) -> WakeResult:
        if self.armed.is_set() and not self.entered.is_set():
            self.entered.set()
            assert self._release.wait(30)
        return self._one(wake)

    def _commit_many(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        got = self._many(wakes)
        self.kinds.append([type(w).__name__ for w in wakes])
        self.batches.append([type(o).__name__ for o in got])
        self.outcomes.append({w.run_id: type(o).__name__ for w, o in zip(wakes, got, strict=True)})
        return got

    def wait_queued(self, n: int) -> None:
        def queued() -> bool:
            with self.gc._lock:
                return len(self.gc._queue) == n

        eventually(queued, what=f"{n} wakes queued behind the commit in flight")

    def release(self) -> None:
        self._release.set()


def test_wakes_ready_together_share_one_commit(make_instance: Any) -> None:
    """Runs started while a commit is in flight are inserted together, each with its first wake
    (store/starts.py), in one commit_wakes call."""
    inst = make_instance(wake_batch_size=64)
    wf = define(inst, plus_one, "group_commit_plus_one")
    held = HeldCommit(inst)
    held.arm()
    seen: list[dict[str, Any]] = []
    telemetry.attach("group-commit-test", [("continuum", "wake", "batch")], lambda e, m, md: seen.append(dict(m)))
    started: dict[int, str] = {}

    def start(n: int) -> None:
        started[n] = cn.start(wf, {"n": n}, instance=inst).id  # returns once its first commit is durable

    callers = [threading.Thread(target=start, args=(n,)) for n in range(5)]
    try:
        callers[0].start()
        assert held.entered.wait(30)  # the first run's insert is in flight, held
        for c in callers[1:]:
            c.start()
        held.wait_queued(4)
        assert started == {}  # no caller is told its run started before its commit
        held.release()
        for c in callers:
            c.join(30)
        results = [cn.wait(started[n], timeout=30, instance=inst) for n in range(5)]
    finally:
        telemetry.detach("group-commit-test")
        held.release()
    assert results == [1, 2, 3, 4, 5]
    assert held.kinds[0] == ["StartingWake"] * 4 and held.batches[0] == ["WakeResult"] * 4  # one commit for four
    assert seen and seen[0]["wakes"] == 4
    for n in range(1, 5):
        row = inst.store.get_run(uuid.UUID(started[n]))
        assert row.state == "completed" and row.lease_owner is None and row.result == n + 1
        assert types(inst, cn.get_run(started[n], instance=inst)).count("activity_completed") == 1


def test_a_fenced_out_run_stops_alone(make_instance: Any, store_kind: str, request: Any) -> None:
    """A wake of the batch whose lease was lost is refused; the others in the same commit end."""
    inst = make_instance(wake_batch_size=64)
    wf = define(inst, signalled_plus_one, "group_commit_fenced")
    held = HeldCommit(inst)
    runs = [cn.start(wf, {"n": n}, instance=inst) for n in range(4)]  # each waits for its signal
    for run in runs:
        eventually(lambda r=run: "signal_awaited" in types(inst, r), what=f"run {run.id} waiting")
    held.arm()
    try:
        cn.signal(runs[0].id, "go", instance=inst)
        assert held.entered.wait(30)  # run 0's wake is in flight, held
        for run in runs[1:]:
            cn.signal(run.id, "go", instance=inst)
        held.wait_queued(3)
        # Another engine takes run 2's lease meanwhile (as after an expiry): its queued wake is
        # stale. In one step: the engine's heartbeat would renew a lease that merely expired.
        victim = uuid.UUID(runs[2].id)
        if store_kind == "memory":
            with inst.store._lock:
                inst.store.expire_run_lease(victim)
                assert inst.store.claim_run(victim, "thief", 60.0) is not None
        else:
            with psycopg.connect(request.getfixturevalue("db_url"), autocommit=True) as conn:
                taken = conn.execute(
                    "UPDATE continuum_runs SET lease_owner = 'thief', lease_token = nextval('continuum_lease_token_seq'), "
                    "lease_expires_at = now() + interval '60 seconds' WHERE id = %s RETURNING id", (victim,)).fetchone()
            assert taken is not None
    finally:
        held.release()
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in (runs[0], runs[1], runs[3])] == [1, 2, 4]
    # one commit for the three (queued in the order their claims came); only the stale wake refused
    assert held.outcomes[0] == {uuid.UUID(runs[1].id): "WakeResult", victim: "LeaseLost",
                                uuid.UUID(runs[3].id): "WakeResult"}
    row = inst.store.get_run(victim)
    assert row.state != "completed" and row.lease_owner == "thief"
    assert "signal_received" not in types(inst, runs[2])



async def signalled_two_steps(n: int) -> int:
    await cn.signal("go")
    return await add_one(await add_one(n))


@pytest.mark.parametrize("lost", ["before", "after"])
def test_a_batch_lost_as_a_whole_leaves_each_run_whole_and_retried_alone(make_instance: Any, lost: str) -> None:
    """The connection is lost during a group commit, before the transaction committed (nothing of
    the batch is written) or after it (all of it is, and the reply never came): every run of the
    batch is retried on its own, and each ends exactly as it would have, once."""
    # After a reply lost past the commit, the replayed run finds its step's task journaled and
    # leased to this engine but not running here: it runs once that lease lapses (short here).
    inst = make_instance(wake_batch_size=64, lease_ttl=2.0)
    wf = define(inst, signalled_two_steps, f"group_commit_lost_{lost}")
    held = HeldCommit(inst)
    real_many = held._many
    failed: list[list[uuid.UUID]] = []

    def losing(wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        if not failed:
            failed.append([w.run_id for w in wakes])
            if lost == "after":
                real_many(wakes)
            raise DatabaseUnavailable("the connection was lost during the group commit")
        return real_many(wakes)

    held._many = losing
    runs = [cn.start(wf, {"n": 10 * n}, instance=inst) for n in range(4)]
    for run in runs:
        eventually(lambda r=run: "signal_awaited" in types(inst, r), what=f"run {run.id} waiting")
    held.arm()
    try:
        cn.signal(runs[0].id, "go", instance=inst)
        assert held.entered.wait(30)
        for run in runs[1:]:
            cn.signal(run.id, "go", instance=inst)
        held.wait_queued(3)
    finally:
        held.release()
    assert [cn.wait(r.id, timeout=60, instance=inst) for r in runs] == [2, 12, 22, 32]
    assert len(failed) == 1 and len(failed[0]) == 3
    for run in runs:
        seqs = [e.seq for e in journal(inst, run)]
        assert seqs == list(range(1, len(seqs) + 1))  # nothing journaled twice
        assert types(inst, run).count("signal_received") == 1
        assert types(inst, run).count("activity_completed") == 2
