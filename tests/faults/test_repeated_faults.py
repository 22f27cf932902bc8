"""Faults that come back: the holder of one run is killed again and again (each time another
worker takes the run over), and a worker stopped past its lease TTL is resumed and goes on
working, without ever appending under the leases it lost.

Sizes: tests/faults/budget.py (``HOLDER_KILLS``: 3 short, 10 long).
"""

from __future__ import annotations

import signal
import time

import pytest

import continuum_nb as cn
from tests.faults import budget
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0


def _worker(url: str, label: str, seconds: str) -> fx.Worker:
    return fx.Worker(url, label, lease_ttl=TTL, heartbeat=0.5, env={"FX_ACTIVITY_SECONDS": seconds})


def test_a_run_survives_its_holder_being_killed_again_and_again(db_url: str) -> None:
    """kill -9 whoever holds the watched run, HOLDER_KILLS times in a row (a new worker replaces
    each); every run completes once with its result, the watched journal was written by each
    holder in turn, nothing was journaled twice or under a lost lease, and the idempotent steps
    ran more than once only where a holder died mid-step."""
    fx.install(db_url)
    kills = budget.HOLDER_KILLS
    steps = 8 * kills + 8
    seconds = "0.2"
    killed: dict[int, float] = {}
    with fx.workers() as procs, fx.client(db_url) as inst:
        owners: dict[str, str] = {}

        def spawn(label: str) -> fx.Worker:
            w = _worker(db_url, label, seconds)
            procs.append(w)
            owners[w.app] = w.wait_ready()
            return w

        alive = [spawn("A"), spawn("B")]
        ids = [cn.start("fx_chain", {"tag": f"h{i}", "n": steps}, instance=inst).id for i in range(6)]
        watched = ids[0]
        holders = []

        def holder_that_wrote() -> fx.Worker | None:
            # The live worker holding the watched run, once it has written to it (a claim
            # that has not committed anything yet is not a holder worth killing).
            owner = fx.scalar(db_url, "SELECT lease_owner FROM continuum_runs WHERE id = %s "
                                      "AND state IN ('running', 'suspended')", (watched,))
            w = next((w for w in alive if owners[w.app] == owner), None)
            if w is not None and fx.scalar(db_url, "SELECT count(*) FROM fx_writes WHERE run_id = %s "
                                                   "AND writer = %s AND kind = 'event'", (watched, w.app)):
                return w
            return None

        for k in range(kills):
            victim = fx.wait_until("a live holder of the watched run that wrote to it (if the run "
                                   "completed, make it longer)", holder_that_wrote, 60)
            last_seq = fx.scalar(db_url, "SELECT coalesce(max(seq), 0) FROM continuum_events WHERE run_id = %s",
                                 (watched,))
            victim.kill()  # returns once the process is gone
            killed[victim.pid] = time.time()
            fx.wait_disconnected(db_url, victim.app)
            alive.remove(victim)
            holders.append(victim.app)
            alive.append(spawn(f"R{k}"))
            # Another worker took the run over and moved it on before the next kill.
            fx.wait_until(f"another worker to move the watched run on after kill {k + 1}",
                          lambda seq=last_seq, app=victim.app: fx.scalar(
                              db_url, "SELECT count(*) FROM fx_writes WHERE run_id = %s AND kind = 'event' "
                                      "AND seq > %s AND writer <> %s", (watched, seq, app)), 60)
        fx.wait_until("every run to complete", lambda: fx.completed_count(db_url) == len(ids), 120)
        assert [w.label for w in alive if not w.alive()] == []
        for w in alive:
            assert w.terminate(60) == 0, w.stderr()
        assert [p for w in procs for p in w.engine_problems()] == []

    total = sum(range(steps))
    assert fx.query(db_url, "SELECT DISTINCT result FROM continuum_runs") == [(total,)]
    assert fx.journal_problems(db_url) == []
    assert fx.fencing_problems(db_url, owners) == []
    assert fx.token_order_problems(db_url) == []
    writers = [w for (w,) in fx.query(db_url, "SELECT writer FROM fx_writes WHERE run_id = %s AND kind = 'event' "
                                              "ORDER BY seq", (watched,))]
    for app in holders:
        assert app in writers, f"{app} held the watched run but never wrote to it: {writers}"
    distinct = list(dict.fromkeys(writers))
    assert len(distinct) >= kills + 1, distinct

    def interrupted(pid: int, started: float) -> bool:
        return pid in killed and started <= killed[pid]

    problems, counts = fx.execution_problems(db_url, interrupted)
    assert problems == []
    stored = fx.query(db_url, "SELECT count(*), count(DISTINCT idempotency_key) FROM continuum_activity_results")
    assert stored == [(len(ids) * steps, len(ids) * steps)]
    print(f"{kills} holders of the watched run killed in turn; its journal was written by {distinct}; "
          f"{counts['repeated_keys']} of {counts['keys']} steps ran twice (their worker died mid-step)")


def test_stopped_worker_resumes_and_never_appends_under_a_lost_lease(db_url: str) -> None:
    """SIGSTOP a worker holding runs and attempts for 2.5 lease TTLs; another worker takes over
    and finishes them. After SIGCONT the stopped worker stays up: its late attempts and commits
    are fenced off (nothing written on the runs it had held, no result stored for them), and it
    then works normally: with the other worker gone, it alone finishes a new batch of runs."""
    fx.install(db_url)
    with fx.workers() as procs, fx.client(db_url) as inst:
        a = _worker(db_url, "A", "1.0")
        procs.append(a)
        owners = {a.app: a.wait_ready()}
        orders = [cn.start("fx_order", {"order_id": f"s{i}"}, instance=inst).id for i in range(6)]
        waiting = [cn.start("fx_signal", {"tag": f"g{i}"}, instance=inst).id for i in range(3)]
        fx.wait_until("A to be charging every order", lambda: fx.scalar(
            db_url, "SELECT count(*) FROM fx_effects WHERE activity = 'fx_charge' AND pid = %s", (a.pid,)) == 6, 30)
        held = {str(r): t for r, t in fx.query(
            db_url, "SELECT id, lease_token FROM continuum_runs WHERE lease_owner = %s", (owners[a.app],))}
        assert set(orders) <= set(held), "A does not hold the orders it is charging"
        a.send(signal.SIGSTOP)
        stopped_at = time.time()
        b = _worker(db_url, "B", "0.05")
        procs.append(b)
        owners[b.app] = b.wait_ready()
        for rid in waiting:
            cn.signal(rid, "go", {"by": "test"}, instance=inst)
        fx.wait_until("B to finish every run", lambda: fx.completed_count(db_url) == 9, 60)
        time.sleep(max(0.0, stopped_at + 2.5 * TTL - time.time()))
        a.send(signal.SIGCONT)
        resumed_at = time.time()
        # A's charges wake from their sleep and try to record their outcomes, its heartbeat finds
        # its leases gone; then B leaves and A alone runs a new batch.
        time.sleep(TTL)
        assert b.terminate(60) == 0, b.stderr()
        fresh = [cn.start("fx_steps", {"tag": f"n{i}", "n": 2}, instance=inst).id for i in range(5)]
        for rid in fresh:
            assert cn.wait(rid, 60, instance=inst) == 1
        assert a.alive(), a.stderr()
        assert a.terminate(60) == 0, a.stderr()
        assert a.engine_problems() == [] and b.engine_problems() == []

    late = fx.query(db_url, """
        SELECT kind, run_id, seq, detail, lease_token FROM fx_writes
         WHERE writer = %s AND at >= to_timestamp(%s) AND run_id::text = ANY(%s)""",
        (a.app, resumed_at, list(held)))
    assert late == [], f"the resumed worker wrote on runs it had lost: {late}"
    stale = fx.query(db_url, "SELECT kind, run_id, seq FROM fx_writes WHERE writer = %s AND lease_token = ANY(%s) "
                             "AND at >= to_timestamp(%s)", (a.app, list(held.values()), resumed_at))
    assert stale == [], f"the resumed worker wrote under a lease token it had lost: {stale}"
    assert fx.fencing_problems(db_url, owners) == []
    assert fx.token_order_problems(db_url) == []
    assert fx.journal_problems(db_url) == []
    # A did the new batch, under leases of its own taken after it resumed.
    new_writers = {w for (w,) in fx.query(db_url, "SELECT DISTINCT writer FROM fx_writes WHERE kind = 'event' "
                                                  "AND run_id::text = ANY(%s)", (fresh,))}
    assert new_writers == {a.app}
    # Each charge's result was stored once, by whoever held its task: the same in the journal.
    stored = dict(fx.query(db_url, "SELECT idempotency_key, result FROM continuum_activity_results "
                                   "WHERE activity_module = 'fx_charge'"))
    assert stored == {f"charge:s{i}": {"charged": f"s{i}"} for i in range(6)}
    # A's charges (caught by the stop) ran again on B: twice at most, and never a third time.
    twice = dict(fx.query(db_url, "SELECT key, count(*) FROM fx_effects WHERE activity = 'fx_charge' GROUP BY 1"))
    assert set(twice.values()) <= {1, 2}, twice
    assert fx.query(db_url, "SELECT count(*) FROM fx_effects WHERE pid = %s AND executed_at >= to_timestamp(%s) "
                            "AND activity = 'fx_charge'", (a.pid, resumed_at)) == [(0,)]


def test_resumed_worker_does_not_start_the_attempts_it_had_queued(db_url: str) -> None:
    """A worker that runs one attempt at a time holds four charges: one running, three waiting
    for the slot. It is stopped past its lease TTL; another worker takes the runs and the tasks
    over, runs the charges and stores their results. When the stopped worker resumes, the
    attempts it had queued belong to another engine's leases and their results are stored:
    starting them now would run a body outside the crash window (the idempotent charge after its
    result was stored). Only the charge that was already running may have run twice."""
    fx.install(db_url)
    with fx.workers() as procs, fx.client(db_url) as inst:
        a = fx.Worker(db_url, "A", lease_ttl=TTL, heartbeat=0.5, concurrency=1, env={"FX_ACTIVITY_SECONDS": "1.5"})
        procs.append(a)
        owners = {a.app: a.wait_ready()}
        ids = [cn.start("fx_order", {"order_id": f"q{i}"}, instance=inst).id for i in range(4)]
        fx.wait_until("A to hold the four charges, one of them running", lambda: fx.scalar(
            db_url, "SELECT count(*) FROM continuum_activity_tasks WHERE activity = 'fx_charge' AND lease_owner = %s",
            (owners[a.app],)) == 4 and fx.scalar(
            db_url, "SELECT count(*) FROM fx_effects WHERE pid = %s", (a.pid,)) == 1, 30)
        a.send(signal.SIGSTOP)
        b = fx.Worker(db_url, "B", lease_ttl=TTL, heartbeat=0.5, env={"FX_ACTIVITY_SECONDS": "0.05"})
        procs.append(b)
        owners[b.app] = b.wait_ready()
        fx.wait_until("B to finish the four runs", lambda: fx.completed_count(db_url) == 4, 60)
        a.send(signal.SIGCONT)
        resumed_at = time.time()
        time.sleep(3 * 1.5)  # long enough for A to start (and finish) each queued attempt, one by one
        assert a.alive(), a.stderr()
        assert a.terminate(60) == 0 and b.terminate(60) == 0
        assert a.engine_problems() == [] and b.engine_problems() == []

    late = fx.query(db_url, """
        SELECT activity, key, extract(epoch FROM started_at)::float8 FROM fx_effects
         WHERE pid = %s AND started_at >= to_timestamp(%s) ORDER BY id""", (a.pid, resumed_at))
    assert late == [], f"the resumed worker started attempts it no longer held: {late}"
    assert fx.fencing_problems(db_url, owners) == []
    assert fx.journal_problems(db_url) == []
    charges = dict(fx.query(db_url, "SELECT key, count(*) FROM fx_effects WHERE activity = 'fx_charge' GROUP BY 1"))
    assert sorted(charges.values()) == [1, 1, 1, 2], charges  # the one that was running ran again on B
    results = dict(fx.query(db_url, "SELECT id::text, result FROM continuum_runs"))
    assert {results[rid]["receipt"]["charged"] for rid in ids} == {f"q{i}" for i in range(4)}
