"""``cn.start()`` takes the caller's trace context from the source registered in telemetry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from continuum_nb.workflow import WorkflowDef

TRACE = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
GIVEN = b"00-11111111111111111111111111111111-2222222222222222-01"


@pytest.fixture
def inst() -> Iterator[cn.Instance]:
    instance = cn.Instance(
        f"mem-{uuid.uuid4().hex[:8]}",
        database_url="postgresql://unused@/memory",
        store=MemoryStore(),
        clock=VirtualClock(),
        poll_interval=0.05,
    )
    yield instance
    instance.stop()
    instance._store = None  # the memory store needs no closing
    instance.close()


@pytest.fixture
def wf(inst: cn.Instance) -> WorkflowDef:
    async def traced() -> str:
        return "ok"

    definition = WorkflowDef(traced, name="traced")
    inst.registry.register(definition)  # this instance only
    return definition


@pytest.fixture
def source() -> Iterator[list[int]]:
    """Registers a source returning TRACE; yields the list its calls are counted in."""
    calls: list[int] = []

    def fn() -> bytes:
        calls.append(1)
        return TRACE

    telemetry.set_trace_context_source(fn)
    yield calls
    assert telemetry.remove_trace_context_source(fn)


def _stored(inst: cn.Instance, run: cn.Run) -> bytes | None:
    assert cn.wait(run.id, timeout=20, instance=inst) == "ok"
    return cn.api.get_run(run.id, instance=inst).trace_context


def test_start_stores_what_the_registered_source_returns(
    inst: cn.Instance, wf: WorkflowDef, source: list[int]
) -> None:
    run = cn.start(wf, {}, instance=inst)
    assert source == [1]
    assert _stored(inst, run) == TRACE


def test_an_explicit_trace_context_wins_and_the_source_is_not_asked(
    inst: cn.Instance, wf: WorkflowDef, source: list[int]
) -> None:
    run = cn.start(wf, {}, instance=inst, trace_context=GIVEN)
    assert source == []
    assert _stored(inst, run) == GIVEN


def test_without_a_source_no_trace_context_is_stored(inst: cn.Instance, wf: WorkflowDef) -> None:
    assert telemetry.current_trace_context() is None
    assert _stored(inst, cn.start(wf, {}, instance=inst)) is None


def test_removing_a_source_that_is_not_registered_changes_nothing(source: list[int]) -> None:
    assert not telemetry.remove_trace_context_source(lambda: None)
    assert telemetry.current_trace_context() == TRACE


def test_a_source_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        telemetry.set_trace_context_source(TRACE)  # type: ignore[arg-type]
