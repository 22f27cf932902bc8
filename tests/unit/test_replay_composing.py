"""Replay the recorded composing journals (tests/replay/composing_*.json, and the pre-patch
``order_*`` ones) against the code: pure logic, no I/O. Same effects replay and record nothing;
a changed order inside ``cn.first``, a removed patch, or a compensation added before an existing
step is drift; ``cn.first`` is decided by the journal's order of resolutions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.replay import Blocked, Completed, Drifted, Replayer, snapshots
from continuum_nb.store.base import Event
from tests.replay.composing import COMPOSING_WORKFLOWS
from tests.replay.workflows import NothingLive

HERE = Path(__file__).parent.parent / "replay"


def load(name: str) -> dict[str, Any]:
    data = json.loads((HERE / f"{name}.json").read_text())
    data["events"] = [Event(e["seq"], e["event_type"], e["payload"]) for e in data["journal"]]
    return data


def replay(workflow: str, data: dict[str, Any], events: list[Event] | None = None) -> tuple[Replayer, Any]:
    fn = COMPOSING_WORKFLOWS[workflow]
    rep = Replayer("run", workflow, lambda: fn(**data["input"]), list(data["events"] if events is None else events))
    return rep, rep.advance(NothingLive())


CASES = [("composing_expedite_signal", "expedite"), ("composing_expedite_signal", "expedite_refactored"),
         ("composing_expedite_timer", "expedite"), ("composing_expedite_timer", "expedite_refactored"),
         ("composing_expedite_signal", "expedite_patch_deprecated"),
         ("composing_expedite_timer", "expedite_patch_deprecated"), ("composing_trip", "trip")]


@pytest.mark.parametrize("journal,workflow", CASES, ids=[f"{j}-{w}" for j, w in CASES])
def test_recorded_composing_journal_replays_to_its_result(journal: str, workflow: str) -> None:
    data = load(journal)
    rep, outcome = replay(workflow, data)
    assert isinstance(outcome, Completed), outcome
    assert outcome.result == data["result"]
    assert rep.batch.events == []  # no log line, patch or cancellation journaled again


@pytest.mark.parametrize("journal", ["composing_expedite_signal", "composing_trip"])
def test_replay_from_a_snapshot_with_composing_events(journal: str) -> None:
    data = load(journal)
    fn = COMPOSING_WORKFLOWS[data["workflow"]]
    for cut in range(1, len(data["events"]) + 1):
        snap = snapshots.build_snapshot(uuid.uuid4(), "v", data["events"][:cut])
        composing = any(e.event_type in ("patched", "workflow_log") or e.event_type.startswith("compensation")
                        or e.event_type.endswith("_cancelled") for e in data["events"][:cut])
        assert snap.payload["format"] == (snapshots.FORMAT_VERBATIM if composing else snapshots.FORMAT)
        rep = snapshots.replayer_from("run", data["workflow"], lambda: fn(**data["input"]), snap, data["events"][cut:])
        outcome = rep.advance(NothingLive())
        assert isinstance(outcome, Completed) and outcome.result == data["result"], (cut, outcome)
        assert rep.batch.events == []


DRIFTS = [
    # (workflow, journal, expected (kind, target) from the journal, actual from the code)
    ("expedite_swapped", "composing_expedite_signal", ("signal", "approve"), ("timer", "timer")),
    ("expedite_swapped", "composing_expedite_timer", ("signal", "approve"), ("timer", "timer")),
    ("expedite_patch_removed", "composing_expedite_signal", ("patched", "expedite-v2"), ("signal", "approve")),
    ("trip_extra_compensation", "composing_trip", ("compensation", "replay.refund"), ("compensation", "replay.notify")),
]


@pytest.mark.parametrize("workflow,journal,expected,actual", DRIFTS, ids=[f"{d[0]}-{d[1]}" for d in DRIFTS])
def test_changed_composition_is_rejected_as_drift(workflow: str, journal: str, expected: tuple[str, str],
                                                  actual: tuple[str, str]) -> None:
    rep, outcome = replay(workflow, load(journal))
    assert isinstance(outcome, Drifted), outcome
    err = outcome.error
    assert (err["expected"]["kind"], err["expected"]["target"]) == expected
    assert (err["actual"]["kind"], err["actual"]["target"]) == actual
    assert rep.batch.events == []


def test_deprecated_patch_replays_a_history_without_the_marker() -> None:
    data = load("composing_expedite_signal")
    without = [e for e in data["events"] if e.event_type != "patched"]
    rep, outcome = replay("expedite_patch_deprecated", data, without)
    assert isinstance(outcome, Completed) and outcome.result["shipped"] == "shipped E1"
    assert rep.batch.events == []


@pytest.mark.parametrize("journal,state", [("order_completed", "completed"), ("order_in_flight", "suspended")])
def test_a_history_recorded_before_the_patch_takes_the_old_branch_and_consumes_nothing(journal: str, state: str) -> None:
    data = load(journal)
    rep, outcome = replay("order_patched", data)
    if state == "completed":
        assert isinstance(outcome, Completed) and outcome.result == data["result"]
    else:
        assert isinstance(outcome, Blocked) and outcome.awaiting_signals == ["approve"]
    assert rep.batch.events == []  # no patched marker written into an old history


def test_a_new_run_journals_the_patch_and_takes_the_new_branch() -> None:
    rep, outcome = replay("order_patched", {"input": {"order_id": "N", "cents": 1}, "events": []})
    assert isinstance(outcome, Blocked)
    assert [(e.event_type, e.payload.get("name") or e.payload.get("activity")) for e in rep.batch.events] == [
        ("patched", "notify-first"), ("activity_scheduled", "replay.notify")]


def _reordered(first: str) -> list[Event]:
    """The signal scenario's prefix (patch, log, both starts) with both resolutions journaled,
    ``first`` ("signal" or "timer") first."""
    data = load("composing_expedite_signal")
    prefix = data["events"][:4]
    sig = Event(0, "signal_received", {"name": "approve", "payload": {"by": "bo"}, "signal_id": 9, "awaited_seq": 3})
    fired = Event(0, "timer_fired", {"started_seq": 4, "fire_at": prefix[3].payload["fire_at"]})
    pair = [sig, fired] if first == "signal" else [fired, sig]
    return prefix + [Event(5 + i, e.event_type, e.payload) for i, e in enumerate(pair)]


@pytest.mark.parametrize("first,index", [("signal", 0), ("timer", 1)])
def test_first_is_decided_by_the_journal_order_not_by_what_arrives(first: str, index: int) -> None:
    data = load("composing_expedite_signal")
    rep, outcome = replay("expedite", data, _reordered(first))
    if index == 1:
        assert isinstance(outcome, Completed) and outcome.result["index"] == 1
        assert rep.batch.events == []  # both resolved already: nothing to cancel
    else:
        assert isinstance(outcome, Blocked)  # the signal won: ship is scheduled at the live tail
        assert [e.event_type for e in rep.batch.events] == ["activity_scheduled"]


def test_a_resumed_saga_continues_from_the_first_compensation_not_done() -> None:
    data = load("composing_trip")
    # crashed after the first compensation completed: the second is scheduled, the first is not redone
    rep, outcome = replay("trip", data, data["events"][:8])
    assert isinstance(outcome, Blocked)
    assert [(e.event_type, e.payload["activity"]) for e in rep.batch.events] == [("compensation_scheduled", "replay.refund")]
    # crashed with the first compensation in flight: nothing is scheduled again, it waits for it
    rep, outcome = replay("trip", data, data["events"][:7])
    assert isinstance(outcome, Blocked) and outcome.waiting_on_activities == [7]
    assert rep.batch.events == []
    assert rep.unresolved_activities() == [7]


def test_log_lines_are_journaled_once_per_place_at_the_live_tail() -> None:
    async def chatty() -> str:
        cn.log("one")
        await cn.timer(60)
        cn.log("two", n=2)
        cn.log("three")
        return "ok"

    live = Replayer("run", "chatty", chatty, [])
    assert isinstance(live.advance(NothingLive()), Blocked)
    recorded = list(live.batch.events)
    assert [e.event_type for e in recorded] == ["workflow_log", "timer_started"]
    # the timer fired; a fresh replay logs "one" no more, and "two"/"three" once
    fired = Event(3, "timer_fired", {"started_seq": 2, "fire_at": recorded[1].payload["fire_at"]})
    again = Replayer("run", "chatty", chatty, [*recorded, fired])
    assert isinstance(again.advance(NothingLive()), Completed)
    assert [(e.event_type, e.payload["message"], e.payload["fields"]) for e in again.batch.events] == [
        ("workflow_log", "two", {"n": 2}), ("workflow_log", "three", {})]
    # and a replay of the whole journal (those lines included) journals nothing
    third = Replayer("run", "chatty", chatty, [*recorded, fired, *again.batch.events])
    assert isinstance(third.advance(NothingLive()), Completed) and third.batch.events == []


class SignalWaiting(NothingLive):
    """A signal ``go`` is in the mailbox, and the clock is past every timer."""

    def now(self) -> Any:
        from datetime import timedelta

        return super().now() + timedelta(days=1)

    def signal(self, name: str, skip: set[int]) -> Any:
        from continuum_nb.store.base import SignalRecord

        return SignalRecord(7, uuid.uuid4(), name, "payload", super().now()) if 7 not in skip else None


def test_at_the_live_tail_the_earlier_argument_wins_and_a_losing_signal_is_not_consumed() -> None:
    async def race() -> Any:
        return list(await cn.first(cn.timer(60), cn.signal("go")))

    rep = Replayer("run", "race", race, [])
    assert isinstance(rep.advance(NothingLive()), Blocked)  # both started, nothing resolved yet
    started = list(rep.batch.events)
    again = Replayer("run", "race", race, started)
    outcome = again.advance(SignalWaiting())
    assert isinstance(outcome, Completed) and outcome.result == [0, None]
    assert [e.event_type for e in again.batch.events] == ["timer_fired", "signal_cancelled"]
    assert again.batch.consumed_signals == {}  # the signal stays in the mailbox
