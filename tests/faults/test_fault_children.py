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
    parents: list[str] = []

    def start(inst: object) -> None:
        parents.extend(cn.start("fx_parent", {"tag": f"p{i:03d}"}, instance=inst).id for i in range(PARENTS))

    # Kill A while parents are starting children: some children exist, most parents are not done.
    with fx.taken_over(db_url, start, env={"FX_ACTIVITY_SECONDS": "0.05"}, lease_ttl=TTL, killed_when=(
            "A to start some children",
            lambda: fx.scalar(db_url, "SELECT count(*) FROM continuum_runs WHERE workflow = 'fx_kid'") >= 6),
            done_when=("B to finish every parent", lambda: fx.completed_count(db_url, "fx_parent") == PARENTS),
            done_timeout=120) as (inst, owners):
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
        assert fx.fencing_problems(db_url, owners) == []
        # B took over parents A held when it died.
        app_a, app_b = owners
        took_over = fx.scalar(db_url, """
            SELECT count(DISTINCT w.run_id) FROM fx_writes w JOIN continuum_runs r ON r.id = w.run_id
             WHERE r.workflow = 'fx_parent' AND w.writer = %s AND w.kind = 'event'
               AND EXISTS (SELECT 1 FROM fx_writes v WHERE v.run_id = w.run_id AND v.writer = %s)""",
            (app_b, app_a))
        assert took_over > 0, "no parent was started by A and finished by B"
