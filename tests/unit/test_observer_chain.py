"""The observer's run header names the chain around a run that continued as new: "continued as
<next id>" on the first run, "continued from <previous id>" on its successor."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from continuum_nb.observer import static
from continuum_nb.store.base import Event, NewRun
from continuum_nb.store.chains import Continuation, ContinuingWake
from continuum_nb.store.observer_sql import ObserverQueries
from continuum_nb.store.postgres import PostgresStore


def test_the_header_shows_both_links_of_a_chain(db_url: str) -> None:
    store = PostgresStore(db_url, pool_size=1)
    first, nxt = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(timezone.utc)
    token = store.create_run(NewRun(first, "sub", "v1", {"n": 1}, now), owner="e1")
    assert token is not None
    store.commit_wake(ContinuingWake(
        run_id=first, lease_token=token, now=now, state="completed", result={"continued": str(nxt)},
        events=[Event(1, "run_continued_as_new", {"workflow": "sub", "ordinal": 0, "next_run_id": str(nxt),
                                                   "input": {"n": 2}, "version": "same"})],
        continuation=Continuation(nxt, {"n": 2})))
    store.close()
    queries = ObserverQueries(db_url)
    try:
        one, two = queries.run_detail(first), queries.run_detail(nxt)
    finally:
        queries.close()
    assert one is not None and two is not None
    head_one, head_two = static.detail_view(one.run), static.detail_view(two.run)
    assert head_one["continued as"] == str(nxt) and "continued from" not in head_one
    assert head_two["continued from"] == str(first) and "continued as" not in head_two
    assert f"<th>continued as</th><td>{nxt}</td>" in static.header_html(one.run)


def test_a_run_of_its_own_shows_no_chain() -> None:
    view = static.detail_view({"id": "r", "workflow": "w", "state": "completed", "continued_from_run_id": None,
                               "continued_to_run_id": None})
    assert "continued as" not in view and "continued from" not in view
