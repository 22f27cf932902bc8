"""Replay recorded journals (tests/replay/*.json) against the workflow code: pure logic, no I/O.

Every recorded journal must replay to its recorded result on the recorded version and on a
refactored version with the same effects; edits that change the effects must be rejected as
drift, naming the expected (journal) and the actual (code) command, and record nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from continuum_nb.replay import Blocked, Completed, Drifted, Replayer
from continuum_nb.store.base import Event
from tests.replay.workflows import WORKFLOWS, NothingLive

JOURNALS = sorted((Path(__file__).parent.parent / "replay").glob("order_*.json"))  # (composing_*: test_replay_composing.py)


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data["events"] = [Event(e["seq"], e["event_type"], e["payload"]) for e in data["journal"]]
    return data


def replay(workflow: str, data: dict[str, Any]) -> tuple[Replayer, Any]:
    fn = WORKFLOWS[workflow]
    rep = Replayer("run", workflow, lambda: fn(**data["input"]), list(data["events"]))
    return rep, rep.advance(NothingLive())


def test_journals_were_recorded() -> None:
    names = {p.stem for p in JOURNALS}
    assert {"order_completed", "order_signal_first", "order_expired", "order_in_flight"} <= names


@pytest.mark.parametrize("path", JOURNALS, ids=lambda p: p.stem)
@pytest.mark.parametrize("workflow", ["order", "order_refactored"])
def test_recorded_journal_replays_to_its_result(path: Path, workflow: str) -> None:
    data = load(path)
    rep, outcome = replay(workflow, data)
    if data["state"] == "completed":
        assert isinstance(outcome, Completed), outcome
        assert outcome.result == data["result"]
    else:
        assert isinstance(outcome, Blocked), outcome
        assert outcome.awaiting_signals == ["approve"]
    # Pure replay records nothing: every effect was answered from the journal.
    assert rep.batch.events == []


def test_signal_already_pending_journals_only_signal_received() -> None:
    data = load(Path(__file__).parent.parent / "replay" / "order_signal_first.json")
    types = [e.event_type for e in data["events"]]
    assert "signal_received" in types and "signal_awaited" not in types
    # and no timeout timer was created for it
    assert types.count("timer_started") == 1  # the workflow's own 5-minute timer


def test_in_flight_run_blocks_at_the_journal_end() -> None:
    data = load(Path(__file__).parent.parent / "replay" / "order_in_flight.json")
    rep, outcome = replay("order", data)
    assert isinstance(outcome, Blocked)
    awaited = data["events"][-1]
    assert awaited.event_type == "signal_awaited"
    assert outcome.next_wakeup_at == datetime.fromisoformat(awaited.payload["timeout_at"])


DRIFTS = [
    # (workflow, journal, expected (kind, target) from the journal, actual (kind, target) from code)
    ("order_notify_first", "order_completed", ("activity", "replay.charge"), ("activity", "replay.notify")),
    ("order_clock_first", "order_completed", ("activity", "replay.charge"), ("side_effect", "now")),
    ("order_other_signal", "order_completed", ("signal", "approve"), ("signal", "approval")),
    ("order_no_timer", "order_completed", ("timer", "timer"), ("activity", "replay.ship")),
    ("order_notify_first", "order_in_flight", ("activity", "replay.charge"), ("activity", "replay.notify")),
]


@pytest.mark.parametrize("workflow,journal,expected,actual", DRIFTS, ids=[f"{d[0]}-{d[1]}" for d in DRIFTS])
def test_changed_effects_are_rejected_as_drift(workflow: str, journal: str, expected: tuple[str, str],
                                               actual: tuple[str, str]) -> None:
    data = load(Path(__file__).parent.parent / "replay" / f"{journal}.json")
    rep, outcome = replay(workflow, data)
    assert isinstance(outcome, Drifted), outcome
    err = outcome.error
    assert (err["expected"]["kind"], err["expected"]["target"]) == expected
    assert (err["actual"]["kind"], err["actual"]["target"]) == actual
    assert err["seq"] == err["expected"]["seq"]
    assert expected[1] in err["message"] and actual[1] in err["message"]
    assert rep.batch.events == []  # nothing is appended on drift


def test_workflow_that_stops_early_is_drift() -> None:
    data = load(Path(__file__).parent.parent / "replay" / "order_completed.json")

    async def shorter(order_id: str, cents: int) -> str:
        return "nothing"

    rep = Replayer("run", "order", lambda: shorter(**data["input"]), list(data["events"]))
    outcome = rep.advance(NothingLive())
    assert isinstance(outcome, Drifted)
    assert outcome.error["expected"]["event_type"] == "activity_scheduled"
    assert "returned" in outcome.error["message"]


def test_drift_cannot_be_swallowed_by_except_exception() -> None:
    import continuum_nb as cn

    data = load(Path(__file__).parent.parent / "replay" / "order_completed.json")

    async def swallowing(order_id: str, cents: int) -> str:
        try:
            cn.now()  # journal has an activity here: drift raised inside the call
        except Exception:
            return "swallowed"
        return "not reached"

    rep = Replayer("run", "order", lambda: swallowing(**data["input"]), list(data["events"]))
    assert isinstance(rep.advance(NothingLive()), Drifted)
