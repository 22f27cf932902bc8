"""``cn.health()`` / ``continuum health`` and ``continuum doctor`` against real databases: a clean
database passes (exit 0), and each kind of problem is reported on its own line with exit 1."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.cli import main
from continuum_nb.definitions.workflow import source_hash
from continuum_nb.store.partitions import add_months, format_month, month_of, partition_name

pytestmark = pytest.mark.postgres

GHOST = "default@gone-host:4242:dead00"


def _sql(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    assert out.err == "", out.err
    return rc, out.out


def _overdue_run(url: str, workflow: str = "nobody_runs_this") -> uuid.UUID:
    rid = uuid.uuid4()
    _sql(url, "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, next_wakeup_at) "
              "VALUES (%s, %s, 'v1', 'suspended', '{}', now() - interval '1 hour', now() - interval '10 minutes')",
         (rid, workflow))
    return rid


def _task(url: str, state: str, *, expired: bool) -> uuid.UUID:
    tid = uuid.uuid4()
    if state == "leased":
        _sql(url, "INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, state, activity, lease_owner, "
                  "lease_token, lease_expires_at) VALUES (%s, %s, 1, '{}', 'leased', 'charge', %s, 1, "
                  "now() + (CASE WHEN %s THEN interval '-5 minutes' ELSE interval '30 seconds' END))",
             (tid, uuid.uuid4(), GHOST, expired))
    else:
        _sql(url, "INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, state, activity, available_at) "
                  "VALUES (%s, %s, 1, '{}', 'available', 'ship', now() - interval '5 minutes')", (tid, uuid.uuid4()))
    return tid


# --- health ------------------------------------------------------------------------------------------

def test_health_of_a_quiet_database_is_ok(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _cli(capsys, "health", "--database-url", db_url)
    assert rc == 0, out
    assert ": OK" in out.splitlines()[0] and "overdue runs: 0" in out and "problems" not in out
    rc, out = _cli(capsys, "health", "--json", "--database-url", db_url)
    data = json.loads(out)
    assert rc == 0 and data["ok"] is True and data["problems"] == [] and data["engines"] == []


def test_health_reports_an_overdue_run_and_the_workflow_nobody_runs(db_url: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rid = _overdue_run(db_url)
    # due, but a live lease holds it: not overdue
    _sql(db_url, "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, next_wakeup_at, lease_owner, "
                 "lease_token, lease_expires_at) VALUES (%s, 'held', 'v1', 'suspended', '{}', "
                 "now() - interval '10 minutes', 'live@h:1:aaaaaa', 5, now() + interval '20 seconds')", (uuid.uuid4(),))
    rc, out = _cli(capsys, "health", "--database-url", db_url)
    assert rc == 1, out
    assert ": NOT OK" in out and f"{rid}  nobody_runs_this  suspended  due 600s ago" in out
    assert "overdue runs: 1" in out
    assert "workflow 'nobody_runs_this': 1 run(s) due since 600s ago that no live engine claimed" in out
    assert "live  live@h:1:aaaaaa" in out  # the holder of the other run, seen through its lease
    rc, out = _cli(capsys, "health", "--json", "--slack", "900", "--database-url", db_url)
    assert rc == 0 and json.loads(out)["ok"] is True  # within the slack


@pytest.mark.parametrize("state", ["leased", "available"])
def test_health_reports_a_stuck_task(db_url: str, state: str, capsys: pytest.CaptureFixture[str]) -> None:
    tid = _task(db_url, state, expired=True)
    rc, out = _cli(capsys, "health", "--json", "--database-url", db_url)
    data = json.loads(out)
    assert rc == 1 and data["ok"] is False
    assert [t["id"] for t in data["stuck_tasks"]] == [str(tid)]
    if state == "leased":
        assert f"lease of {GHOST} expired 300s ago" in data["problems"][0]
        # its owner is a stale engine: last renewal = expiry - TTL
        ghost = next(e for e in data["engines"] if e["owner"] == GHOST)
        assert ghost["stale"] is True and ghost["live"] is False and 325 <= ghost["lag_s"] < 340
        assert any(p.startswith(f"engine {GHOST}: last renewal") for p in data["problems"])
    else:
        assert "available and due since 300s ago: no live engine defines activity 'ship'" in data["problems"][0]


def test_a_task_leased_by_a_live_engine_is_not_stuck(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _task(db_url, "leased", expired=False)
    rc, out = _cli(capsys, "health", "--json", "--lease-ttl", "40", "--database-url", db_url)
    data = json.loads(out)
    assert rc == 0, data["problems"]
    (ghost,) = data["engines"]
    assert ghost["live"] is True and 9 <= ghost["lag_s"] < 15  # 40 s TTL, 30 s left


@cn.workflow(name="health_waits")
async def health_waits() -> str:
    got = await cn.signal("go", timeout=cn.minutes(10))  # a wake within release_after: the run stays held
    return str(got)


def test_cn_health_sees_a_live_engine_of_this_process(db_url: str) -> None:
    inst = cn.Instance(f"health-{uuid.uuid4().hex[:6]}", database_url=db_url, release_after=3600, lease_ttl=5)
    try:
        run = cn.start(health_waits, {}, instance=inst)
        report = cn.health(inst)
        assert report.ok, str(report)
        (engine,) = report.engines
        assert engine.owner == inst.engine.owner and engine.live and engine.runs == 1 and engine.lag_s < 5  # type: ignore[union-attr]
        assert any(c.application_name == f"continuum_nb:{inst.name}" for c in report.connections)
        text = str(report)
        assert f"live  {engine.owner}" in text and f"continuum_nb:{inst.name}:" in text
        cn.signal(run.id, "go", 1, instance=inst)
        assert cn.wait(run.id, 30, instance=inst) == "1"
    finally:
        inst.close()


# --- doctor ------------------------------------------------------------------------------------------

def _server_month(url: str) -> date:
    return month_of(_sql(url, "SELECT now()")[0][0])


def test_doctor_on_a_clean_database_exits_0(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[-1] == "no findings" and not any(line.startswith("FINDING") for line in lines)
    for topic in ("server: PostgreSQL", "migrations: none pending", "partitions:", "connections:", "clock:",
                  "engine clocks: no timer started", "stored versions: 0 %%workflow version(s)"):
        assert any(topic in line for line in lines), (topic, out)


def test_doctor_finds_a_missing_partition_for_next_month(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    nxt = add_months(_server_month(db_url), 1)
    _sql(db_url, f'DROP TABLE "{partition_name(nxt)}"')
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 1
    (line,) = [ln for ln in out.splitlines() if ln.startswith("FINDING")]
    assert line.startswith("FINDING  partitions: next month") and line.endswith(
        f"fix: continuum partitions create {format_month(nxt)}")
    assert out.splitlines()[-1] == "1 finding(s)"


def test_doctor_only_warns_about_the_month_after_next(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    later = add_months(_server_month(db_url), 2)
    _sql(db_url, f'DROP TABLE "{partition_name(later)}"')
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 0, out
    assert f"warning  partitions: the month after next ({format_month(later)}) has no partition" in out


def test_doctor_finds_pending_migrations(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    (last,) = _sql(db_url, "DELETE FROM continuum_schema_migrations WHERE version = "
                           "(SELECT max(version) FROM continuum_schema_migrations) RETURNING version")
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 1
    assert f"FINDING  migrations: 1 pending ({last[0]}_" in out and "fix: continuum migrate" in out


def test_doctor_finds_a_tampered_and_an_unparsable_stored_version(db_url: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    good = "import continuum_nb as cn\n\n@cn.workflow(name='tidy')\nasync def tidy():\n    return 1\n"
    bad = "async def broken(:\n"
    for name, source in (("tidy", good), ("tampered", good), ("broken", bad)):
        _sql(db_url, "INSERT INTO continuum_workflow_versions (name, version_hash, source, origin) "
                     "VALUES (%s, %s, %s, 'cell')", (name, source_hash(source), source))
    _sql(db_url, "UPDATE continuum_workflow_versions SET source = source || 'import os\n' WHERE name = 'tampered'")
    _sql(db_url, "INSERT INTO continuum_runs (id, workflow, version_hash, state, input) "
                 "VALUES (%s, 'tampered', %s, 'suspended', '{}')", (uuid.uuid4(), source_hash(good)))
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 1
    found = [ln for ln in out.splitlines() if ln.startswith("FINDING")]
    assert len(found) == 2, out
    assert any("'tampered': its source no longer hashes to its version_hash (the row was altered)" in ln
               for ln in found)
    assert any("'broken': its source does not parse (line 1" in ln for ln in found)
    assert any("1 unfinished run(s) on it" in ln for ln in found)
    assert "tidy" not in "".join(found)


def test_doctor_finds_an_engine_clock_ahead_of_the_server(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A timer started by an engine whose clock ran 120 s ahead: fire_at - duration_s is 120 s
    # later than the server's time of the commit.
    _sql(db_url, "INSERT INTO continuum_events (run_id, seq, event_type, payload) SELECT %s, 1, 'timer_started', "
                 "jsonb_build_object('ordinal', 0, 'duration_s', 30.0, 'timer_id', gen_random_uuid(), "
                 "'fire_at', to_char((now() + interval '150 seconds') AT TIME ZONE 'UTC', "
                 "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'))", (uuid.uuid4(),))
    rc, out = _cli(capsys, "doctor", "--database-url", db_url)
    assert rc == 1
    (line,) = [ln for ln in out.splitlines() if ln.startswith("FINDING")]
    assert line.startswith("FINDING  engine clocks: 1 timer(s) started in the last hour") and "120.0" in line
    rc, out = _cli(capsys, "doctor", "--max-skew", "200", "--database-url", db_url)
    assert rc == 0, out


def test_doctor_on_an_empty_database_names_the_migrations(empty_db_url: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _cli(capsys, "doctor", "--database-url", empty_db_url)
    assert rc == 1
    assert "FINDING  migrations:" in out and "info     tables: no continuum tables yet" in out
