"""kill -9 of a worker while parents start their children: a second worker finishes every
parent, and each child was started exactly once (one run per child identity, one child_started
per child in the parent's journal, one child_completed each), with every write fenced."""

from __future__ import annotations

import pytest

import continuum_nb as cn
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0
PARENTS = 60


def test_kill_9_while_children_start_makes_each_child_once(db_url: str) -> None:
    fx.install(db_url)
    env = {"FX_ACTIVITY_SECONDS": "0.05"}
    a = fx.Worker(db_url, "A", lease_ttl=TTL, env=env)
    with fx.workers(a) as procs, fx.client(db_url) as inst:
        owner_a = a.wait_ready()
        parents = [cn.start("fx_parent", {"tag": f"p{i:03d}"}, instance=inst).id for i in range(PARENTS)]
        # Kill A while parents are starting children: some children exist, most parents are not done.
        fx.wait_until("A to start some children",
                      lambda: fx.scalar(db_url, "SELECT count(*) FROM continuum_runs WHERE workflow = 'fx_kid'") >= 6, 60)
        a.kill()
        fx.wait_disconnected(db_url, a.app)
        assert fx.completed_count(db_url, "fx_parent") < PARENTS, "A finished every parent before it was killed"
        b = fx.Worker(db_url, "B", lease_ttl=TTL, env=env)
        procs.append(b)
        owner_b = b.wait_ready()
        fx.wait_until("B to finish every parent", lambda: fx.completed_count(db_url, "fx_parent") == PARENTS, 120)

        for info in cn.runs(workflow="fx_parent", limit=1000, instance=inst):
            assert info.state == "completed" and info.result == [1, 2, 3], info
        # One child run per (parent, child identity), linked to its parent and its family.
        kids = fx.query(db_url, """
            SELECT parent_run_id::text, correlation_id::text, input->>'i', count(*), min(state), max(state)
              FROM continuum_runs WHERE workflow = 'fx_kid'
             GROUP BY parent_run_id, correlation_id, input->>'i'""")
        assert len(kids) == 3 * PARENTS
        assert {(p, c, n, lo, hi) for p, c, _, n, lo, hi in kids} == {(p, p, 1, "completed", "completed") for p in parents}
        # The parents' journals: each child started once and completed once, naming that run.
        rows = fx.query(db_url, """
            SELECT s.run_id::text, s.payload->>'child_run_id', count(c.seq)
              FROM continuum_events s
              LEFT JOIN continuum_events c ON c.run_id = s.run_id AND c.event_type = 'child_completed'
               AND (c.payload->>'started_seq')::bigint = s.seq
             WHERE s.event_type = 'child_started' GROUP BY s.run_id, s.seq, s.payload""")
        assert len(rows) == 3 * PARENTS and {n for _, _, n in rows} == {1}
        journaled = {kid for _, kid, _ in rows}
        assert journaled == {k for (k,) in fx.query(db_url, "SELECT id::text FROM continuum_runs WHERE workflow = 'fx_kid'")}
        assert fx.journal_problems(db_url) == []
        assert fx.fencing_problems(db_url, {a.app: owner_a, b.app: owner_b}) == []
        # B took over parents A held when it died.
        took_over = fx.scalar(db_url, """
            SELECT count(DISTINCT w.run_id) FROM fx_writes w JOIN continuum_runs r ON r.id = w.run_id
             WHERE r.workflow = 'fx_parent' AND w.writer = %s AND w.kind = 'event'
               AND EXISTS (SELECT 1 FROM fx_writes v WHERE v.run_id = w.run_id AND v.writer = %s)""",
            (b.app, a.app))
        assert took_over > 0, "no parent was started by A and finished by B"
