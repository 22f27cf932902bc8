"""A recorded history of a parent of child workflows (tests/histories/family_completed.json)
replayed offline: it completes with its result and starts no child; the same code with a child
removed, a child of another workflow, or children reordered is rejected as drift."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef
from tests.histories.workflows import family, family_without_a_child

HERE = Path(__file__).resolve().parents[1] / "histories"
FAMILY = WorkflowDef(family, name="family")


def history() -> dict[str, Any]:
    return json.loads((HERE / "family_completed.json").read_text())


def test_the_history_holds_every_child_event_but_cancellation() -> None:
    types = {e["event_type"] for e in history()["journal"]}
    assert types == {"child_started", "child_completed", "child_failed"}


def test_a_parent_history_replays_to_its_result() -> None:
    assert cn.testing.replay(FAMILY, history()) == "completed"
    assert history()["result"] == {"first": "room in Lisbon", "later": "room in Porto",
                                   "both": ["room in Faro", "room in Braga"], "refused": "refused"}


def test_a_history_cut_before_a_childs_end_replays_to_suspended() -> None:
    data = history()
    data["journal"] = [e for e in data["journal"] if e["seq"] <= 5]
    data["state"], data["result"] = "suspended", None
    assert cn.testing.replay(FAMILY, data) == "suspended"


def test_a_removed_child_is_drift() -> None:
    with pytest.raises(cn.DriftError) as err:
        cn.testing.replay(WorkflowDef(family_without_a_child, name="family"), history())
    assert err.value.seq == 1
    assert err.value.expected["kind"] == "child" and err.value.expected["target"] == "family_kid"
    assert err.value.actual["target"] == "family_kid/later"


def test_a_child_of_another_workflow_is_drift() -> None:
    data = copy.deepcopy(history())
    data["journal"][0]["payload"]["workflow"] = "other_kid"
    with pytest.raises(cn.DriftError) as err:
        cn.testing.replay(FAMILY, data)
    assert err.value.seq == 1 and err.value.expected["target"] == "other_kid"


def test_another_outcome_of_a_child_changes_the_result_and_is_drift() -> None:
    data = copy.deepcopy(history())
    data["journal"][1]["payload"]["result"] = "room in Sintra"
    with pytest.raises(cn.DriftError, match="returned"):
        cn.testing.replay(FAMILY, data)


def test_a_child_failure_in_the_journal_is_raised_on_replay() -> None:
    data = copy.deepcopy(history())
    data["journal"][1] = {**data["journal"][1], "event_type": "child_failed",
                          "payload": {**data["journal"][1]["payload"], "state": "failed",
                                      "error": {"type": "builtins.ValueError", "message": "no room"}}}
    with pytest.raises(cn.DriftError, match="raised ChildFailed: child workflow 'family_kid'"):
        cn.testing.replay(FAMILY, data)
