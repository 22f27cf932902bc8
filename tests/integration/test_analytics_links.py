"""The views children and chains over runs linked as child workflows and continue-as-new write
them (parent_run_id, correlation_id, continued_from_run_id), on both ways of building the views."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import psycopg
import pytest

from continuum_nb import analytics

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def _insert(conn: psycopg.Connection[Any], run_id: uuid.UUID, workflow: str, state: str, minutes: int,
            seconds: float | None, *, parent: uuid.UUID | None = None, correlation: uuid.UUID | None = None,
            continued_from: uuid.UUID | None = None, result: Any = None) -> None:
    started = T0 + timedelta(minutes=minutes)
    conn.execute(
        "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, result, started_at, completed_at, "
        "parent_run_id, correlation_id, continued_from_run_id) VALUES (%s, %s, 'v1', %s, '{}', %s, %s, %s, %s, %s, %s)",
        (run_id, workflow, state, None if result is None else json.dumps(result), started,
         None if seconds is None else started + timedelta(seconds=seconds), parent, correlation, continued_from))


@pytest.fixture
def linked(db_url: str) -> Iterator[tuple[str, dict[str, uuid.UUID]]]:
    ids = {name: uuid.uuid4() for name in ("order", "pay", "ship", "label", "plain", "poll1", "poll2", "poll3")}
    with psycopg.connect(db_url, autocommit=True) as conn:
        # a parent, two children and a grandchild; children carry the parent's id as correlation_id
        _insert(conn, ids["order"], "order", "running", 0, None)
        _insert(conn, ids["pay"], "pay", "completed", 1, 2.5, parent=ids["order"], correlation=ids["order"])
        _insert(conn, ids["ship"], "ship", "running", 2, None, parent=ids["order"], correlation=ids["order"])
        _insert(conn, ids["label"], "label", "failed", 3, 0.25, parent=ids["ship"], correlation=ids["order"])
        _insert(conn, ids["plain"], "order", "completed", 4, 1.0)
        # a continue-as-new chain: each earlier run completed with {"continued": next id}
        chain = ids["poll1"]
        _insert(conn, ids["poll1"], "poll", "completed", 10, 60, correlation=chain, result={"continued": str(ids["poll2"])})
        _insert(conn, ids["poll2"], "poll", "completed", 11, 60, correlation=chain, continued_from=ids["poll1"],
                result={"continued": str(ids["poll3"])})
        _insert(conn, ids["poll3"], "poll", "suspended", 12, None, correlation=chain, continued_from=ids["poll2"])
        for seq, run in enumerate((ids["poll1"], ids["poll2"]), start=1):
            conn.execute("INSERT INTO continuum_events (run_id, seq, event_type, payload) "
                         "VALUES (%s, 1, 'run_continued_as_new', %s)",
                         (run, json.dumps({"next_run_id": str((ids["poll2"], ids["poll3"])[seq - 1])})))
    yield db_url, ids
    analytics.close_shared()


@pytest.fixture(params=["scanner", "copy"])
def con(request: pytest.FixtureRequest, linked: tuple[str, dict[str, uuid.UUID]]) -> Iterator[duckdb.DuckDBPyConnection]:
    c = analytics.connect(database_url=linked[0], mode=request.param)
    yield c
    c.close()


def test_children_one_row_per_child_with_depth(con: duckdb.DuckDBPyConnection,
                                               linked: tuple[str, dict[str, uuid.UUID]]) -> None:
    _, ids = linked
    rows = con.execute("SELECT parent_run_id, run_id, workflow, state, correlation_id, duration_s, depth "
                       "FROM children ORDER BY depth, workflow").fetchall()
    assert rows == [
        (ids["order"], ids["pay"], "pay", "completed", ids["order"], 2.5, 1),
        (ids["order"], ids["ship"], "ship", "running", ids["order"], None, 1),
        (ids["ship"], ids["label"], "label", "failed", ids["order"], 0.25, 2),
    ]
    started = con.execute("SELECT started_at, completed_at FROM children WHERE run_id = ?", [ids["pay"]]).fetchone()
    assert started == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=1, seconds=2.5))


def test_chains_one_row_per_run_with_position_and_current_run(con: duckdb.DuckDBPyConnection,
                                                              linked: tuple[str, dict[str, uuid.UUID]]) -> None:
    _, ids = linked
    rows = con.execute("SELECT correlation_id, first_run_id, position, run_id, continued_from_run_id, state, "
                       "current_run_id FROM chains ORDER BY position").fetchall()
    p1, p2, p3 = ids["poll1"], ids["poll2"], ids["poll3"]
    assert rows == [
        (p1, p1, 1, p1, None, "completed", p3),
        (p1, p1, 2, p2, p1, "completed", p3),
        (p1, p1, 3, p3, p2, "suspended", p3),
    ]
    times = con.execute("SELECT started_at, completed_at FROM chains WHERE position = 3").fetchone()
    assert times == (T0 + timedelta(minutes=12), None)


def test_views_are_listed_and_empty_without_links(db_url: str) -> None:
    assert analytics.LINK_VIEWS == ("children", "chains")
    for mode in ("scanner", "copy"):
        c = analytics.connect(database_url=db_url, mode=mode)
        for view in analytics.LINK_VIEWS:
            assert c.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)  # noqa: S608 - constant names
        c.close()
