"""kill -9 of a worker while ``cn.first`` resolves and while sagas compensate: a second worker
finishes every run, nothing journaled twice, every write fenced, the winner of each ``first`` the
one its journal resolved, and each compensation run exactly once, last first."""

from __future__ import annotations

import pytest

import continuum_nb as cn
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RUNS = 40
ENV = {"FX_ACTIVITY_SECONDS": "0.05"}


def _count(db_url: str, sql: str) -> int:
    return int(fx.scalar(db_url, sql))


def test_kill_9_while_first_resolves_keeps_the_journals_winner(db_url: str) -> None:
    fx.install(db_url)

    def start(inst: object) -> None:
        for i in range(RUNS):
            cn.start("fx_race", {"tag": f"r{i:03d}"}, instance=inst)

    with fx.taken_over(db_url, start, env=ENV, killed_when=("A to resolve some races", lambda: _count(
            db_url, "SELECT count(*) FROM continuum_events WHERE event_type = 'timer_cancelled'") >= 4),
            done_when=("every race completed", lambda: fx.completed_count(db_url, "fx_race") == RUNS)) as (_, owners):
        # Each run's result is the start its journal resolved first: of the two links, the one
        # whose activity_completed comes first in the journal.
        rows = fx.query(db_url, """
            SELECT r.id::text, r.result,
                   (SELECT s.payload->'args'->>1 FROM continuum_events c
                      JOIN continuum_events s ON s.run_id = c.run_id
                                             AND s.seq = (c.payload->>'scheduled_seq')::bigint
                     WHERE c.run_id = r.id AND c.event_type = 'activity_completed'
                       AND s.payload->'args'->>1 IN ('1', '2')
                     ORDER BY c.seq LIMIT 1)
              FROM continuum_runs r WHERE r.workflow = 'fx_race'""")
        assert len(rows) == RUNS
        for run_id, result, first_link in rows:
            assert result == [int(first_link) - 1, int(first_link)], (run_id, result, first_link)
        # One timer per race, cancelled once (cn.first's loser), none fired.
        timers = fx.query(db_url, """
            SELECT run_id, count(*) FILTER (WHERE event_type = 'timer_started'),
                   count(*) FILTER (WHERE event_type = 'timer_cancelled'),
                   count(*) FILTER (WHERE event_type = 'timer_fired')
              FROM continuum_events WHERE event_type LIKE 'timer_%' GROUP BY run_id""")
        assert {(s, c, f) for _, s, c, f in timers} == {(1, 1, 0)} and len(timers) == RUNS
        assert fx.journal_problems(db_url) == []
        assert fx.fencing_problems(db_url, owners) == []


def test_kill_9_mid_compensation_runs_each_compensation_once_last_first(db_url: str) -> None:
    fx.install(db_url)
    steps = 4
    failed = "SELECT count(*) FROM continuum_runs WHERE workflow = 'fx_saga' AND state = 'failed'"

    def start(inst: object) -> None:
        for i in range(RUNS):
            cn.start("fx_saga", {"tag": f"s{i:03d}", "steps": steps}, instance=inst)

    with fx.taken_over(db_url, start, env=ENV, killed_when=("A to be compensating", lambda: _count(
            db_url, "SELECT count(*) FROM continuum_events WHERE event_type = 'compensation_completed'") >= 6),
            done_when=("every saga ended", lambda: _count(db_url, failed) == RUNS)) as (inst, owners):
        for info in cn.runs(workflow="fx_saga", limit=1000, instance=inst):
            assert info.state == "failed" and "doomed" in str(info.error), info
        # Each run's journal: every compensation scheduled once and completed once, last step first.
        rows = fx.query(db_url, """
            SELECT run_id::text, array_agg((payload->'args'->>1)::int ORDER BY seq)
              FROM continuum_events WHERE event_type = 'compensation_scheduled' GROUP BY run_id""")
        assert len(rows) == RUNS and {tuple(order) for _, order in rows} == {(4, 3, 2, 1)}
        done = fx.query(db_url, """
            SELECT run_id, count(*) FROM continuum_events WHERE event_type = 'compensation_completed'
             GROUP BY run_id""")
        assert {n for _, n in done} == {steps} and len(done) == RUNS
        # Each undo's body ran at least once (a kill between the body and its commit re-runs it,
        # which its idempotency key absorbs).
        effects = fx.query(db_url, "SELECT key, count(*) FROM fx_effects WHERE activity = 'fx_undo' GROUP BY key")
        assert len(effects) == RUNS * steps
        assert fx.journal_problems(db_url) == []
        assert fx.fencing_problems(db_url, owners) == []
