"""The store side of continue-as-new (store/chains.py), on MemoryStore and PostgresStore: a
``ContinuingWake`` commits the end of the run and its successor in one transaction, moves the
undelivered signals, the signal keys and the children that have not ended, links the chain; a refused wake writes
neither."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from continuum_nb.errors import LeaseLost
from continuum_nb.store.base import CHANNEL_WAKE, Event, NewRun
from continuum_nb.store.chains import ChainLinks, Continuation, ContinuingWake
from continuum_nb.store.memory import MemoryStore


def now() -> datetime:
    return datetime.now(timezone.utc)


def leased_run(store: Any, *, workflow: str = "sub", attributes: dict[str, Any] | None = None,
               trace: bytes | None = None) -> tuple[uuid.UUID, int]:
    rid = uuid.uuid4()
    token = store.create_run(
        NewRun(rid, workflow, "v1", {"n": 1}, now(), trace_context=trace, attributes=attributes,
               retention=timedelta(days=3)), owner="e1")
    return rid, token


def child_of(store: Any, parent: uuid.UUID, state: str) -> uuid.UUID:
    """A run whose parent is ``parent`` in ``state``, written as a child workflow's start would."""
    cid = uuid.uuid4()
    store.create_run(NewRun(cid, "kid", "k1", {}, now()))
    if isinstance(store, MemoryStore):
        store.set_parent(cid, parent)
        store._runs[cid].state = state
    else:
        with psycopg.connect(store.db_url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_runs SET parent_run_id = %s, state = %s WHERE id = %s", (parent, state, cid))
    return cid


def parent_of(store: Any, run_id: uuid.UUID) -> uuid.UUID | None:
    links: ChainLinks = store.chain_links(run_id)
    return links.parent_run_id


def continuing(rid: uuid.UUID, token: int, nxt: uuid.UUID, *, seq: int = 1, version: str = "same",
               inp: dict[str, Any] | None = None) -> ContinuingWake:
    return ContinuingWake(
        run_id=rid, lease_token=token, now=now(), state="completed", result={"continued": str(nxt)},
        events=[Event(seq, "run_continued_as_new", {"workflow": "sub", "ordinal": 0, "next_run_id": str(nxt),
                                                     "input": inp or {"n": 2}, "version": version})],
        continuation=Continuation(nxt, inp or {"n": 2}, version),
    )


def test_a_continuing_wake_ends_the_run_and_inserts_its_successor(store: Any) -> None:
    rid, token = leased_run(store, attributes={"team": "a"}, trace=b"00-trace")
    listener = store.listen([CHANNEL_WAKE])
    nxt = uuid.uuid4()
    store.commit_wake(continuing(rid, token, nxt))
    old, new = store.get_run(rid), store.get_run(nxt)
    assert (old.state, old.result, old.lease_owner) == ("completed", {"continued": str(nxt)}, None)
    assert (new.state, new.workflow, new.version_hash, new.input) == ("suspended", "sub", "v1", {"n": 2})
    assert new.next_wakeup_at is not None and new.lease_owner is None  # runnable by any engine
    assert (new.attributes, new.retention, new.trace_context) == ({"team": "a"}, timedelta(days=3), b"00-trace")
    assert store.load_journal(nxt) == []
    # one chain: the first run's id is the correlation of both
    assert store.chain_links(rid) == ChainLinks(rid, None, nxt, None)
    assert store.chain_links(nxt) == ChainLinks(rid, rid, None, None)
    assert store.chain_current(rid) == nxt and store.chain_current(nxt) == nxt
    notes = []
    for _ in range(20):
        notes += listener.wait(0.5)
        if any(n.payload == str(nxt) for n in notes):
            break
    assert any(n.payload == str(nxt) for n in notes)
    listener.close()


def test_undelivered_signals_and_live_children_move_to_the_successor(store: Any) -> None:
    rid, token = leased_run(store)
    kept = store.send_signal(rid, "tick", 1, now())
    moved_a = store.send_signal(rid, "tick", 2, now())
    moved_b, _ = store.send_signal_once(rid, "other", "k-1", 3, now())
    live = child_of(store, rid, "suspended")
    drifted = child_of(store, rid, "drifted")
    ended = child_of(store, rid, "completed")
    nxt = uuid.uuid4()
    wake = continuing(rid, token, nxt, seq=2)
    wake.events.insert(0, Event(1, "signal_received", {"name": "tick", "payload": 1, "signal_id": kept,
                                                       "awaited_seq": None, "ordinal": 0}))
    wake.consumed_signals = {kept: 1}
    store.commit_wake(wake)
    assert store.pending_signals(rid) == []
    assert [(s.id, s.payload) for s in store.pending_signals(nxt)] == [(moved_a, 2), (moved_b, 3)]
    assert parent_of(store, live) == nxt and parent_of(store, drifted) == nxt
    assert parent_of(store, ended) == rid  # it ended: it stays the old run's
    # its signal key went with it: the same key sent to the successor is a duplicate
    assert store.send_signal_once(nxt, "other", "k-1", 4, now()) == (moved_b, False)


def test_a_chain_of_three_shares_the_first_runs_id(store: Any) -> None:
    rid, token = leased_run(store)
    second, third = uuid.uuid4(), uuid.uuid4()
    store.commit_wake(continuing(rid, token, second))
    claimed = store.claim_run(second, "e2", 30.0)
    store.commit_wake(continuing(second, claimed.lease_token, third, inp={"n": 3}))
    assert store.chain_links(third) == ChainLinks(rid, second, None, None)
    assert store.chain_current(rid) == third and store.get_run(third).input == {"n": 3}


def test_newest_takes_the_newest_stored_version(store: Any) -> None:
    store.save_version("sub", "v1", "src1", "module")
    store.save_version("sub", "v2", "src2", "module")
    rid, token = leased_run(store)
    nxt = uuid.uuid4()
    store.commit_wake(continuing(rid, token, nxt, version="newest"))
    assert store.get_run(nxt).version_hash == "v2"


def test_a_refused_continuing_wake_writes_nothing(store: Any) -> None:
    rid, token = leased_run(store)
    nxt = uuid.uuid4()
    sig = store.send_signal(rid, "tick", 1, now())
    with pytest.raises(LeaseLost):
        store.commit_wake(continuing(rid, token + 1000, nxt))
    assert store.get_run(nxt) is None and store.get_run(rid).state == "running"
    assert [s.id for s in store.pending_signals(rid)] == [sig]
    taken = store.create_run(NewRun(uuid.uuid4(), "sub", "v1", {}, now()))
    assert taken is None
    existing = store.list_runs(limit=5)[0].id
    with pytest.raises(ValueError, match="already exists"):
        store.commit_wake(continuing(rid, token, existing))
    assert store.get_run(rid).state == "running" and store.load_journal(rid) == []
    assert store.chain_links(rid) == ChainLinks()


def test_a_first_wake_may_continue_as_new(store: Any) -> None:
    rid, nxt = uuid.uuid4(), uuid.uuid4()
    wake = continuing(rid, 0, nxt)
    store.create_run(NewRun(rid, "sub", "v1", {"n": 1}, now()), owner="e1", first_wake=wake)
    assert store.get_run(rid).result == {"continued": str(nxt)}
    assert store.chain_links(nxt).continued_from_run_id == rid and store.get_run(nxt).state == "suspended"
