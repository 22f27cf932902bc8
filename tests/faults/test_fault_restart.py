"""PostgreSQL restarted under load: the workers reconnect (with backoff) and every run completes
exactly once; nothing is lost or journaled twice.

The restart is real: ``pg_ctlcluster ... restart`` for the machine's PostgreSQL 15 (it disturbs
other sessions on that server for a second or two, so there is one such test), and stop + start
of the session's embedded PostgreSQL 18.
"""

from __future__ import annotations

import pytest

import continuum_nb as cn
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RUNS = 300
STEPS = 5


def _restart(server: str) -> None:
    fx.restart_server(server)


def test_postgres_restart_mid_load(db_url: str, request: pytest.FixtureRequest) -> None:
    server = request.node.callspec.params["pg_server"]
    fx.install(db_url)
    a = fx.Worker(db_url, "A", extra=("--verbose",))
    b = fx.Worker(db_url, "B", extra=("--verbose",))
    with fx.workers(a, b), fx.client(db_url) as inst:
        owners = {a.app: a.wait_ready(), b.app: b.wait_ready()}
        for i in range(RUNS):
            cn.start("fx_steps", {"tag": f"r{i}", "n": STEPS}, instance=inst)
        fx.wait_until("a third of the runs to complete", lambda: fx.completed_count(db_url) >= RUNS // 3, 120)
        try:
            _restart(server)
        finally:
            # Whatever happened, leave the server running for everyone else.
            fx.wait_until("PostgreSQL to accept connections again", lambda: fx.scalar(db_url, "SELECT true"), 120)
        restarted_at = fx.scalar(db_url, "SELECT pg_postmaster_start_time()")
        done_at_restart = fx.scalar(db_url, "SELECT count(*) FROM continuum_runs WHERE state = 'completed' "
                                            "AND completed_at < %s", (restarted_at,))
        assert done_at_restart < RUNS, "all runs finished before the restart; make the load longer"
        try:
            fx.wait_until(f"all {RUNS} runs to complete after the restart",
                          lambda: fx.completed_count(db_url) == RUNS, 240, every=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{fx.diagnose(db_url, [a, b])}") from None

        assert a.proc.poll() is None and b.proc.poll() is None, "a worker died instead of reconnecting"
        # Both reconnected: each has sessions opened after the restart (its pool and its LISTEN
        # connection come back with backoff even when the other worker finished the load first).
        fx.wait_until("both workers to reconnect", lambda: fx.scalar(db_url, """
            SELECT count(DISTINCT application_name) = 2 FROM pg_stat_activity
             WHERE application_name IN (%s, %s) AND backend_start > %s""", (a.app, b.app, restarted_at)), 60)
        writers_after = {w for (w,) in fx.query(
            db_url, "SELECT DISTINCT writer FROM fx_writes WHERE at > %s", (restarted_at,))}
        assert writers_after & {a.app, b.app}, "no worker wrote after the restart"

        total = sum(range(STEPS))
        assert fx.query(db_url, "SELECT DISTINCT result FROM continuum_runs") == [(total,)]
        completions = fx.query(db_url, "SELECT run_id, count(*) FROM fx_writes WHERE kind = 'state' "
                                       "AND detail = 'completed' GROUP BY run_id")
        assert len(completions) == RUNS and {n for _, n in completions} == {1}
        assert fx.journal_problems(db_url) == []
        per_run = fx.query(db_url, "SELECT count(*) FROM continuum_events GROUP BY run_id")
        assert {n for (n,) in per_run} == {2 * STEPS}
        assert fx.fencing_problems(db_url, owners) == []
        # At-least-once across the restart: every step's body ran; re-runs are attempts whose
        # result commit was cut by the restart.
        keys = fx.query(db_url, "SELECT key, count(*) FROM fx_effects GROUP BY key")
        assert len(keys) == RUNS * STEPS
        rerun = sum(n - 1 for _, n in keys)
        late = fx.tasks_applied_without_task_lease(db_url, owners)
        print(f"{server}: restart after {done_at_restart}/{RUNS} runs; {rerun} step bodies re-ran; "
              f"{late} outcomes committed by the run holder after the task lease had expired")
