"""Recorded histories of a continue-as-new chain (tests/histories/subscription_*.json, recorded by
tests/histories/record_chain.py) replayed offline: a run that continued as new replays to its
``{"continued": next_run_id}`` from the journal; code that no longer continues there, continues
with another input, or continues earlier, is drift."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef
from tests.histories.workflows import bill, subscription

HERE = Path(__file__).resolve().parents[1] / "histories"
SUBSCRIPTION = WorkflowDef(subscription, name="subscription")


def history(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text())


def test_the_first_run_of_the_chain_was_recorded_continuing_as_new() -> None:
    data = history("subscription_first")
    last = data["journal"][-1]
    assert last["event_type"] == "run_continued_as_new"
    assert data["result"] == {"continued": last["payload"]["next_run_id"]}
    assert last["payload"]["input"] == {"customer": "c-17", "cycle": 2, "billed": 990}


def test_a_run_that_continued_as_new_replays_to_its_recorded_successor() -> None:
    assert cn.testing.replay(SUBSCRIPTION, history("subscription_first")) == "completed"
    assert cn.testing.replay(SUBSCRIPTION, history("subscription_last")) == "completed"


def test_a_history_cut_before_the_continuation_replays_to_its_end() -> None:
    data = copy.deepcopy(history("subscription_first"))
    data["journal"] = data["journal"][:-1]  # as it stood before its last wake
    data["state"], data["result"] = "suspended", None
    assert cn.testing.replay(SUBSCRIPTION, data) == "completed"  # (offline: it would continue as new now)


async def returns_instead(customer: str, cycle: int = 1, billed: int = 0) -> dict[str, Any]:
    receipt = await bill(customer, cycle)
    await cn.timer(cn.days(30))
    return {"customer": customer, "billed": billed + receipt["cents"]}


async def continues_with_other_input(customer: str, cycle: int = 1, billed: int = 0) -> dict[str, Any]:
    receipt = await bill(customer, cycle)
    await cn.timer(cn.days(30))
    cn.continue_as_new({"customer": customer, "cycle": cycle + 1, "billed": billed + 2 * receipt["cents"]})


async def continues_earlier(customer: str, cycle: int = 1, billed: int = 0) -> dict[str, Any]:
    receipt = await bill(customer, cycle)
    cn.continue_as_new({"customer": customer, "cycle": cycle + 1, "billed": billed + receipt["cents"]})


async def continues_where_it_returned(customer: str, cycle: int = 1, billed: int = 0) -> dict[str, Any]:
    receipt = await bill(customer, cycle)
    await cn.timer(cn.days(30))
    cn.continue_as_new({"customer": customer, "cycle": cycle + 1, "billed": billed + receipt["cents"]})


@pytest.mark.parametrize(("fn", "name", "match", "seq"), [
    (returns_instead, "subscription_first", "journal has 1 more command", 5),
    (continues_with_other_input, "subscription_first", "continues as new with input", 5),
    (continues_earlier, "subscription_first", "continue_as_new 'subscription'", 3),
    (continues_where_it_returned, "subscription_last", r"now returns \{'continued'", None),
])
def test_a_changed_continuation_is_drift(fn: Any, name: str, match: str, seq: int | None) -> None:
    with pytest.raises(cn.DriftError, match=match) as err:
        cn.testing.replay(WorkflowDef(fn, name="subscription"), history(name))
    assert err.value.error.get("seq") == seq
