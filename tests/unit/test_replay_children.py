"""The replayer and child workflows, without an engine: what the live tail journals for
cn.child / cn.start_child, the derived child ids (the same on every replay), refused starts,
and answers from the journal."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.definitions.children import child_run_id
from continuum_nb.replay.outcomes import Blocked, ChildOutcome, ChildTarget, Completed
from continuum_nb.replay.replayer import Replayer
from continuum_nb.store.base import Event
from tests.replay.workflows import NOW, NothingLive

PARENT = str(uuid.UUID(int=7))
FAMILY = str(uuid.UUID(int=1))


class Live(NothingLive):
    """A resolver that knows the workflow ``kid`` (and what its children ended in)."""

    def __init__(self, ended: dict[str, ChildOutcome] | None = None) -> None:
        self.ended = ended or {}
        self.asked: list[str] = []

    def child_target(self, workflow: str) -> ChildTarget:
        self.asked.append(workflow)
        if workflow != "kid":
            return ChildTarget(refused=f"workflow {workflow!r} is not defined here")
        return ChildTarget("v1", FAMILY, None)

    def child_outcome(self, rid: str) -> ChildOutcome | None:
        return self.ended.get(rid)


async def parent() -> Any:
    handle = await cn.start_child("kid", {"x": 1}, run_id="a")
    first = await cn.child("kid", {"x": 2})
    return [first, await handle]


def _run(journal: list[Event], resolver: Any) -> tuple[Replayer, Any]:
    rep = Replayer(PARENT, "parent", parent, journal)
    return rep, rep.advance(resolver)


def test_the_live_tail_journals_starts_with_derived_ids_and_children_to_insert() -> None:
    rep, out = _run([], Live())
    assert isinstance(out, Blocked)
    a, b = child_run_id(PARENT, "kid", 0, "a"), child_run_id(PARENT, "kid", 0, None)
    assert a != b and a == child_run_id(PARENT, "kid", 0, "a")  # stable: derived, not random
    assert [(e.event_type, e.payload["child_run_id"], e.payload["run_id"]) for e in rep.batch.events] == [
        ("child_started", str(a), "a"), ("child_started", str(b), None)]
    assert [(c.run_id, c.workflow, c.input, str(c.correlation_id)) for c in rep.batch.children] == [
        (a, "kid", {"x": 1}, FAMILY), (b, "kid", {"x": 2}, FAMILY)]
    assert out.waiting_on_children == [str(b)]


def test_a_replay_answers_from_the_journal_and_starts_nothing() -> None:
    rep, _ = _run([], Live())
    journal = list(rep.batch.events)
    a, b = (e.payload["child_run_id"] for e in journal)
    journal += [Event(3, "child_completed", {"started_seq": 2, "workflow": "kid", "child_run_id": b, "result": 20}),
                Event(4, "child_completed", {"started_seq": 1, "workflow": "kid", "child_run_id": a, "result": 10})]
    resolver = Live()
    again, out = _run(journal, resolver)
    assert out == Completed([20, 10])
    assert again.batch.events == [] and again.batch.children == [] and resolver.asked == []


def test_an_end_read_at_the_live_tail_is_journaled_by_the_parent() -> None:
    rep, _ = _run([], Live())
    journal = list(rep.batch.events)
    a, b = (e.payload["child_run_id"] for e in journal)
    rep2, out = _run(journal, Live({b: ChildOutcome("failed", error={"type": "builtins.ValueError", "message": "x"}),
                                    a: ChildOutcome("completed", 1)}))
    assert [(e.event_type, e.payload["started_seq"]) for e in rep2.batch.events] == [("child_failed", 2)]
    assert out.error["type"] == "continuum_nb.errors.ChildFailed"


def test_a_refused_start_is_journaled_once_and_raised() -> None:
    async def typo() -> Any:
        try:
            await cn.child("kdi", {})
        except cn.ChildFailed as exc:
            return [exc.state, str(exc)]

    rep = Replayer(PARENT, "typo", typo, [])
    out = rep.advance(Live())
    assert out == Completed(["refused", "child workflow 'kdi' was not started: workflow 'kdi' is not defined here"])
    assert [e.event_type for e in rep.batch.events] == ["child_started", "child_failed"]
    assert rep.batch.children == []
    # replayed where the workflow exists now: the recorded refusal stands
    replayed = Replayer(PARENT, "typo", typo, list(rep.batch.events)).advance(Live())
    assert replayed == out


@pytest.mark.parametrize("changed", [{"workflow": "other"}, {"run_id": "b"}, {"ordinal": 1}])
def test_another_child_identity_is_drift(changed: dict[str, Any]) -> None:
    rep, _ = _run([], Live())
    journal = list(rep.batch.events)
    journal[0] = Event(1, "child_started", {**journal[0].payload, **changed})
    _, out = _run(journal, Live())
    assert out.error["type"] == "drift" and out.error["expected"]["kind"] == "child"


def test_an_offline_replay_past_the_journal_starts_the_child_and_waits() -> None:
    from continuum_nb.replay.live import Offline

    rep = Replayer(PARENT, "parent", parent, [])
    out = rep.advance(Offline(NOW))
    assert isinstance(out, Blocked) and out.waiting_on_children
    assert [e.event_type for e in rep.batch.events] == ["child_started", "child_started"]
    assert rep.batch.children == []  # nothing to insert: an offline replay writes nothing
