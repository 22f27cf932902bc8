"""``continuum runs ...`` against real PostgreSQL: every action, its output (tables and --json),
and the exit codes scripts rely on (0 done, 1 failed/cancelled/drifted, 2 usage, 3 timeout)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
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
    (["list", "--limit", "-1"], "is not a count between 1 and 100000"),
    (["list", "--state", "sleeping"], "invalid choice: 'sleeping'"),
    (["wait", str(uuid.uuid4()), "--timeout", "soon"], "is not a number of seconds"),
    (["signal", str(uuid.uuid4()), "go", "{bad"], "is not a JSON value"),
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
