"""continuum_nb.testing: the helpers users' own tests get (fresh database, virtual clock)."""

from __future__ import annotations

import uuid

import psycopg

import continuum_nb as cn
from continuum_nb.testing import VirtualClock, drop_database, fresh_database
from continuum_nb.workflow import WorkflowDef


async def three_day_wait() -> str:
    await cn.timer(cn.days(3))
    return "done"


def test_virtual_clock_advances_days_at_once(admin_url: str) -> None:
    name, url = fresh_database(admin_url)
    try:
        with psycopg.connect(url) as conn:  # migrated
            assert conn.execute("SELECT count(*) FROM continuum_schema_migrations").fetchone()[0] > 0
        clock = VirtualClock()
        inst = cn.Instance(f"plugin-{uuid.uuid4().hex[:6]}", database_url=url, clock=clock, poll_interval=0.2)
        try:
            wf = WorkflowDef(three_day_wait, name="three_day_wait")
            inst.registry.register(wf)
            run = cn.start(wf, instance=inst)
            try:
                cn.wait(run.id, timeout=0.5, instance=inst)
                raise AssertionError("a 3-day timer fired without the clock moving")
            except TimeoutError:
                pass
            clock.advance(cn.days(3))
            assert cn.wait(run.id, timeout=30, instance=inst) == "done"
        finally:
            inst.close()
    finally:
        drop_database(name, admin_url)
    with psycopg.connect(admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


def test_drop_database_refuses_other_databases(admin_url: str) -> None:
    import pytest

    with pytest.raises(ValueError, match="not a test database"):
        drop_database("postgres", admin_url)
