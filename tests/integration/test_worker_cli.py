"""``continuum worker`` as an operator meets it: the ready line names what it runs, the log has
a line per claim and run end (text or JSON), and SIGTERM drains within the printed bound,
leaving no lease (or, past the bound, exiting 1 and naming the leases left to expire)."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.definitions.workflow import source_hash
from tests.faults import fault_workflows as fx

pytestmark = pytest.mark.postgres

CELL = "import continuum_nb as cn\n\n@cn.workflow(name='from_a_cell')\nasync def from_a_cell():\n    return 1\n"


def _worker(url: str, label: str, *extra: str) -> fx.Worker:
    return fx.Worker(url, label, lease_ttl=10.0, heartbeat=1.0, extra=extra)


def _rest(w: fx.Worker) -> str:
    assert w.proc.stdout is not None
    return w.proc.stdout.read()


def _first_line(w: fx.Worker) -> str:
    """The first line on stdout: the ready line."""
    assert w.proc.stdout is not None
    line = w.proc.stdout.readline()
    assert line, w.stderr()
    return line


def _defined(kind: str) -> list[str]:
    """The workflow or activity names the fault workflows module defines, read from its source
    (not from the registry this test process shares with other tests)."""
    import re
    from pathlib import Path

    source = Path(fx.__file__).read_text(encoding="utf-8")
    return sorted(set(re.findall(r'@cn\.' + kind + r'\(name="(\w+)"', source)))


def _leases_of(url: str, owner: str) -> list[tuple[Any, ...]]:
    return fx.query(url, "SELECT 'run', id FROM continuum_runs WHERE lease_owner = %s UNION ALL "
                         "SELECT 'task', id FROM continuum_activity_tasks WHERE lease_owner = %s", (owner, owner))


def test_ready_line_names_workflows_stored_cells_and_activities(db_url: str) -> None:
    fx.install(db_url, write_log=False)
    fx.query(db_url, "INSERT INTO continuum_workflow_versions (name, version_hash, source, origin) "
                     "VALUES ('from_a_cell', %s, %s, 'cell') RETURNING name", (source_hash(CELL), CELL))
    with fx.workers(_worker(db_url, "R"), _worker(db_url, "N", "--no-stored-code")) as (r, n):
        ready = _first_line(r)
        assert ready.startswith("continuum worker default@") and " ready (instance default, lease TTL 10s, drain 30s; " in ready
        # what tests/faults/fault_workflows.py (the module the workers import) defines, sorted
        workflows, activities = _defined("workflow"), _defined("activity")
        assert len(workflows) >= 5 and len(activities) >= 4
        assert f"; workflows: {', '.join(workflows)};" in ready
        assert "; stored %%workflow: from_a_cell;" in ready
        assert f"; activities: {', '.join(activities)})" in ready
        refused = _first_line(n)
        assert "; stored %%workflow: refused (stored code not allowed);" in refused


def test_json_log_has_one_object_per_line_for_each_claim_and_run_end(db_url: str) -> None:
    fx.install(db_url, write_log=False)
    with fx.workers(_worker(db_url, "J", "--log-format", "json")) as (w,), fx.client(db_url) as inst:
        ready = json.loads(_first_line(w))
        assert ready["event"] == "ready" and ready["workflows"] == _defined("workflow")
        assert "fx_step" in ready["activities"] and ready["stored_code"] is True
        rid = cn.start("fx_steps", {"tag": "j", "n": 1}, instance=inst).id
        assert cn.wait(rid, 60, instance=inst) == 0
        fx.wait_until("the completion to be logged", lambda: '"run.completed"' in w.stderr(), 30)
        w.send(signal.SIGTERM)
        assert w.proc.wait(30) == 0
        stopped = [json.loads(line) for line in _rest(w).splitlines()]
        assert [o["event"] for o in stopped] == ["draining", "stopped"]
        logged = [json.loads(line) for line in w.stderr().splitlines()]  # every line is one object
        mine = [o["event"] for o in logged if o.get("run_id") == str(rid)]
        assert mine[0] == "run.claimed" and mine[-1] == "run.completed", logged
        assert all(o["workflow"] == "fx_steps" and isinstance(o["lease_token"], int) for o in logged
                   if o.get("run_id") == str(rid))


def test_quiet_logs_no_claims(db_url: str) -> None:
    fx.install(db_url, write_log=False)
    with fx.workers(_worker(db_url, "Q", "--quiet")) as (w,), fx.client(db_url) as inst:
        _first_line(w)
        rid = cn.start("fx_steps", {"tag": "q", "n": 2}, instance=inst).id
        assert cn.wait(rid, 60, instance=inst) == 1
        assert w.terminate(30) == 0
        assert w.stderr() == ""


def test_sigterm_drains_within_the_bound_and_leaves_no_lease(db_url: str) -> None:
    fx.install(db_url, write_log=False)
    with fx.workers(_worker(db_url, "D", "--drain-timeout", "20")) as (w,), fx.client(db_url) as inst:
        owner = _first_line(w).split()[2]
        rids = [cn.start("fx_slow", {"tag": f"d{i}", "seconds": 1.5}, instance=inst).id for i in range(3)]
        fx.wait_until("attempts in flight", lambda: fx.scalar(
            db_url, "SELECT count(*) FROM continuum_activity_tasks WHERE lease_owner = %s", (owner,)) == 3, 30)
        t0 = time.monotonic()
        w.send(signal.SIGTERM)
        assert w.proc.wait(30) == 0, w.stderr()
        took = time.monotonic() - t0
        out = _rest(w)
        assert took < 20, out
        assert f"continuum worker {owner} draining on SIGTERM: claiming nothing new, waiting up to 20s" in out
        assert f"continuum worker {owner} stopped: drained in" in out and "no lease left" in out
        assert _leases_of(db_url, owner) == []
        # the attempts in flight finished during the drain: their outcomes are recorded
        done = fx.query(db_url, "SELECT count(*) FROM continuum_activity_tasks WHERE state = 'completed' "
                                "AND activity = 'fx_sleep'")
        assert done == [(3,)]
        assert all(cn.get_run(r, instance=inst).lease_owner is None for r in rids)


def test_sigterm_past_the_bound_exits_1_and_names_the_leases_left(db_url: str) -> None:
    fx.install(db_url, write_log=False)
    with fx.workers(_worker(db_url, "T", "--drain-timeout", "1")) as (w,), fx.client(db_url) as inst:
        owner = _first_line(w).split()[2]
        rid = cn.start("fx_slow", {"tag": "long", "seconds": 30}, instance=inst).id
        fx.wait_until("the attempt to start", lambda: fx.scalar(
            db_url, "SELECT count(*) FROM fx_effects WHERE key = 'long'"), 30)
        t0 = time.monotonic()
        w.send(signal.SIGTERM)
        assert w.proc.wait(30) == 1, w.stderr()
        took = time.monotonic() - t0
        assert took < 1 + 8, took  # the bound, the release, the exit
        said = [line for line in w.stderr().splitlines() if "drain bound" in line]
        assert len(said) == 1, w.stderr()
        assert f"continuum worker {owner}: drain bound of 1s reached" in said[0]
        assert "left to lease expiry: task " in said[0] and f"(fx_sleep) of run {rid}" in said[0]
        # what it said is what the database holds: the task lease, not the run's (released)
        assert [k for k, _ in _leases_of(db_url, owner)] == ["task"]
        assert cn.get_run(rid, instance=inst).lease_owner is None
