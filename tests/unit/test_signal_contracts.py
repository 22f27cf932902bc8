"""Signal contracts: what ``signals=`` accepts, what a signal must look like, and that the
contract of a ``%%workflow`` cell comes back with its stored source (another process's engine
or client loads it from there)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from continuum_nb.definitions.registry import load_stored_source
from continuum_nb.definitions.signals import check_signal, normalise_contract
from continuum_nb.definitions.workflow import source_hash

CONTRACT = normalise_contract({"approve": {"by": str, "ok": bool, "amount": float, "note": (str, type(None)),
                                           "meta": {"source": str}}, "poke": None}, "wf")
GOOD = {"by": "ana", "ok": True, "amount": 3, "note": None, "meta": {"source": "ui"}}


def test_a_payload_of_the_declared_shape_passes() -> None:
    assert CONTRACT is not None
    check_signal(CONTRACT, "wf", "approve", GOOD)
    check_signal(CONTRACT, "wf", "approve", {**GOOD, "amount": 2.5, "note": "fine"})
    check_signal(CONTRACT, "wf", "poke", None)


@pytest.mark.parametrize("name,payload,error,match", [
    ("aprove", GOOD, ValueError, "does not accept signal 'aprove': its signals= contract declares 'approve', 'poke'"),
    ("approve", {**GOOD, "ok": 1}, TypeError, "field 'ok' must be bool, not int"),
    ("approve", {**GOOD, "amount": True}, TypeError, "field 'amount' must be float, not bool"),
    ("approve", {**GOOD, "note": 3}, TypeError, "field 'note' must be str or None, not int"),
    ("approve", {**GOOD, "meta": {"source": 1}}, TypeError, "field 'meta'.*field 'source' must be str"),
    ("approve", {k: v for k, v in GOOD.items() if k != "by"}, ValueError, "field 'by' is missing"),
    ("approve", {**GOOD, "x": 1}, ValueError, "field 'x' is not declared"),
    ("approve", ["ana"], TypeError, "the payload must be a dict with fields"),
    ("poke", {"x": 1}, TypeError, "carries no payload"),
])
def test_a_signal_outside_the_contract_is_refused_naming_the_field(name: str, payload: Any, error: type,
                                                                   match: str) -> None:
    assert CONTRACT is not None
    with pytest.raises(error, match=match):
        check_signal(CONTRACT, "wf", name, payload)


@pytest.mark.parametrize("signals,match", [
    (["approve"], "signals= must be a dict of signal names"),
    ({"approve": str}, "signal 'approve' must map to None"),
    ({"approve": {"by": set}}, "is not a payload type"),
    ({"": None}, "signal name"),
])
def test_a_malformed_contract_is_refused_in_one_line(signals: Any, match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        normalise_contract(signals, "wf")


def test_the_contract_of_a_stored_cell_comes_back_with_its_source() -> None:
    source = textwrap.dedent(
        """
        import continuum_nb as cn

        @cn.workflow(signals={"approve": {"by": str}})
        async def approval(x):
            return await cn.signal("approve")
        """
    )
    wf = load_stored_source("approval", source_hash(source), source)
    assert wf.signals == {"approve": {"by": str}}
    with pytest.raises(TypeError, match="field 'by' must be str"):
        check_signal(wf.signals, wf.name, "approve", {"by": 1})
