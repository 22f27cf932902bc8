"""Engine behaviour (tests/engine_cases.py) on the in-memory store: fast, no database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from tests.engine_cases import *  # noqa: F403 - the shared cases


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_instance(clock: VirtualClock) -> Iterator[Any]:
    store = MemoryStore()
    made: list[cn.Instance] = []

    def make(**settings: Any) -> cn.Instance:
        settings.setdefault("poll_interval", 0.05)
        settings.setdefault("lease_ttl", 5.0)
        inst = cn.Instance(f"mem-{uuid.uuid4().hex[:8]}", database_url="postgresql://unused@/memory",
                           store=store, clock=clock, **settings)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.stop()
        inst._store = None  # the shared memory store needs no closing
        inst.close()
