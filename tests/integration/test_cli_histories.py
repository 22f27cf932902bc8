"""``continuum runs export|replay|fork`` against real PostgreSQL: the history as JSON, a replay
that never writes (the connection is read-only), drift exits 1, a fork a worker completes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import continuum_nb as cn
from continuum_nb.cli import main
from continuum_nb.forks import fork_links
from continuum_nb.store.database import read_only

pytestmark = pytest.mark.postgres


@cn.activity(name="clihist.greet")
def greet(name: str) -> str:
    return f"hello {name}"


@cn.workflow(name="clihist_flow")
async def clihist_flow(name: str) -> str:
    first = await greet(name)
    await cn.timer(cn.seconds(0))
    return first + "!"


DRIFTED = '''
import continuum_nb as cn

@cn.activity(name="clihist.wave")
def wave(name):
    return "wave " + name

@cn.workflow(name="clihist_flow")
async def clihist_flow(name: str) -> str:
    return await wave(name)
'''


@pytest.fixture
def engine(db_url: str) -> Iterator[cn.Instance]:
    inst = cn.Instance(f"clih-{uuid.uuid4().hex[:6]}", database_url=db_url, lease_ttl=5.0)
    inst.start_engine()
    yield inst
    inst.close()


def _run(capsys: pytest.CaptureFixture[str], db_url: str, *argv: str) -> tuple[int, str, str]:
    rc = main(["runs", *argv, "--database-url", db_url])
    out, err = capsys.readouterr()
    return rc, out, err


def _journal_size(inst: cn.Instance, run_id: str) -> int:
    return len(cn.events(run_id, instance=inst))


def test_export_writes_the_history_that_replays(engine: cn.Instance, db_url: str,
                                                capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = cn.start(clihist_flow, {"name": "ana"}, instance=engine)
    assert cn.wait(run.id, timeout=30, instance=engine) == "hello ana!"
    rc, out, _ = _run(capsys, db_url, "export", run.id)
    history = json.loads(out)
    assert rc == 0 and history["run_id"] == run.id and history["state"] == "completed"
    assert [e["event_type"] for e in history["journal"]] == [
        "activity_scheduled", "activity_completed", "timer_started", "timer_fired"]
    path = tmp_path / "run.json"
    rc, out, _ = _run(capsys, db_url, "export", run.id, "--output", str(path))
    assert rc == 0 and str(path) in out
    assert cn.testing.replay(clihist_flow, path) == "completed"


def test_replay_from_the_database_reports_the_outcome_or_drift_and_writes_nothing(
        engine: cn.Instance, db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = cn.start(clihist_flow, {"name": "rui"}, instance=engine)
    cn.wait(run.id, timeout=30, instance=engine)
    before = (cn.get_run(run.id, instance=engine), _journal_size(engine, run.id))
    rc, out, _ = _run(capsys, db_url, "replay", run.id)
    assert rc == 0 and "replays on this code: completed" in out
    module = tmp_path / "drifted_flow.py"
    module.write_text(DRIFTED)
    rc, out, err = _run(capsys, db_url, "replay", run.id, "--against", str(module), "--json")
    report = json.loads(out)
    assert rc == 1 and report["outcome"] == "drift" and report["seq"] == 1
    assert report["expected"]["target"] == "clihist.greet" and report["actual"]["target"] == "clihist.wave"
    assert (cn.get_run(run.id, instance=engine), _journal_size(engine, run.id)) == before


def test_the_replay_connection_refuses_writes(engine: cn.Instance, db_url: str) -> None:
    run = cn.start(clihist_flow, {"name": "eva"}, instance=engine)
    cn.wait(run.id, timeout=30, instance=engine)
    ro = cn.Instance(f"ro-{uuid.uuid4().hex[:6]}", database_url=read_only(db_url), run_engine=False)
    try:
        assert cn.get_run(run.id, instance=ro).state == "completed"  # reads work
        with pytest.raises(Exception, match="read-only transaction"):
            ro.store.set_attributes(uuid.UUID(run.id), {"touched": True})
    finally:
        ro.close()
    assert "touched" not in (cn.get_run(run.id, instance=engine).attributes or {})


def test_fork_from_the_command_line(engine: cn.Instance, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = cn.start(clihist_flow, {"name": "ivo"}, instance=engine)
    cn.wait(run.id, timeout=30, instance=engine)
    # (an earlier test imported another version with --against: ask for the run's own)
    rc, out, _ = _run(capsys, db_url, "fork", run.id, "--at", "2", "--version", "original", "--json")
    made = json.loads(out)
    assert rc == 0 and made["forked_from_run_id"] == run.id and made["forked_at_seq"] == 2
    assert cn.wait(made["run_id"], timeout=30, instance=engine) == "hello ivo!"
    assert fork_links(made["run_id"], instance=engine).forked_from_run_id == uuid.UUID(run.id)
    rc, out, _ = _run(capsys, db_url, "show", made["run_id"], "--json")
    shown = json.loads(out)
    assert rc == 0 and (shown["forked_from_run_id"], shown["forked_at_seq"]) == (run.id, 2)
    rc, out, _ = _run(capsys, db_url, "show", run.id)
    assert rc == 0 and any(line.startswith("forks") and made["run_id"] in line for line in out.splitlines())
    rc, _, err = _run(capsys, db_url, "fork", run.id, "--at", "99")
    assert rc == 2 and "past the end" in err and len(err.strip().splitlines()) == 1


def test_bad_input_is_one_line(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = str(uuid.uuid4())
    for argv in (("export", unknown), ("replay", unknown),
                 ("replay", unknown, "--against", "no_such_module_here")):
        rc, _, err = _run(capsys, db_url, *argv)
        assert rc == 2 and len(err.strip().splitlines()) == 1, (argv, err)

