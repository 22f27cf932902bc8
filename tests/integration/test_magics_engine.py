"""The magics against a real engine and real PostgreSQL (one fresh database per test)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

import continuum_nb as cn
from continuum_nb import api
from continuum_nb import partitions as parts
from continuum_nb.notebook.magics import MagicError

pytestmark = pytest.mark.postgres

V1 = """import continuum_nb as cn

@cn.activity
def charge(order_id: str, cents: int) -> dict:
    return {"order_id": order_id, "charged": cents}

async def order(order_id: str, cents: int) -> dict:
    receipt = await charge(order_id, cents)
    decision = await cn.signal("approve", timeout=cn.minutes(5))
    return {"receipt": receipt, "decision": decision}
"""
# Same commands in the same order: runs on V1 replay cleanly on it.
V2 = V1.replace('"decision": decision}', '"decision": decision, "v": 2}')
# A different first command: runs on V1 would drift on it.
V3 = V1.replace(
    "receipt = await charge(order_id, cents)", "await cn.timer(cn.seconds(1))\n    receipt = {}"
)


def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def shell() -> Iterator[Any]:
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "continuum_nb")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "continuum_nb")
        ip.config.pop("ContinuumMagics", None)


@pytest.fixture
def inst(db_url: str, shell: Any) -> Iterator[cn.Instance]:
    instance = cn.Instance(name="m" + uuid.uuid4().hex[:8], database_url=db_url, poll_interval=0.2)
    try:
        yield instance
    finally:
        instance.close()


def run(ip: Any, source: str) -> tuple[Any, Any]:
    with capture_output() as out:
        result = ip.run_cell(source)
    return result, out


def lines(out: Any) -> list[str]:
    return [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]


def texts(out: Any) -> list[str]:
    return [o.data.get("text/plain", "") for o in out.outputs]


def widget_of(out: Any) -> Any:
    from ipywidgets.widgets.widget import _instances

    for o in out.outputs:
        view = o.data.get("application/vnd.jupyter.widget-view+json")
        if view:
            return _instances[view["model_id"]]
    return None


def suspended_on_signal(inst: cn.Instance, run_id: str) -> bool:
    info = api.get_run(run_id, instance=inst)
    return info.state == "suspended" and any(
        e.event_type == "signal_awaited" for e in api.events(run_id, instance=inst)
    )


def test_workflow_cell_is_stored_and_runs_through_the_magics(
    shell: Any, inst: cn.Instance, db_url: str
) -> None:
    result, out = run(shell, f"%%workflow --instance {inst.name}\n{V1}")
    assert result.success, lines(out)
    wf = shell.user_ns["order"]
    summary = texts(out)[0]
    assert (
        summary.splitlines()[0]
        == f"workflow order — version {wf.version_hash[:12]}, instance {inst.name}"
    )
    assert "activities: charge" in summary and "determinism scan: no findings" in summary
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT source, origin FROM continuum_workflow_versions WHERE name = 'order' AND version_hash = %s",
            (wf.version_hash,),
        ).fetchone()
    assert row == (V1, "cell")

    result, out = run(
        shell,
        f'r = %continuum start order \'{{"order_id": "A1", "cents": 500}}\' --instance {inst.name}',
    )
    assert result.success, lines(out)
    run_id = shell.user_ns["r"].id
    until(lambda: suspended_on_signal(inst, run_id), "the run to await the signal")
    result, out = run(
        shell, f'%continuum signal $r.id approve \'{{"by": "ana"}}\' --instance {inst.name}'
    )
    assert result.success and lines(out) == [f"sent signal 'approve' to run {run_id}"]
    result, out = run(shell, f"%continuum wait $r.id --timeout 20 --instance {inst.name}")
    assert result.result == {
        "receipt": {"order_id": "A1", "charged": 500},
        "decision": {"by": "ana"},
    }

    result, _ = run(
        shell, f"%continuum runs --state completed --workflow order --instance {inst.name}"
    )
    frame = result.result
    assert list(frame.index) == [run_id] and frame.loc[run_id, "version"] == wf.version_hash[:12]
    result, _ = run(shell, f"%continuum events $r.id --instance {inst.name}")
    assert list(result.result["event_type"]) == [
        "activity_scheduled", "activity_completed", "signal_awaited", "signal_received"
    ]  # fmt: skip
    result, _ = run(shell, f"%continuum show $r.id --instance {inst.name}")
    assert "state             completed" in repr(result.result)

    # A finished run refuses a signal: one line, no traceback.
    result, out = run(shell, f"%continuum signal {run_id} approve --instance {inst.name}")
    assert isinstance(result.error_in_exec, MagicError)
    assert len(lines(out)) == 1 and lines(out)[0].startswith("%continuum signal: ")


def test_summary_lists_outdated_runs_and_the_button_upgrades(shell: Any, inst: cn.Instance) -> None:
    assert run(shell, f"%%workflow --instance {inst.name}\n{V1}")[0].success
    v1 = shell.user_ns["order"].version_hash
    run_id = str(api.start("order", {"order_id": "B", "cents": 1}, instance=inst).id)
    until(lambda: suspended_on_signal(inst, run_id), "the run to await the signal")

    result, out = run(shell, f"%%workflow --instance {inst.name}\n{V3}")  # incompatible
    assert result.success, lines(out)
    assert f"{run_id} [suspended, version {v1[:12]}]: would drift" in texts(out)[0]
    assert widget_of(out) is None  # no button for a run that would drift

    result, out = run(shell, f"%%workflow --instance {inst.name}\n{V2}")  # compatible
    v2 = shell.user_ns["order"].version_hash
    assert f"{run_id} [suspended, version {v1[:12]}]: replays cleanly: can upgrade" in texts(out)[0]
    box = widget_of(out)
    assert box is not None
    _, button, status = box.children[0].children
    button.click()
    assert status.value == "now on the new version", status.value
    assert api.get_run(run_id, instance=inst).version_hash == v2
    api.signal(run_id, "approve", "ok", instance=inst)
    assert api.wait(run_id, timeout=20, instance=inst)["v"] == 2

    # Running the same cell again is not a new version.
    result, out = run(shell, f"%%workflow --instance {inst.name}\n{V2}")
    assert "(unchanged)" in texts(out)[0].splitlines()[0]


def test_cell_that_is_not_self_contained_is_told(shell: Any, inst: cn.Instance) -> None:
    run(shell, "def discount(c):\n    return c // 2\n")
    cell = V1.replace(
        "receipt = await charge(order_id, cents)",
        "receipt = await charge(order_id, discount(cents))",
    )
    result, out = run(shell, f"%%workflow --instance {inst.name}\n{cell}")
    assert result.success
    assert (
        "cell uses `discount`, defined elsewhere in the notebook; import or define it in this cell"
        in texts(out)[0]
    )


def test_upgrade_and_resume_subcommands(shell: Any, inst: cn.Instance) -> None:
    assert run(shell, f"%%workflow --instance {inst.name}\n{V1}")[0].success
    rid = str(api.start("order", {"order_id": "C", "cents": 2}, instance=inst).id)
    until(lambda: suspended_on_signal(inst, rid), "the run to await the signal")
    assert run(shell, f"%%workflow --instance {inst.name}\n{V2}")[0].success
    result, out = run(shell, f"%continuum upgrade {rid} --check --instance {inst.name}")
    assert result.result is True and "replays cleanly" in out.stdout
    result, out = run(shell, f"%continuum upgrade {rid} --instance {inst.name}")
    assert (
        result.success
        and f"upgraded to version {shell.user_ns['order'].version_hash[:12]}" in out.stdout
    )
    result, out = run(shell, f"%continuum resume {rid} --instance {inst.name}")  # not drifted
    assert isinstance(result.error_in_exec, MagicError) and len(lines(out)) == 1
    result, out = run(shell, f"%continuum cancel {rid} --instance {inst.name}")
    assert result.success and until(
        lambda: api.get_run(rid, instance=inst).state == "cancelled", "cancel"
    )


def test_unknown_instance_and_run_are_one_line(shell: Any, inst: cn.Instance) -> None:
    result, out = run(shell, "%continuum runs --instance nowhere")
    assert isinstance(result.error_in_exec, MagicError)
    assert lines(out) == [lines(out)[0]] and "no instance named 'nowhere'" in lines(out)[0]
    result, out = run(shell, f"%continuum show {uuid.uuid4()} --instance {inst.name}")
    assert isinstance(result.error_in_exec, MagicError) and len(lines(out)) == 1
    result, out = run(shell, f"%continuum start nonesuch --instance {inst.name}")
    assert isinstance(result.error_in_exec, (MagicError, UsageError)) and len(lines(out)) == 1


def test_sql_analytics_and_partitions(shell: Any, inst: cn.Instance, db_url: str) -> None:
    assert run(shell, f"%%workflow --instance {inst.name}\n{V1}")[0].success
    rid = str(api.start("order", {"order_id": "D", "cents": 3}, instance=inst).id)
    until(lambda: suspended_on_signal(inst, rid), "the run to await the signal")
    result, out = run(shell, f"%%continuum_sql --instance {inst.name} --out counts\n"
                             "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert result.success, lines(out)
    assert dict(zip(result.result["event_type"], result.result["n"], strict=True)) == {
        "activity_completed": 1, "activity_scheduled": 1, "signal_awaited": 1
    }  # fmt: skip
    assert shell.user_ns["counts"] is result.result
    result, out = run(shell, f"%%continuum_sql --instance {inst.name}\nSELECT nope FROM runs")
    assert isinstance(result.error_in_exec, MagicError) and len(lines(out)) == 1
    result, out = run(shell, f"%continuum analytics activity_latency --instance {inst.name}")
    assert result.success and list(result.result["activity"]) == ["charge"]
    result, _ = run(shell, f"%continuum partitions list --instance {inst.name}")
    assert len(result.result) >= 1 and all(
        n.startswith("continuum_events_y") for n in result.result.index
    )
    result, out = run(shell, f"%continuum partitions create 2031-07 --instance {inst.name}")
    assert result.success and "continuum_events_y2031_m07 for 2031-07: created" in out.stdout
    result, out = run(shell, f"%continuum partitions create 2031-07 --instance {inst.name}")
    assert "already exists" in out.stdout
    result, out = run(shell, f"%continuum partitions rollup --instance {inst.name}")  # no month is over yet
    assert result.success and lines(out) == [parts.rollup_summary([])]
    result, out = run(shell, f"%continuum partitions drop-old --instance {inst.name}")
    assert result.success and result.result is None
    assert lines(out) == [
        "no run has retention_until set: nothing is dropped (retention is opt-in per run)"
    ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE continuum_runs SET retention_until = now() - interval '1 day' WHERE id = %s",
            (rid,),
        )
    assert run(shell, f"%continuum partitions create 2020-01 --instance {inst.name}")[0].success
    result, out = run(shell, f"%continuum partitions drop-old --instance {inst.name}")
    assert (
        lines(out)[0] == "would drop: continuum_events_y2020_m01 (dry run; add --execute to drop)"
    )
    assert bool(result.result.loc["continuum_events_y2020_m01", "droppable"])
    result, out = run(shell, f"%continuum partitions drop-old --execute --instance {inst.name}")
    assert lines(out)[0] == "dropped: continuum_events_y2020_m01"
    result, _ = run(shell, f"%continuum partitions list --instance {inst.name}")
    assert "continuum_events_y2020_m01" not in result.result.index


def test_unload_leaves_no_thread_behind(db_url: str) -> None:
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    before = {t.ident for t in threading.enumerate()}
    ip.run_line_magic("load_ext", "continuum_nb")
    name = "u" + uuid.uuid4().hex[:8]
    run(
        ip,
        f"import continuum_nb as cn\n_u = cn.Instance(name={name!r}, database_url={db_url!r}, poll_interval=0.2)",
    )
    assert run(ip, f"%%workflow --instance {name}\n{V1}")[0].success
    rid = str(api.start("order", {"order_id": "E", "cents": 4}, instance=name).id)
    until(lambda: api.get_run(rid, instance=name).state == "suspended", "the run to suspend")
    assert cn.instance(name).engine_running
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert started, "the engine should have started threads"
    ip.run_line_magic("unload_ext", "continuum_nb")

    def new_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.ident not in before]

    until(lambda: not new_threads(), "every thread started since %load_ext to end", timeout=15)
    with pytest.raises(cn.InstanceNotRegistered):
        cn.instance(name)


def test_start_wait_observe_and_plot(shell: Any, inst: cn.Instance) -> None:
    quick = "import continuum_nb as cn\n\n@cn.activity\ndef double(x: int) -> int:\n    return 2 * x\n\nasync def twice(x: int) -> int:\n    return await double(x)\n"
    assert run(shell, f"%%workflow --instance {inst.name}\n{quick}")[0].success
    result, out = run(
        shell, f"%continuum start twice '{{\"x\": 21}}' --wait --timeout 20 --instance {inst.name}"
    )
    assert result.result == 42, lines(out)
    result, out = run(shell, f"%continuum observe --read-only --instance {inst.name}")
    assert result.success, lines(out)
    assert result.result is not None and type(result.result).__module__.startswith(
        "continuum_nb.observer"
    )
    import matplotlib

    matplotlib.use("Agg")
    result, out = run(shell, f"%continuum analytics run_durations --plot --instance {inst.name}")
    assert result.success, lines(out)
    assert list(result.result["workflow"]) == ["twice"]


def test_without_summary_free_names_are_warnings(shell: Any, inst: cn.Instance) -> None:
    run(shell, "%config ContinuumMagics.show_summary = False")
    run(shell, "def discount(c):\n    return c // 2\n")
    cell = V1.replace("charge(order_id, cents)", "charge(order_id, discount(cents))")
    with pytest.warns(UserWarning, match="cell uses `discount`, defined elsewhere in the notebook"):
        result, out = run(shell, f"%%workflow --instance {inst.name}\n{cell}")
    assert result.success and out.outputs == []


def test_rerunning_a_cell_with_a_key_never_starts_twice(shell: Any, inst: cn.Instance) -> None:
    result, out = run(shell, f"%%workflow --instance {inst.name}\n{V1}")
    assert result.success, lines(out)
    start = (f"r = %continuum start order '{{\"order_id\": \"K1\", \"cents\": 5}}' --key day-2026-12-06 "
             f"--attr customer=acme --instance {inst.name}")
    result, out = run(shell, start)
    assert result.success and lines(out)[0].startswith("started run"), lines(out)
    first = shell.user_ns["r"].id
    result, out = run(shell, start)  # the same cell, run again
    assert result.success and "already started with key 'day-2026-12-06'" in lines(out)[0], lines(out)
    assert shell.user_ns["r"].id == first
    result, out = run(shell, f"t = %continuum runs --attr customer=acme --instance {inst.name}")
    assert result.success, lines(out)
    assert [r.id for r in api.list_runs(attributes={"customer": "acme"}, instance=inst).runs] == [first]


def test_start_many_from_a_file(shell: Any, inst: cn.Instance, tmp_path: Any) -> None:
    quick = "import continuum_nb as cn\n\n@cn.activity\ndef double(x: int) -> int:\n    return 2 * x\n\nasync def twice(x: int) -> int:\n    return await double(x)\n"
    assert run(shell, f"%%workflow --instance {inst.name}\n{quick}")[0].success
    lines_file = tmp_path / "days.jsonl"
    lines_file.write_text("".join(f'{{"x": {i}}}\n' for i in range(12)) + "\n")
    result, out = run(shell, f"rs = %continuum start twice --many {lines_file} --attr batch=b7 --instance {inst.name}")
    assert result.success and lines(out) == [f"started 12 runs of twice from {lines_file}"], lines(out)
    assert [r.wait(30) for r in shell.user_ns["rs"]] == [2 * i for i in range(12)]
    array_file = tmp_path / "more.json"
    array_file.write_text('[{"x": 100}, {"x": 101}]')
    result, out = run(shell, f"rs = %continuum start twice --many {array_file} --instance {inst.name}")
    assert [r.wait(30) for r in shell.user_ns["rs"]] == [200, 202]
    # bad files and combinations: one line, nothing started
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n[2]\n')
    before = len(cn.runs(workflow="twice", limit=100, instance=inst))
    for line, expected in [
        (f"twice --many {bad}", "line 2 is a list, not a JSON object"),
        (f"twice --many {tmp_path / 'missing.json'}", "cannot read the inputs file"),
        (f"twice '{{\"x\": 1}}' --many {array_file}", "an input cannot be combined with --many"),
        (f"twice --many {array_file} --wait", "--wait cannot be combined with --many"),
    ]:
        with pytest.raises(MagicError) as info:
            shell.run_line_magic("continuum", f"start {line} --instance {inst.name}")
        assert expected in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert len(cn.runs(workflow="twice", limit=100, instance=inst)) == before


def test_replay_and_fork_subcommands(shell: Any, inst: cn.Instance) -> None:
    assert run(shell, f"%%workflow --instance {inst.name}\n{V1}")[0].success
    rid = str(api.start("order", {"order_id": "F", "cents": 4}, instance=inst).id)
    until(lambda: suspended_on_signal(inst, rid), "the run to await the signal")
    api.signal(rid, "approve", "yes", instance=inst)
    api.wait(rid, timeout=30, instance=inst)
    result, out = run(shell, f"%continuum replay {rid} --upto 2 --instance {inst.name}")
    state = result.result
    assert result.success and state.upto == 2 and state.outcome == "continued"
    assert [c["target"] for c in state.commands] == ["charge"]
    assert state.locals["receipt"] == {"order_id": "F", "charged": 4}
    assert state.next_command["event_type"] == "signal_awaited"
    assert len(api.events(rid, instance=inst)) == 4  # nothing written
    result, out = run(shell, f"%continuum fork {rid} --at 2 --instance {inst.name}")
    forked = result.result
    assert result.success and f"forked run {forked.id} from {rid} at event 2" in out.stdout
    until(lambda: suspended_on_signal(inst, forked.id), "the fork to await the signal")
    api.signal(forked.id, "approve", "again", instance=inst)
    assert api.wait(forked.id, timeout=30, instance=inst)["decision"] == "again"
    for line in (f"%continuum replay {rid} --upto -1", f"%continuum fork {rid} --at 99",
                 f"%continuum replay {rid} --upto 99"):
        result, out = run(shell, f"{line} --instance {inst.name}")
        assert isinstance(result.error_in_exec, (MagicError, UsageError)) and len(lines(out)) == 1, lines(out)
