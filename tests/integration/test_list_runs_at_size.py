"""Listing runs on a generated database (thousands of runs, many sharing a start time): keyset
paging never skips or repeats a run while runs are inserted between pages, for ``cn.list_runs``
(newest first, ties by id descending) and the observer's list (ties by id ascending); bad input
is one clear line. benchmarks/scale.py measures the same queries at a million runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.store.observer_sql import ObserverQueries

pytestmark = pytest.mark.postgres

RUNS = 3000
T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)

# Set-based, in the migrated schema: runs g = 1..RUNS, seven per second of started_at (ties).
GENERATE = """
INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, completed_at, last_seq)
SELECT gen_random_uuid(), 'wf_' || (g %% 3), 'v1',
       (ARRAY['completed', 'failed', 'suspended', 'cancelled'])[1 + g %% 4], '{}'::jsonb,
       %(t0)s::timestamptz + make_interval(secs => g / 7), NULL, 0
  FROM generate_series(1, %(n)s) AS g
RETURNING id
"""


@pytest.fixture
def inst(db_url: str) -> Iterator[cn.Instance]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(GENERATE, {"t0": T0, "n": RUNS})
        conn.execute("ANALYZE continuum_runs")
    instance = cn.Instance(f"size-{uuid.uuid4().hex[:6]}", database_url=db_url, run_engine=False)
    yield instance
    instance.close()


def _insert(db_url: str, started_at: datetime, n: int, state: str = "completed") -> set[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at) "
            "SELECT gen_random_uuid(), 'wf_0', 'v1', %s, '{}'::jsonb, %s FROM generate_series(1, %s) "
            "RETURNING id", (state, started_at, n)).fetchall()
    return {str(r[0]) for r in rows}


def _ids(db_url: str, where: str = "true") -> set[str]:
    with psycopg.connect(db_url) as conn:
        return {str(r[0]) for r in conn.execute(f"SELECT id FROM continuum_runs WHERE {where}")}  # noqa: S608


@pytest.mark.parametrize("filters", [{}, {"state": "failed"}, {"workflow": "wf_1"}], ids=["all", "state", "workflow"])
def test_paging_neither_skips_nor_repeats_while_runs_are_inserted(inst: cn.Instance, db_url: str,
                                                                  filters: dict[str, Any]) -> None:
    where = " AND ".join(f"{k} = '{v}'" for k, v in filters.items()) or "true"
    before = _ids(db_url, where)
    inserted: set[str] = set()
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = cn.list_runs(limit=97, cursor=cursor, instance=inst, **filters)
        seen += [r.id for r in page.runs]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        last = page.runs[-1]
        # New runs: newer than everything, and tied with the page's last run (some of those
        # sort before the cursor, some after it: the latter are still to come, once).
        inserted |= _insert(db_url, datetime.now(timezone.utc), 5, filters.get("state", "completed"))
        assert last.started_at is not None
        inserted |= _insert(db_url, last.started_at, 3, filters.get("state", "completed"))
    assert pages > 5
    assert len(seen) == len(set(seen)), "a run was listed twice"
    assert before <= set(seen), f"{len(before - set(seen))} runs were skipped"
    assert set(seen) <= before | inserted


def test_observer_paging_neither_skips_nor_repeats_while_runs_are_inserted(inst: cn.Instance, db_url: str) -> None:
    before = _ids(db_url)
    obs = ObserverQueries(db_url)
    try:
        seen: list[uuid.UUID] = []
        after = None
        inserted: set[str] = set()
        while True:
            rows = obs.list_runs(limit=101, after=after)
            page, more = rows[:100], len(rows) > 100
            seen += [r.id for r in page]
            if not more:
                break
            after = (page[-1].started_at, page[-1].id)
            inserted |= _insert(db_url, datetime.now(timezone.utc), 5)
            inserted |= _insert(db_url, page[-1].started_at, 3)
        assert len(seen) == len(set(seen))
        assert before <= {str(i) for i in seen}
        assert {str(i) for i in seen} <= before | inserted
        # a run-id prefix finds the runs whose id starts with it, by a range of the primary key
        target = seen[len(seen) // 2]
        found = obs.list_runs(limit=50, search=str(target)[:6])
        assert target in [r.id for r in found] and all(str(r.id).startswith(str(target)[:6]) for r in found)
    finally:
        obs.close()


def test_bad_input_is_one_clear_line(inst: cn.Instance) -> None:
    page = cn.list_runs(limit=10, state="failed", instance=inst)
    assert page.next_cursor is not None
    with pytest.raises(ValueError) as info:
        cn.list_runs(limit=10, state="completed", cursor=page.next_cursor, instance=inst)
    assert "made for another filter" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError) as info:
        cn.list_runs(state="finished", instance=inst)
    assert str(info.value) == ("unknown state 'finished'; states are running, suspended, completed, failed, "
                               "cancelled, drifted")
    with pytest.raises(ValueError) as info:
        cn.list_runs(started_after=T0, started_before=T0 + timedelta(hours=1), cursor=page.next_cursor,
                     instance=inst)
    assert "made for another filter" in str(info.value) and "\n" not in str(info.value)
