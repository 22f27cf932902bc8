"""kill -9 during continue-as-new: a worker process driving chains of runs that continue as new
is killed mid-load; a second worker finishes them. Each link of each chain has exactly one
successor, no run is orphaned or doubled, each step ran its body once per stored result, and the
signals sent to the chains' first ids (in the mailboxes of runs in flight, moved along the chain
by each continuation) are each delivered exactly once."""

from __future__ import annotations

import psycopg
import pytest

import continuum_nb as cn
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0
CHAINS, CYCLES = 30, 5


def test_kill_9_during_continue_as_new_leaves_one_successor_per_link(db_url: str) -> None:
    fx.install(db_url)
    env = {"FX_ACTIVITY_SECONDS": "0.05"}
    a = fx.Worker(db_url, "A", lease_ttl=TTL, concurrency=4, env=env)
    with fx.workers(a) as procs, fx.client(db_url) as inst:
        owner_a = a.wait_ready()
        firsts = {cn.start("fx_cycles", {"tag": f"c{i:02d}", "cycle": 1, "n": CYCLES}, instance=inst).id: f"c{i:02d}"
                  for i in range(CHAINS)}
        continued = "SELECT count(*) FROM continuum_events WHERE event_type = 'run_continued_as_new'"
        fx.wait_until("some chains to continue", lambda: fx.scalar(db_url, continued) >= CHAINS, 60)
        # The signals go to each chain's first id: some land in the mailbox of a run that is
        # about to continue (they move with it), some reach a later run directly.
        for first, tag in firsts.items():
            assert cn.signal(first, "done", tag, instance=inst) == "delivered"
        a.kill()
        fx.wait_disconnected(db_url, a.app)
        at_kill = fx.scalar(db_url, continued)
        # Steps whose result was not stored when A died: their task is still leased to A.
        unstored = {k for (k,) in fx.query(db_url, """
            SELECT idempotency_key FROM continuum_activity_tasks
             WHERE activity = 'fx_link' AND state = 'leased' AND lease_owner = %s""", (owner_a,))}
        assert at_kill < CHAINS * (CYCLES - 1), "worker A continued every chain before it was killed"
        b = fx.Worker(db_url, "B", lease_ttl=TTL, concurrency=4, env=env)
        procs.append(b)
        owner_b = b.wait_ready()
        for first, tag in firsts.items():
            result = cn.wait(first, timeout=120, instance=inst)  # follows the chain to its last run
            assert result == {"tag": tag, "total": sum(range(1, CYCLES + 1)), "done": tag}

        # Exactly one successor per link: CHAINS chains of CYCLES runs, nothing else.
        runs = fx.query(db_url, "SELECT id, state, result, continued_from_run_id, correlation_id FROM continuum_runs")
        assert len(runs) == CHAINS * CYCLES
        assert fx.query(db_url, """SELECT continued_from_run_id FROM continuum_runs
                                    WHERE continued_from_run_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1""") == []
        by_id = {r[0]: r for r in runs}
        for first in firsts:
            ids = [r for r in by_id if str(r) == first]
            while (nxt := [r[0] for r in runs if r[3] == ids[-1]]):
                ids.append(nxt[0])
            assert len(ids) == CYCLES
            assert {by_id[r][4] for r in ids} == {ids[0]}  # one correlation_id: the first run's
            for prev, nxt_id in zip(ids, ids[1:], strict=False):
                assert by_id[prev][1:3] == ("completed", {"continued": str(nxt_id)})
        # Each run's journal is whole; each link journaled one continuation and one step.
        assert fx.journal_problems(db_url) == []
        assert fx.fencing_problems(db_url, {a.app: owner_a, b.app: owner_b}) == []
        assert fx.scalar(db_url, continued) == CHAINS * (CYCLES - 1)
        stored = fx.scalar(db_url, "SELECT count(*) FROM continuum_activity_results WHERE activity_module = 'fx_link'")
        assert stored == CHAINS * CYCLES
        # Every "done" delivered once, to the last run of its chain; no signal left behind.
        assert fx.query(db_url, "SELECT count(*), count(*) FILTER (WHERE delivered) FROM continuum_signals") == [
            (CHAINS, CHAINS)]
        received = fx.query(db_url, """
            SELECT e.run_id FROM continuum_events e JOIN continuum_runs r ON r.id = e.run_id
             WHERE e.event_type = 'signal_received' AND r.input->>'cycle' = %s""", (str(CYCLES),))
        assert len(received) == CHAINS
        # A step body ran again only if A was killed between its effect and its stored result.
        repeated = {k for (k,) in fx.query(
            db_url, "SELECT key FROM fx_effects WHERE activity = 'fx_link' GROUP BY key HAVING count(*) > 1")}
        assert repeated <= unstored, f"a step ran twice although its result was stored: {repeated - unstored}"
        print(f"kill -9 after {at_kill}/{CHAINS * (CYCLES - 1)} continuations; {len(repeated)} step bodies ran twice")


#: Holds worker A inside the transaction of its first continuing wake: the successor's insert
#: sleeps (only for A's sessions, only once), so A can be killed with that transaction open.
HOLD_DDL = """
CREATE TABLE IF NOT EXISTS fx_held (run_id uuid PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION fx_hold_successor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'fx-A' AND NOT EXISTS (SELECT 1 FROM fx_held) THEN
        INSERT INTO fx_held (run_id) VALUES (NEW.continued_from_run_id);
        PERFORM pg_sleep(6);  -- (the server notices its client is gone only after it)
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fx_hold_successor BEFORE INSERT ON continuum_runs FOR EACH ROW
    WHEN (NEW.continued_from_run_id IS NOT NULL) EXECUTE FUNCTION fx_hold_successor();
"""


def test_kill_9_inside_the_continuing_transaction_writes_none_of_it(db_url: str) -> None:
    """A worker killed with its continuing wake's transaction open (the successor being inserted)
    leaves the run as it was: not completed, no successor, its mailbox in place; another worker
    replays it and continues it once."""
    fx.install(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(HOLD_DDL)
    a = fx.Worker(db_url, "A", lease_ttl=TTL, concurrency=2)
    with fx.workers(a) as procs, fx.client(db_url) as inst:
        owner_a = a.wait_ready()
        first = cn.start("fx_cycles", {"tag": "held", "cycle": 1, "n": 3}, instance=inst).id
        cn.signal(first, "done", "held", instance=inst)  # waits in the first run's mailbox
        fx.wait_until("A to be inside the continuing transaction", lambda: fx.scalar(db_url, """
            SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fx-A' AND wait_event = 'PgSleep'"""), 60)
        a.kill()
        fx.wait_disconnected(db_url, a.app)
        # Nothing of that wake was written: no successor, the run not completed, the signal kept.
        assert fx.query(db_url, "SELECT count(*) FROM continuum_runs") == [(1,)]
        assert fx.query(db_url, "SELECT state <> 'completed', result FROM continuum_runs") == [(True, None)]
        assert fx.query(db_url, "SELECT count(*) FROM continuum_events WHERE event_type = 'run_continued_as_new'") == [(0,)]
        assert fx.query(db_url, "SELECT run_id::text, delivered FROM continuum_signals") == [(first, False)]
        b = fx.Worker(db_url, "B", lease_ttl=TTL, concurrency=2)
        procs.append(b)
        owner_b = b.wait_ready()
        assert cn.wait(first, timeout=120, instance=inst) == {"tag": "held", "total": 6, "done": "held"}
        assert fx.query(db_url, "SELECT count(*), count(DISTINCT continued_from_run_id) FROM continuum_runs") == [(3, 2)]
        assert fx.query(db_url, "SELECT count(*) FROM continuum_events WHERE event_type = 'run_continued_as_new'") == [(2,)]
        assert fx.query(db_url, "SELECT count(*) FROM continuum_signals WHERE delivered") == [(1,)]
        assert fx.journal_problems(db_url) == []
        assert fx.fencing_problems(db_url, {a.app: owner_a, b.app: owner_b}) == []
