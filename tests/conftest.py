"""Shared fixtures: one fresh, migrated database per test, on every configured server.

Servers (``CONTINUUM_TEST_SERVERS``, comma-separated, default ``pg15,pg18``; see tests/servers.py):
- ``pg15``: the machine's PostgreSQL (``CONTINUUM_TEST_PG15_URL``, default
  ``postgresql://postgres@127.0.0.1:5432/postgres``).
- ``pg18``: an embedded PostgreSQL 18 started for the test session in a temp dir and stopped at
  the end, also when tests fail.

A test marked ``@pytest.mark.servers("pg18")`` is skipped on the other servers.

Each server gets a template database migrated once per session; each test gets
``CREATE DATABASE ... TEMPLATE`` (milliseconds) and it is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.servers import admin_conninfo, server_names, start_server, stop_all

#: Per session (several sessions may share one server): the PID lets a later session drop the
#: template of a session that was killed before its teardown.
TEMPLATE = f"cn_test_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
_TEMPLATE_PREFIX = "cn_test_template_"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "servers(*names): run only on these test servers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("servers")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "pg_server" not in callspec.params:
            continue
        server = callspec.params["pg_server"]
        if server not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"runs only on {', '.join(marker.args)}, not {server}"))


@pytest.fixture(scope="session")
def pg_servers() -> Iterator[Callable[[str], str]]:
    """``serve(name)``: the admin conninfo of the test server ``name``, started on first use and
    given a migrated template once per session (dropped at the end). ``pg_server`` below and the
    engine tests' ``store_kind`` (tests/engine/conftest.py) both go through it."""
    ready: dict[str, str] = {}

    def serve(name: str) -> str:
        if name not in ready:
            ready[name] = _start_with_template(name)
        return ready[name]

    try:
        yield serve
    finally:
        for admin in ready.values():
            _drop_db(admin, TEMPLATE)


def _start_with_template(name: str) -> str:
    admin = start_server(name)
    from continuum_nb.store.migrate import migrate

    with psycopg.connect(admin, autocommit=True) as conn:
        _drop_dead_templates(conn)
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    try:
        migrate(_with_db(admin, TEMPLATE))
    except BaseException:
        _drop_db(admin, TEMPLATE)
        raise
    return admin


@pytest.fixture(scope="session", params=server_names())
def pg_server(request: pytest.FixtureRequest, pg_servers: Callable[[str], str]) -> str:
    """The admin conninfo of one test server (started if needed), with a migrated template."""
    return pg_servers(request.param)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_dead_templates(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (_TEMPLATE_PREFIX + "%",)
    ).fetchall()
    for (name,) in rows:
        pid = str(name)[len(_TEMPLATE_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    try:
        yield
    finally:
        stop_all()


def _with_db(conninfo: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(conninfo, dbname=dbname)


def _fresh_db(admin: str, template: str | None) -> tuple[str, str]:
    name = "cn_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        if template:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        else:
            conn.execute(f"CREATE DATABASE {name}")
    return name, _with_db(admin, name)


def _drop_db(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(pg_server: str) -> Iterator[str]:
    """A fresh database with the current schema (a copy of the migrated template)."""
    name, url = _fresh_db(pg_server, TEMPLATE)
    try:
        yield url
    finally:
        _drop_db(pg_server, name)


@pytest.fixture
def empty_db_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database (no schema)."""
    name, url = _fresh_db(pg_server, None)
    try:
        yield url
    finally:
        _drop_db(pg_server, name)


@pytest.fixture
def admin_url(pg_server: str) -> str:
    return pg_server


__all__ = ["admin_conninfo"]
