"""The store contract of child runs, against MemoryStore and PostgresStore (every test server):
a wake inserts its children (runnable, linked, once), a child's final commit wakes its parent,
a wake that awaits an ended child is woken again, cancel follows on_parent_cancel, and depth."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from continuum_nb.store.base import CHANNEL_WAKE, NewChild, Wake
from tests.unit.test_store_contract import (
    T0,
    ev,
    has,
    new_run,
    now,
    wait_for,
)


@pytest.fixture
def st(store: Any) -> Any:
    """tests/unit/conftest.py's ``store`` fixture: each store in turn."""
    return store


def _child(parent: uuid.UUID, policy: str = "cancel", workflow: str = "kid") -> NewChild:
    return NewChild(uuid.uuid4(), workflow, "v1", {"x": 1}, T0, parent, policy, timedelta(days=1))


def _start_children(st: Any, parent: uuid.UUID, token: int, *kids: NewChild, seq: int = 1) -> None:
    events = [ev(seq + i, "child_started", workflow=k.workflow, ordinal=i, child_run_id=str(k.id))
              for i, k in enumerate(kids)]
    st.commit_wake(Wake(run_id=parent, lease_token=token, now=T0, state="suspended", events=events,
                           new_children=list(kids), awaiting_children=[k.id for k in kids]))


def _finish(st: Any, run_id: uuid.UUID, state: str = "completed") -> None:
    (claimed,) = [r for r in st.claim_runs("w2", ["kid"], now(), 30, 50) if r.id == run_id]
    st.commit_wake(Wake(run_id=run_id, lease_token=claimed.lease_token, now=T0, state=state, result=7))


def test_a_wake_inserts_its_children_runnable_and_linked_once(st: Any) -> None:
    parent, token = new_run(st)
    listener = st.listen([CHANNEL_WAKE])
    a, b = _child(parent), _child(parent, "abandon")
    _start_children(st, parent, token, a, b)
    assert has(CHANNEL_WAKE, str(a.id))(wait_for(listener, has(CHANNEL_WAKE, str(a.id))))
    for kid in (a, b):
        rec = st.get_run(kid.id)
        assert (rec.state, rec.workflow, rec.input, rec.lease_owner, rec.next_wakeup_at) == \
            ("suspended", "kid", {"x": 1}, None, T0)
        assert (rec.parent_run_id, rec.correlation_id, rec.retention) == (parent, parent, timedelta(days=1))
    assert {r.id for r in st.claim_runs("w2", ["kid"], now(), 30, 10)} == {a.id, b.id}
    # the same child again (a start committed before): no second run, the first one unchanged
    st.commit_wake(Wake(run_id=parent, lease_token=token, now=T0, state="suspended", new_children=[a]))
    assert st.get_run(a.id).lease_owner == "w2"
    assert st.get_run(parent).parent_run_id is None and st.run_depth(parent) == 0
    assert st.run_depth(a.id) == 1


def test_a_childs_end_makes_its_parent_runnable_in_the_same_commit(st: Any) -> None:
    parent, token = new_run(st)
    kid = _child(parent)
    _start_children(st, parent, token, kid)
    st.commit_wake(Wake(run_id=parent, lease_token=token, now=T0, state="suspended", release=True,
                           awaiting_children=[kid.id]))
    assert st.get_run(parent).next_wakeup_at is None
    listener = st.listen([CHANNEL_WAKE])
    _finish(st, kid.id)
    assert has(CHANNEL_WAKE, str(parent))(wait_for(listener, has(CHANNEL_WAKE, str(parent))))
    assert st.get_run(parent).next_wakeup_at == T0
    assert [r.id for r in st.claim_runs("e1", ["order"], now(), 30, 10)] == [parent]


def test_a_wake_awaiting_an_ended_child_is_woken_again(st: Any) -> None:
    parent, token = new_run(st)
    kid = _child(parent)
    _start_children(st, parent, token, kid)
    _finish(st, kid.id, "failed")
    result = st.commit_wake(Wake(run_id=parent, lease_token=token, now=T0 + timedelta(seconds=1),
                                    state="suspended", awaiting_children=[kid.id]))
    assert result.signal_pending
    other, token2 = new_run(st)
    waiting = _child(other)
    _start_children(st, other, token2, waiting)
    assert not st.commit_wake(Wake(run_id=other, lease_token=token2, now=T0, state="suspended",
                                      awaiting_children=[waiting.id])).signal_pending


def test_cancel_follows_on_parent_cancel_down_the_tree_and_wakes_the_parent(st: Any) -> None:
    root, token = new_run(st)
    follows, abandoned = _child(root), _child(root, "abandon")
    _start_children(st, root, token, follows, abandoned)
    grand = _child(follows.id)
    claimed = {r.id: r.lease_token for r in st.claim_runs("w2", ["kid"], now(), 30, 10)}
    _start_children(st, follows.id, claimed[follows.id], grand)
    assert st.run_depth(grand.id) == 2
    st.cancel_run(root, T0)
    states = [st.get_run(k.id).state for k in (follows, abandoned, grand)]
    assert states == ["cancelled", "suspended", "cancelled"]
    # a child cancelled on its own wakes its (still active) parent
    parent, token3 = new_run(st)
    kid = _child(parent)
    _start_children(st, parent, token3, kid)
    st.commit_wake(Wake(run_id=parent, lease_token=token3, now=T0, state="suspended", release=True))
    st.cancel_run(kid.id, T0 + timedelta(seconds=5))
    assert st.get_run(parent).next_wakeup_at == T0 + timedelta(seconds=5)


def test_a_wake_cancels_its_losing_children_without_waking_itself(st: Any) -> None:
    parent, token = new_run(st)
    kid = _child(parent)
    _start_children(st, parent, token, kid)
    st.commit_wake(Wake(run_id=parent, lease_token=token, now=T0, state="suspended",
                           events=[ev(2, "child_cancelled", started_seq=1)], cancelled_children=[kid.id],
                           release=True))
    assert st.get_run(kid.id).state == "cancelled"
    assert st.get_run(parent).next_wakeup_at is None
