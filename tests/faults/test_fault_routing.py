"""Which engine runs what: a run whose workflow no live engine knows stays where it is and
visible; ``--no-stored-code`` refuses stored ``%%workflow`` sources; a run started by a pure
client (``run_engine=False``) is finished by a worker.

"Nothing claimed it" is observed after a later run of a known workflow was claimed and finished
by the same worker: its claim passes already went over the unknown run.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

import continuum_nb as cn
from continuum_nb import api
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@cn.workflow(name="fx_local_only")
async def fx_local_only(seconds: float) -> str:
    """Defined in the test process only: no worker imports this module."""
    await cn.timer(cn.seconds(seconds))
    return "done"


CELL = '''\
import continuum_nb as cn


@cn.workflow(name="fx_cell")
async def fx_cell(x: int) -> int:
    return x * 2
'''


def _finish_known_run(inst: cn.Instance, url: str, tag: str) -> None:
    rid = cn.start("fx_steps", {"tag": tag, "n": 1}, instance=inst).id
    assert cn.wait(rid, 60, instance=inst) == 0


def test_run_of_a_workflow_no_engine_knows_stays_visible(db_url: str) -> None:
    fx.install(db_url)
    # A suspended run with a journal: started by an engine that knew the workflow (this process),
    # which then stopped and released it; its timer is due.
    local = cn.Instance(f"fx-local-{uuid.uuid4().hex[:6]}", database_url=db_url, lease_ttl=2.0, heartbeat=0.5,
                        release_after=0.1)
    try:
        suspended = cn.start(fx_local_only, {"seconds": 0.5}, instance=local).id
        fx.wait_until("the run to suspend on its timer", lambda: api.get_run(suspended, instance=local).state
                      == "suspended", 30)
    finally:
        local.close()
    with fx.client(db_url) as inst:
        # Never run anywhere: the workflow name is only known from a stored module version.
        inst.store.save_version("fx_nowhere", "0" * 64, "async def fx_nowhere(): ...", "module")
        unknown = cn.start("fx_nowhere", {}, instance=inst).id
        before = api.get_run(suspended, instance=inst)
        assert before.lease_owner is None and before.next_wakeup_at is not None
        w = fx.Worker(db_url, "W")
        with fx.workers(w):
            w.wait_ready()
            fx.wait_until("the timer to be due", lambda: fx.scalar(
                db_url, "SELECT now() > next_wakeup_at FROM continuum_runs WHERE id = %s", (suspended,)), 30)
            _finish_known_run(inst, db_url, "known")
            for rid, state in ((suspended, "suspended"), (unknown, "suspended")):
                info = api.get_run(rid, instance=inst)
                assert (info.state, info.lease_owner) == (state, None), info
            assert [e.event_type for e in api.events(suspended, instance=inst)] == ["timer_started"]
            assert api.events(unknown, instance=inst) == []
            listed = {r.id: r.state for r in cn.runs(instance=inst)}
            assert listed[suspended] == "suspended" and listed[unknown] == "suspended"
            assert fx.query(db_url, "SELECT count(*) FROM fx_writes WHERE run_id IN (%s, %s) AND writer = %s",
                            (suspended, unknown, w.app)) == [(0,)]


def test_no_stored_code_refuses_stored_cell_sources(db_url: str) -> None:
    fx.install(db_url)
    with fx.client(db_url) as inst:
        inst.store.save_version("fx_cell", hashlib.sha256(CELL.encode()).hexdigest(), CELL, "cell")
        rid = cn.start("fx_cell", {"x": 21}, instance=inst).id
        strict = fx.Worker(db_url, "strict", extra=("--no-stored-code",))
        with fx.workers(strict):
            strict.wait_ready()
            _finish_known_run(inst, db_url, "after-cell")
            info = api.get_run(rid, instance=inst)
            assert (info.state, info.lease_owner) == ("suspended", None)
            assert api.events(rid, instance=inst) == []
            assert strict.terminate() == 0
        trusting = fx.Worker(db_url, "trusting")
        with fx.workers(trusting):
            trusting.wait_ready()
            assert cn.wait(rid, 60, instance=inst) == 42


def test_run_started_by_a_pure_client_is_finished_by_a_worker(db_url: str) -> None:
    fx.install(db_url)
    with fx.client(db_url) as inst:
        assert inst.config.run_engine is False
        rid = cn.start("fx_order", {"order_id": "c1"}, instance=inst).id
        assert inst.engine_running is False
        # Nothing ran in this process: no lease, no journal.
        info = api.get_run(rid, instance=inst)
        assert (info.state, info.lease_owner) == ("suspended", None)
        assert api.events(rid, instance=inst) == []
        w = fx.Worker(db_url, "W")
        with fx.workers(w):
            owner = w.wait_ready()
            assert cn.wait(rid, 60, instance=inst) == {"order": "c1", "receipt": {"charged": "c1"},
                                                       "shipped": "shipped:c1"}
        assert inst.engine_running is False
        assert {o for (o,) in fx.query(db_url, "SELECT DISTINCT lease_owner FROM fx_writes "
                                               "WHERE kind = 'event'")} == {owner}
        assert fx.query(db_url, "SELECT pid FROM fx_effects") == [(w.pid,), (w.pid,)]
