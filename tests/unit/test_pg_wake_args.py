"""The wake call's arguments line up with its statement (pure Python: no database)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

from continuum_nb.store.base import Event, NewRun, NewTask, NewTimer, TaskOutcome, Wake
from continuum_nb.store.postgres import sql as q
from continuum_nb.store.postgres.wake import new_run_value, wake_args, wake_values

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _full_wake(run_id: uuid.UUID) -> Wake:
    task = uuid.uuid4()
    return Wake(
        run_id=run_id, lease_token=7, now=NOW, state="suspended",
        events=[Event(3, "side_effect", {"value": 1}), Event(4, "activity_scheduled", {"activity": "a"})],
        new_tasks=[NewTask(uuid.uuid4(), 4, "a", {"args": [1], "kwargs": {}}, NOW, lease_to_self=True)],
        new_timers=[NewTimer(uuid.uuid4(), 5, NOW)], fired_timers=[uuid.uuid4()],
        consumed_signals={11: 3}, task_outcomes=[TaskOutcome(task, "completed", {"ok": 1}, None, ("a", "k"), 2)],
        cancelled_tasks=[uuid.uuid4()], awaiting_signals=["go"], awaiting_tasks=[2],
        trace_context=b"\x00\xff", next_wakeup_at=NOW,
    )


def test_one_value_per_placeholder_of_the_statement() -> None:
    placeholders = sorted({int(n) for n in re.findall(r"\$(\d+)", q.COMMIT_WAKE)})
    args = wake_args(_full_wake(uuid.uuid4()), uuid.uuid4())
    assert placeholders == list(range(1, len(args) + 1))


def _current_wake_function() -> str:
    from continuum_nb.store.schema import function_statements

    (current,) = [s for s in function_statements() if "FUNCTION continuum_commit_wake(" in s]
    return current


def test_the_migration_declares_as_many_input_parameters() -> None:
    sql = _current_wake_function()
    signature = sql[sql.index("FUNCTION continuum_commit_wake("):sql.index(")\nLANGUAGE")]
    inputs = [line for line in signature.splitlines()[1:] if re.match(r"\s+p_\w+ ", line)]
    assert len(inputs) == len(wake_args(_full_wake(uuid.uuid4()), uuid.uuid4()))


def test_values_are_text_with_sql_null_for_absent_kinds() -> None:
    rid = uuid.uuid4()
    args = wake_args(Wake(run_id=rid, lease_token=3, now=NOW, state="completed", result=None), rid)
    assert args[0] == str(rid) and args[1] == "3" and args[2] is None  # no new run
    assert args[3] is None  # no events: no seq check
    assert args[6:12] == [None] * 6  # outcomes, results, timers, fired, signals, cancelled
    assert args[19] == "true"  # finished
    full = wake_args(_full_wake(rid), rid)
    assert full[3] == "2" and full[21] == "\\x00ff"  # journal must end at 2; bytea in hex form


def test_a_new_run_travels_as_one_json_object() -> None:
    run = NewRun(uuid.uuid4(), "wf", "v1", {"x": 1}, NOW, trace_context=b"\x01", retention_until=None)
    value = new_run_value(run, "engine-1")
    args = wake_args(_full_wake(run.id), run.id, value, lease_ttl=12.5)
    text = args[2]
    assert text is not None
    assert '"owner":"engine-1"' in text and '"trace":"01"' in text and '"input":{"x":1}' in text
    assert args[23] == "12.5"
    assert args[24:] == [None, None, None]  # no children started, awaited or cancelled


def test_the_current_definition_extends_the_signature_at_its_end() -> None:
    """The migration that replaced the function last (store/schema.py's FUNCTIONS) declares the
    first one's parameters, in the same order, then the three of child runs (20261207070000);
    the OUT parameters are unchanged."""

    def params(sql: str) -> list[str]:
        start = sql.index("FUNCTION continuum_commit_wake(")
        signature = sql[start:sql.index(")\nLANGUAGE", start)]
        return [m.group(1) + " " + m.group(2) for m in re.finditer(r"^\s+(p_\w+|OUT \w+) (\w+)", signature, re.M)]

    first = next((Path(__file__).resolve().parents[2] / "migrations").glob("*_commit_wake_function.sql")).read_text()
    current = _current_wake_function()
    assert current.startswith("CREATE FUNCTION continuum_commit_wake(")
    before, after = params(first), params(current)
    assert len(before) == 26
    assert after == before[:24] + ["p_children jsonb", "p_await_children jsonb", "p_cancel_children jsonb"] + before[24:]


def test_the_text_form_is_the_json_values_as_postgresql_reads_them() -> None:
    """One wake of a batch (continuum_commit_wakes_json) and one call alone carry the same
    values: the text of a jsonb parameter is its value's JSON, booleans are true/false, numbers
    and strings as they are, and None is SQL NULL in both."""
    rid = uuid.uuid4()
    wake = _full_wake(rid)
    wake.result, wake.release = {"r": [1, None]}, True
    values, args = wake_values(wake, rid), wake_args(wake, rid)
    assert len(values) == len(args) == 27
    for i, (value, text) in enumerate(zip(values, args, strict=True)):
        if value is None:
            assert text is None, i
        elif isinstance(value, bool):
            assert text == ("true" if value else "false"), i
        elif isinstance(value, (list, dict)):
            assert text is not None and json.loads(text) == value, i
        else:
            assert text == (repr(value) if isinstance(value, float) else str(value)), i
    assert values[4] == [[3, "side_effect", {"value": 1}], [4, "activity_scheduled", {"activity": "a"}]]
    assert values[21] == "\\x00ff" and values[1] == 7 and values[22] is True
