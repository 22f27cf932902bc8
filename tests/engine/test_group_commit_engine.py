"""Group commit in a running engine: wakes of several runs that become ready while a commit is in
flight are committed by one ``commit_wakes`` call, and every run ends exactly as it would alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.store.base import Wake, WakeResult
from tests.engine.helpers import define, eventually, types


@cn.activity(name="group_commit.add_one")
def add_one(n: int) -> int:
    return n + 1


async def plus_one(n: int) -> int:
    return await add_one(n)


class HeldCommit:
    """Holds the first wake committed through the engine's group commit until ``release()``,
    so that the wakes of the runs started meanwhile queue behind it; records each batch's
    outcomes."""

    def __init__(self, inst: cn.Instance) -> None:
        engine = inst.start_engine()
        assert engine is not None
        self.gc = gc = engine.group_commit
        gc._max_in_flight = 1  # one commit in flight: the others queue behind the held one
        self._one, self._many = gc._commit_one, gc._commit_many
        self.entered, self._release = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []
        gc._commit_one, gc._commit_many = self._commit_one, self._commit_many

    def _commit_one(self, wake: Wake) -> WakeResult:
        if not self.entered.is_set():
            self.entered.set()
            assert self._release.wait(30)
        return self._one(wake)

    def _commit_many(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        got = self._many(wakes)
        self.batches.append([type(o).__name__ for o in got])
        return got

    def wait_queued(self, n: int) -> None:
        def queued() -> bool:
            with self.gc._lock:
                return len(self.gc._queue) == n

        eventually(queued, what=f"{n} wakes queued behind the commit in flight")

    def release(self) -> None:
        self._release.set()


def test_wakes_ready_together_share_one_commit(make_instance: Any) -> None:
    inst = make_instance(wake_batch_size=64)
    wf = define(inst, plus_one, "group_commit_plus_one")
    held = HeldCommit(inst)
    seen: list[dict[str, Any]] = []
    telemetry.attach("group-commit-test", [("continuum", "wake", "batch")], lambda e, m, md: seen.append(dict(m)))
    try:
        first = cn.start(wf, {"n": 0}, instance=inst)
        assert held.entered.wait(30)
        others = [cn.start(wf, {"n": i}, instance=inst) for i in range(1, 5)]
        held.wait_queued(4)
        held.release()
        results = [cn.wait(r.id, timeout=30, instance=inst) for r in [first, *others]]
    finally:
        telemetry.detach("group-commit-test")
        held.release()
    assert results == [1, 2, 3, 4, 5]
    assert held.batches == [["WakeResult"] * 4]  # one commit for the four
    assert [m["wakes"] for m in seen] == [4]
    for run in others:
        row = inst.store.get_run(uuid.UUID(run.id))
        assert row.state == "completed" and row.lease_owner is None and row.result == row.input["n"] + 1
        assert types(inst, run).count("activity_completed") == 1


def test_a_fenced_out_run_stops_alone(make_instance: Any, store_kind: str, request: Any) -> None:
    """A wake of the batch whose lease was lost is refused; the others in the same commit end."""
    inst = make_instance(wake_batch_size=64)
    wf = define(inst, plus_one, "group_commit_fenced")
    held = HeldCommit(inst)
    try:
        first = cn.start(wf, {"n": 0}, instance=inst)
        assert held.entered.wait(30)
        others = [cn.start(wf, {"n": i}, instance=inst) for i in range(1, 4)]
        held.wait_queued(3)
        # Another engine takes run 1's lease meanwhile (as after an expiry): its queued wake is
        # stale. In one step: the engine's heartbeat would renew a lease that merely expired.
        victim = uuid.UUID(others[1].id)
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
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in (first, others[0], others[2])] == [1, 2, 4]
    assert held.batches == [["WakeResult", "LeaseLost", "WakeResult"]]  # one commit; only the stale wake refused
    row = inst.store.get_run(victim)
    assert row.state != "completed" and row.lease_owner == "thief"
    assert "activity_completed" not in types(inst, others[1])

