"""Recorded histories (tests/histories/*.json, exported by cn.export_history) replayed offline
against the current code with cn.testing.replay: the outcome, or cn.DriftError naming the seq,
the expected (journal) and the actual (code) command."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef
from tests.histories.workflows import trip

HERE = Path(__file__).resolve().parents[1] / "histories"
TRIP = WorkflowDef(trip, name="trip")


def history(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text())


def cut(data: dict[str, Any], upto: int) -> dict[str, Any]:
    """The history of the same run as it stood after event ``upto`` (still running)."""
    out = copy.deepcopy(data)
    out["journal"] = [e for e in out["journal"] if e["seq"] <= upto]
    out["state"], out["result"] = "suspended", None
    return out


def test_the_histories_were_recorded_with_every_event_type() -> None:
    types = {e["event_type"] for e in history("trip_completed")["journal"]}
    assert types == {"activity_scheduled", "activity_completed", "activity_failed", "timer_started",
                     "timer_fired", "signal_awaited", "signal_received", "side_effect"}
    assert history("trip_completed")["format"] == "continuum-history/1"


def test_a_completed_history_replays_to_completed_and_its_result() -> None:
    assert cn.testing.replay(TRIP, history("trip_completed")) == "completed"


def test_a_history_may_be_given_as_a_path_or_as_json_text() -> None:
    assert cn.testing.replay(TRIP, HERE / "trip_completed.json") == "completed"
    assert cn.testing.replay(TRIP, str(HERE / "trip_in_flight.json")) == "suspended"
    assert cn.testing.replay(TRIP, (HERE / "trip_completed.json").read_text()) == "completed"


def test_an_in_flight_history_replays_to_suspended() -> None:
    assert cn.testing.replay(TRIP, history("trip_in_flight")) == "suspended"


@pytest.mark.parametrize("upto,outcome", [
    (0, "continued"),    # nothing journaled: the code schedules its first activity
    (1, "suspended"),    # waits on the scheduled flight
    (2, "continued"),    # the flight is booked: the code asks for the payment
    (4, "continued"),    # the payment failed: the code retries it smaller
    (8, "continued"),    # after the side effects: the code starts its timer
    (9, "suspended"),    # the timer has not fired
    (11, "suspended"),   # waiting for the approval
    (13, "suspended"),   # waiting for the upgrade
    (14, "continued"),   # the upgrade timed out: the code books the hotel
])
def test_a_history_cut_anywhere_replays_to_what_the_run_did_next(upto: int, outcome: str) -> None:
    assert cn.testing.replay(TRIP, cut(history("trip_completed"), upto)) == outcome


def test_an_older_version_history_is_rejected_as_drift() -> None:
    with pytest.raises(cn.DriftError) as info:
        cn.testing.replay(TRIP, history("trip_v0_completed"))
    err = info.value
    # both versions book first (same command); v0 then books again where trip now pays
    assert err.seq == 3
    assert (err.expected["kind"], err.expected["target"], err.expected["ordinal"]) == ("activity", "histories.book", 1)
    assert (err.actual["kind"], err.actual["target"], err.actual["ordinal"]) == ("activity", "histories.pay", 0)
    assert "seq 3" in str(err)


def _renamed(seq: int, key: str, value: Any) -> dict[str, Any]:
    data = history("trip_completed")
    [event] = [e for e in data["journal"] if e["seq"] == seq]
    event["payload"][key] = value
    return data


@pytest.mark.parametrize("seq,key,value,kind,target", [
    (1, "activity", "histories.rent", "activity", "histories.book"),   # activity_scheduled
    (7, "kind", "random", "side_effect", "uuid4"),                      # side_effect
    (11, "name", "approval", "signal", "approve"),                      # signal_awaited
    (13, "name", "downgrade", "signal", "upgrade"),                     # signal_awaited with a timeout
])
def test_a_changed_command_of_each_type_is_drift_at_its_seq(seq: int, key: str, value: Any, kind: str,
                                                             target: str) -> None:
    with pytest.raises(cn.DriftError) as info:
        cn.testing.replay(TRIP, _renamed(seq, key, value))
    assert info.value.seq == seq
    assert (info.value.actual["kind"], info.value.actual["target"]) == (kind, target)


def test_a_missing_timer_is_drift() -> None:
    data = history("trip_completed")
    data["journal"] = [e for e in data["journal"] if e["seq"] not in (9, 10)]
    with pytest.raises(cn.DriftError) as info:
        cn.testing.replay(TRIP, data)
    assert info.value.seq == 11
    assert info.value.actual["kind"] == "timer"


def test_another_outcome_of_an_activity_changes_the_result_and_is_drift() -> None:
    data = _renamed(16, "result", "hostel in Lisbon")  # activity_completed of the hotel
    with pytest.raises(cn.DriftError, match="now returns") as info:
        cn.testing.replay(TRIP, data)
    assert info.value.expected["hotel"] == "hotel in Lisbon"
    assert info.value.actual["hotel"] == "hostel in Lisbon"


def test_a_signal_payload_and_a_timeout_replay_from_the_journal() -> None:
    data = _renamed(12, "payload", {"by": "rui"})  # signal_received
    with pytest.raises(cn.DriftError) as info:
        cn.testing.replay(TRIP, data)
    assert info.value.actual["approval"] == {"by": "rui"}


def test_a_completed_run_whose_code_now_goes_on_is_drift() -> None:
    data = history("trip_completed")
    data["journal"] = [e for e in data["journal"] if e["seq"] <= 14]  # state still "completed"
    with pytest.raises(cn.DriftError, match="goes on with activity_scheduled") as info:
        cn.testing.replay(TRIP, data)
    assert info.value.seq == 15


@pytest.mark.parametrize("bad,message", [
    ({"workflow": "trip"}, "needs 'workflow'"),
    ({"workflow": "trip", "journal": [{"seq": "1"}]}, "event #0"),
    ("{not json", "not valid JSON"),
    ("/no/such/history.json", "no history file"),
    (42, "not int"),
])
def test_bad_histories_get_one_clear_line(bad: Any, message: str) -> None:
    with pytest.raises(cn.ConfigurationError, match=message) as info:
        cn.testing.replay(TRIP, bad)
    assert "\n" not in str(info.value)


def test_a_history_of_another_workflow_is_refused() -> None:
    other = history("trip_completed")
    other["workflow"] = "checkout"
    with pytest.raises(cn.ConfigurationError, match="history is of workflow 'checkout', not 'trip'"):
        cn.testing.replay(TRIP, other)


def test_replay_writes_nothing_and_needs_no_instance() -> None:
    data = history("trip_completed")
    before = json.dumps(data, sort_keys=True)
    cn.testing.replay(TRIP, data)
    assert json.dumps(data, sort_keys=True) == before
