"""The pytest fixtures of ``pytest_plugins = ["continuum_nb.testing"]``.

- ``continuum_env``: a :class:`~continuum_nb.testing.Environment` (in-memory store, a virtual
  clock that skips ahead by itself, stubs), closed after the test.
- ``virtual_clock``: a :class:`VirtualClock`; ``virtual_clock.advance(cn.days(3))`` fires every
  timer that became due, at once.
- ``continuum_database_url``: a fresh, migrated database for the test (on
  ``CONTINUUM_TEST_ADMIN_URL``'s server when set, else the embedded PostgreSQL), dropped after.
- ``continuum_instance``: a fresh ``cn.Instance`` on that database, driven by ``virtual_clock``,
  stopped after the test. Pass ``instance=continuum_instance`` to API calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..engine.clock import VirtualClock
from .databases import drop_database, fresh_database
from .environment import Environment

__all__ = ["continuum_database_url", "continuum_env", "continuum_instance", "virtual_clock"]


@pytest.fixture
def continuum_env() -> Iterator[Environment]:
    env = Environment()
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def continuum_database_url() -> Iterator[str]:
    name, url = fresh_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def continuum_instance(continuum_database_url: str, virtual_clock: VirtualClock) -> Iterator[Any]:
    from ..engine.instance import Instance

    inst = Instance(f"test-{uuid.uuid4().hex[:8]}", database_url=continuum_database_url,
                    clock=virtual_clock, poll_interval=0.2, lease_ttl=10.0)
    try:
        yield inst
    finally:
        inst.close()
