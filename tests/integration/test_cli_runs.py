"""``continuum runs ...`` against real PostgreSQL: every action, its output (tables and --json),
and the exit codes scripts rely on (0 done, 1 failed/cancelled/drifted, 2 usage, 3 timeout)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.cli import main
from continuum_nb.definitions.workflow import WorkflowDef

pytestmark = pytest.mark.postgres


async def cli_gated(x: int) -> dict[str, Any]:
    by = await cn.signal("approve")
    if by == "nobody":
        raise RuntimeError("refused")
    return {"x": x, "by": by}


@pytest.fixture
def engine(db_url: str) -> Iterator[cn.Instance]:
    inst = cn.Instance(f"cli-engine-{uuid.uuid4().hex[:6]}", database_url=db_url, lease_ttl=5.0)
    inst.registry.register(WorkflowDef(cli_gated))
    inst.start_engine()
    yield inst
    inst.close()


def _run(capsys: pytest.CaptureFixture[str], db_url: str, *argv: str) -> tuple[int, str, str]:
    rc = main(["runs", *argv, "--database-url", db_url])
    out, err = capsys.readouterr()
    return rc, out, err


def _awaiting(inst: cn.Instance, x: int) -> cn.Run:
    run = cn.start("cli_gated", {"x": x}, instance=inst)
    for _ in range(2000):
        evs = cn.api.events(run.id, instance=inst)
        if evs and evs[-1].event_type == "signal_awaited":
            return run
        time.sleep(0.01)
    raise AssertionError("the run never awaited its signal")


def test_list_show_events_signal_wait(engine: cn.Instance, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = _awaiting(engine, 7)
    rc, out, _ = _run(capsys, db_url, "list", "--workflow", "cli_gated")
    assert rc == 0 and run.id in out and "suspended" in out and out.splitlines()[0].startswith("ID")
    rc, out, _ = _run(capsys, db_url, "list", "--state", "suspended", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["id"] for r in rows] == [run.id] and rows[0]["input"] == {"x": 7}
    rc, out, _ = _run(capsys, db_url, "show", run.id, "--json")
    assert rc == 0 and json.loads(out)["state"] == "suspended"
    rc, out, _ = _run(capsys, db_url, "events", run.id, "--json")
    assert rc == 0 and [json.loads(line)["event_type"] for line in out.splitlines()] == ["signal_awaited"]
    rc, out, _ = _run(capsys, db_url, "signal", run.id, "approve", '"ana"')
    assert rc == 0 and "delivered" in out
    rc, out, _ = _run(capsys, db_url, "wait", run.id, "--timeout", "30")
    assert rc == 0 and json.loads(out) == {"x": 7, "by": "ana"}


def test_wait_exit_codes(engine: cn.Instance, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    slow = _awaiting(engine, 1)
    rc, _, err = _run(capsys, db_url, "wait", slow.id, "--timeout", "0.2")
    assert rc == 3 and "still" in err
    rc, out, _ = _run(capsys, db_url, "cancel", slow.id, "--json")
    assert rc == 0 and json.loads(out) == {"run_id": slow.id, "done": "cancelled"}
    rc, out, _ = _run(capsys, db_url, "wait", slow.id, "--json")
    assert rc == 1 and json.loads(out)["state"] == "cancelled"
    failing = _awaiting(engine, 2)
    _run(capsys, db_url, "signal", failing.id, "approve", '"nobody"')
    rc, out, _ = _run(capsys, db_url, "wait", failing.id, "--timeout", "30", "--json")
    assert rc == 1 and json.loads(out)["state"] == "failed" and "refused" in json.loads(out)["message"]


@pytest.mark.parametrize(("argv", "says"), [
    (["show", "not-a-uuid"], "is not a run id"),
    (["list", "--limit", "-1"], "is not a positive integer"),
    (["list", "--state", "sleeping"], "invalid choice: 'sleeping'"),
    (["wait", str(uuid.uuid4()), "--timeout", "soon"], "is not a number of seconds"),
    (["signal", str(uuid.uuid4()), "go", "{bad"], "is not valid JSON"),
    (["signal", str(uuid.uuid4()), "go", '"a\\u0000b"'], "NUL character"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], says: str, db_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["runs", *argv, "--database-url", db_url])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith(" ")]
    assert info.value.code == 2 and len(lines) == 1 and says in lines[0], err


def test_an_unknown_run_is_one_line_and_exit_2(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rid = str(uuid.uuid4())
    rc, _, err = _run(capsys, db_url, "show", rid)
    assert rc == 2 and err.count("\n") == 1 and "does not exist" in err


def test_list_filters_pages_and_keyed_signals(engine: cn.Instance, db_url: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    acme = [cn.start("cli_gated", {"x": i}, attributes={"customer": "acme"}, instance=engine) for i in range(3)]
    cn.start("cli_gated", {"x": 9}, attributes={"customer": "other"}, instance=engine)
    seen: list[str] = []
    cursor: list[str] = []
    while True:
        rc, out, _ = _run(capsys, db_url, "list", "--attr", "customer=acme", "--limit", "2", "--json", *cursor)
        rows = [json.loads(line) for line in out.splitlines()]
        assert rc == 0
        seen += [r["id"] for r in rows if "id" in r]
        nxt = [r["next_cursor"] for r in rows if "next_cursor" in r]
        if not nxt:
            break
        cursor = ["--cursor", nxt[0]]
    assert sorted(seen) == sorted(r.id for r in acme)  # every acme run once, no other
    rc, out, _ = _run(capsys, db_url, "list", "--attr", "customer=acme", "--since", "2000-01-01")
    assert rc == 0 and "acme" in out
    run = _awaiting(engine, 5)
    rc, out, _ = _run(capsys, db_url, "signal", run.id, "approve", '"ana"', "--key", "k1", "--json")
    assert rc == 0 and json.loads(out)["outcome"] == "delivered"
    rc, out, _ = _run(capsys, db_url, "signal", run.id, "approve", '"bob"', "--key", "k1", "--json")
    assert rc == 0 and json.loads(out)["outcome"] == "duplicate"
    rc, out, _ = _run(capsys, db_url, "wait", run.id, "--timeout", "30")
    assert json.loads(out) == {"x": 5, "by": "ana"}


async def cli_brief() -> int:
    return 1


def test_prune_reports_then_deletes(engine: cn.Instance, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    brief = WorkflowDef(cli_brief, retention=timedelta(milliseconds=1))
    engine.registry.register(brief)
    ended = cn.start(brief, instance=engine)
    assert cn.wait(ended.id, timeout=30, instance=engine) == 1
    kept = _awaiting(engine, 3)  # not ended: never pruned
    while cn.api.get_run(ended.id, instance=engine).retention_until > datetime.now(timezone.utc):
        time.sleep(0.005)
    rc, out, _ = _run(capsys, db_url, "prune", "--json")
    report = json.loads(out)
    assert rc == 0 and report["executed"] is False and report["runs"] == 1
    assert cn.api.get_run(ended.id, instance=engine).state == "completed"  # a dry run deletes nothing
    rc, out, _ = _run(capsys, db_url, "prune", "--execute")
    assert rc == 0 and out.startswith("deleted: 1 runs")
    with pytest.raises(cn.RunNotFound):
        cn.api.get_run(ended.id, instance=engine)
    assert cn.api.get_run(kept.id, instance=engine).state == "suspended"


@pytest.mark.parametrize(("argv", "says"), [
    (["list", "--attr", "customer"], "is not KEY=VALUE"),
    (["list", "--since", "yesterday"], "is not a time"),
])
def test_bad_list_filters_are_one_line_and_exit_2(argv: list[str], says: str, db_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["runs", *argv, "--database-url", db_url])
    err = capsys.readouterr().err
    assert info.value.code == 2 and says in err.splitlines()[-1]


def test_a_malformed_cursor_is_one_line_and_exit_2(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, db_url, "list", "--cursor", "garbage")
    assert rc == 2 and err.count("\n") == 1 and "cursor" in err


def test_a_limit_beyond_the_api_s_is_one_line_and_exit_2(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, db_url, "list", "--limit", "100001")
    assert rc == 2 and err.count("\n") == 1 and "limit must be an int between 1 and 100000" in err
