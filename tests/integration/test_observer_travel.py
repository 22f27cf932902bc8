"""The observer's actions on an event, against real PostgreSQL and a real engine: "state at this
event" shows what ``cn.replay`` answers, "fork from here" starts ``cn.fork`` and selects the new
run, a read-only observer cannot fork, and a failure is one line in the action message. The
buttons are clicked through the widget objects (no browser)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.definitions.workflow import WorkflowDef
from continuum_nb.forks import fork_links
from continuum_nb.observer.travel import command_line, local_line, state_summary
from tests.observer_data import insert_run

pytestmark = pytest.mark.postgres


@cn.activity(name="obs_travel.add")
def add(x: int, y: int) -> int:
    return x + y


async def obs_travel_sums(start: int) -> int:
    first = await add(start, 1)
    second = await add(first, 10)
    third = await add(second, 100)
    return third


# the journal: 1 scheduled, 2 completed (first), 3 scheduled, 4 completed (second), 5 scheduled, 6 completed


@pytest.fixture
def inst(db_url: str) -> Iterator[cn.Instance]:
    pytest.importorskip("ipywidgets")
    instance = cn.Instance(name=f"obs-travel-{uuid.uuid4().hex[:8]}", database_url=db_url, lease_ttl=5.0,
                           poll_interval=0.1)
    instance.registry.register(WorkflowDef(obs_travel_sums, name="obs_travel_sums"))
    try:
        yield instance
    finally:
        instance.close()


def _finished_run(inst: cn.Instance) -> cn.Run:
    run = cn.start("obs_travel_sums", {"start": 1}, instance=inst)
    assert cn.wait(run.id, timeout=60, instance=inst) == 112
    return run


def _observer(inst: cn.Instance, **kw: Any) -> Any:
    from continuum_nb.observer.app import build_observer

    return build_observer(instance=inst, live=False, **kw)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _one_line_error(app: Any) -> str:
    value = app.action_message.value
    assert "data-kind='error'" in value, value
    text = _text(value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_state_at_this_event_shows_what_cn_replay_answers(inst: cn.Instance) -> None:
    run = _finished_run(inst)
    app = _observer(inst)
    try:
        app.table.selected_id = run.id
        bar = app.event_actions
        assert bar.seq.value == "6"                      # a run opens at its last event
        assert not bar.buttons["state"].disabled and not bar.buttons["fork"].disabled
        assert bar.state_view.value == ""                # nothing replayed until asked
        # a click on a timeline bar points at its last event (an activity's completion)
        bar.seq.value = "0"
        first = next(b for b in app.timeline.view["bars"] if b["kind"] == "activity")
        app.timeline.selected = {"seqs": first["seqs"], "label": first["label"], "count": first["count"]}
        assert bar.seq.value == str(max(int(s) for s in first["seqs"])) and bar.seq.value != "0"

        for upto in (2, 4, 6):
            bar.seq.value = str(upto)
            bar.buttons["state"].click()
            expected = cn.replay(run.id, upto=upto, instance=inst)
            shown = bar.state_view.value
            assert f'data-upto="{upto}"' in shown and f'data-outcome="{expected.outcome}"' in shown
            assert state_summary(expected) in _text(shown)
            lines = re.findall(r'<div class="cn-state-line" data-seq="(\d+)">([^<]*)</div>', shown)
            assert [int(s) for s, _ in lines] == [c["seq"] for c in expected.commands]
            assert [html.unescape(t) for _, t in lines] == [command_line(c) for c in expected.commands]
            locals_shown = re.findall(r'cn-state-local" data-name="[^"]*">([^<]*)</div>', shown)
            assert [html.unescape(t) for t in locals_shown] == [local_line(k, v) for k, v in expected.locals.items()]
            if expected.next_command is not None:
                assert f"next command: #{expected.next_command['seq']} " in _text(shown)
            assert f"state after event {upto}" in _text(app.action_message.value)
        # the three states differ in what matters: locals grow, the code completes at the end
        assert expected.outcome == "completed" and "result: 112" in _text(bar.state_view.value)
        bar.seq.value = "4"
        bar.buttons["state"].click()
        assert "second = 12" in _text(bar.state_view.value) and "third" not in _text(bar.state_view.value)
        assert cn.get_run(run.id, instance=inst).state == "completed"   # replay wrote nothing
    finally:
        app.close()


def test_fork_from_here_starts_the_fork_selects_it_and_it_completes(inst: cn.Instance) -> None:
    run = _finished_run(inst)
    app = _observer(inst)
    try:
        app.state_filter.value = "completed"     # the fork starts running: the list must still show it
        app.table.selected_id = run.id
        app.event_actions.seq.value = "4"
        app.event_actions.buttons["fork"].click()
        new_id = app.selected
        assert new_id is not None and new_id != run.id
        assert app.table.selected_id == new_id and new_id in {r["id"] for r in app.table.rows}
        assert f"new run {new_id[:8]} selected" in _text(app.action_message.value)
        assert new_id in app.header.value        # the detail shows the fork, and where it comes from
        assert f"{run.id} at event 4" in app.header.value and "forked from" in app.header.value
        links = fork_links(new_id, instance=inst)
        assert (str(links.forked_from_run_id), links.forked_at_seq) == (run.id, 4)
        assert cn.wait(new_id, timeout=60, instance=inst) == 112
        journal = cn.api.events(new_id, instance=inst)
        # the prefix is the original's first four events; only the third add ran again
        assert [e.event_type for e in journal[:4]] == [e.event_type for e in cn.api.events(run.id, instance=inst)[:4]]
        assert [e.event_type for e in journal[4:]] == ["activity_scheduled", "activity_completed"]
        assert journal[4].payload["args"] == [12, 100]
        app.refresh()
        assert app.detail is not None and app.detail.run["state"] == "completed"
    finally:
        app.close()


def _count_runs(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM continuum_runs").fetchone()
    assert row is not None
    return int(row[0])


def test_a_read_only_observer_cannot_fork_but_can_look(inst: cn.Instance, db_url: str) -> None:
    run = _finished_run(inst)
    app = _observer(inst, read_only=True)
    try:
        app.table.selected_id = run.id
        bar = app.event_actions
        assert bar.buttons["fork"].disabled               # an operator action: off when read-only
        assert not bar.buttons["state"].disabled          # cn.replay writes nothing
        bar.seq.value = "2"
        assert bar.act("fork") is False
        bar.buttons["fork"].click()
        assert _count_runs(db_url) == 1 and app.selected == run.id
        bar.buttons["state"].click()
        assert cn.replay(run.id, upto=2, instance=inst).outcome in _text(bar.state_view.value)
    finally:
        app.close()


def test_without_a_selected_run_both_actions_are_disabled(inst: cn.Instance) -> None:
    app = _observer(inst)
    try:
        assert all(b.disabled for b in app.event_actions.buttons.values())
        assert app.event_actions.act("state") is False and app.event_actions.act("fork") is False
    finally:
        app.close()


def test_errors_are_one_line_in_the_action_message(inst: cn.Instance, db_url: str) -> None:
    ghost = str(insert_run(db_url, 20, workflow="obs_travel_ghost"))   # no code for it anywhere
    run = _finished_run(inst)
    app = _observer(inst)
    try:
        app.table.selected_id = ghost
        bar = app.event_actions
        bar.seq.value = "3"
        bar.buttons["state"].click()
        text = _one_line_error(app)
        assert text.startswith("state at this event (#3) failed: ") and "'obs_travel_ghost' is not defined here" in text
        assert bar.state_view.value == ""
        runs_before = _count_runs(db_url)
        bar.buttons["fork"].click()                       # cn.fork refuses: no code to run the fork on
        text = _one_line_error(app)
        assert text.startswith("fork from here (#3) failed: ") and "define it first" in text
        assert _count_runs(db_url) == runs_before and app.selected == ghost

        app.table.selected_id = run.id
        for typed, problem in (("abc", "'abc' is not an event number"), ("7", "event 7 is past the end of the run"),
                               ("", "type the number of an event")):
            bar.seq.value = typed
            bar.buttons["fork"].click()
            assert problem in _one_line_error(app)
        assert _count_runs(db_url) == runs_before

        # the workflow's own code raising while it is replayed: still one line, the observer usable
        def broken() -> None:
            raise RuntimeError("replaying failed\nsecond line of detail")

        bar._travel.replay = lambda run_id, upto: broken()
        bar.seq.value = "2"
        bar.buttons["state"].click()
        assert _one_line_error(app) == "state at this event (#2) failed: replaying failed"
    finally:
        app.close()
