"""The engine contract: every test in this folder runs on every store, through ``store_kind``.

Stores: ``memory`` (the in-memory store: fast, no database; always) and each real server that
``CONTINUUM_TEST_SERVERS`` selects (``pg15``, ``pg18``; see tests/servers.py), whose tests are
marked ``postgres``. Test ids end in the store: ``test_cancel[memory]``, ``test_cancel[pg15]``.

A test that needs particular stores says so, and is collected only on those:
``@pytest.mark.stores("postgres")`` (every real server: psycopg, ``admin_url``, NOTIFY) or
``@pytest.mark.stores("memory")``.

Fixtures: ``make_instance(clock_=None, **settings) -> Instance`` (instances sharing one store, a
MemoryStore or a fresh database of the test's server; closed after the test) and ``clock`` (a
VirtualClock). On a real server, ``pg_server`` is the test's server, so ``db_url`` and
``admin_url`` of tests/conftest.py work as everywhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from tests.servers import server_names

_STORE_GROUPS = ("memory", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stores(*groups): run only on these stores: memory, postgres (every real server)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``store_kind`` (session-scoped, so the tests are grouped by store)."""
    if "store_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("stores")
    groups = set(marker.args) if marker is not None else set(_STORE_GROUPS)
    unknown = groups - set(_STORE_GROUPS)
    if unknown or not groups:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: stores{marker.args if marker else ()} names no store "
            f"or unknown ones {sorted(unknown)}; use {', '.join(_STORE_GROUPS)}"
        )
    kinds = []
    if "memory" in groups:
        kinds.append(pytest.param("memory", id="memory"))
    if "postgres" in groups:
        kinds += [pytest.param(name, id=name, marks=pytest.mark.postgres) for name in server_names()]
    metafunc.parametrize("store_kind", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store this test runs on: ``memory`` or the name of a real test server."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_server(store_kind: str, pg_servers: Callable[[str], str]) -> str:
    """The admin conninfo of this test's server: tests/conftest.py's ``pg_server``, chosen by
    ``store_kind`` here instead of a parameter of its own."""
    if store_kind == "memory":
        pytest.fail('a test on the memory store has no PostgreSQL server: mark it stores("postgres")')
    return pg_servers(store_kind)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_instance(store_kind: str, clock: VirtualClock, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[cn.Instance] = []
    if store_kind == "memory":
        store = MemoryStore()

        def make(clock_: VirtualClock | None = None, **settings: Any) -> cn.Instance:
            settings.setdefault("poll_interval", 0.05)
            settings.setdefault("lease_ttl", 5.0)
            inst = cn.Instance(f"mem-{uuid.uuid4().hex[:8]}", database_url="postgresql://unused@/memory",
                               store=store, clock=clock_ or clock, **settings)
            made.append(inst)
            return inst

        yield make
        for inst in made:
            inst.stop()
            inst._store = None  # the shared memory store needs no closing
            inst.close()
        return

    db_url = request.getfixturevalue("db_url")  # torn down after the instances (set up first)

    def make_pg(clock_: VirtualClock | None = None, **settings: Any) -> cn.Instance:
        settings.setdefault("poll_interval", 0.2)
        settings.setdefault("lease_ttl", 5.0)
        inst = cn.Instance(f"pg-{uuid.uuid4().hex[:8]}", database_url=db_url, clock=clock_ or clock, **settings)
        made.append(inst)
        return inst

    yield make_pg
    for inst in made:
        inst.close()
