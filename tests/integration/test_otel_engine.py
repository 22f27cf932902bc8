"""The OpenTelemetry bridge against the real engine and PostgreSQL.

Spans are collected with the SDK's in-memory exporter. A run that waits for a signal suspends
(its attempt ends and it is released), so the signal wakes a new attempt — on the same engine,
or after an engine restart on a new one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import continuum_nb as cn
from continuum_nb import otel
from continuum_nb.api import events, get_run
from continuum_nb.otel import decode_trace_context

pytestmark = pytest.mark.postgres


@cn.activity
def otel_prepare(order_id: str) -> str:
    return f"prepared:{order_id}"


@cn.activity
def otel_ship(order_id: str, by: str) -> str:
    return f"shipped:{order_id}:{by}"


@cn.workflow(name="otel_order")
async def otel_order(order_id: str) -> dict[str, str]:
    prepared = await otel_prepare(order_id)
    approval = await cn.signal("approve")
    shipped = await otel_ship(order_id, approval["by"])
    return {"prepared": prepared, "shipped": shipped}


_flaky_calls: dict[str, int] = {}


@cn.activity(retry=cn.Retry(max_attempts=3, backoff="constant", base=cn.seconds(0.05)))
def otel_flaky(key: str) -> int:
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] == 1:
        raise ConnectionError(f"first attempt of {key} fails")
    return _flaky_calls[key]


@cn.workflow(name="otel_retry")
async def otel_retry(key: str) -> int:
    return await otel_flaky(key)


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def named(self, name: str) -> list[ReadableSpan]:
        return sorted(
            (s for s in self.exporter.get_finished_spans() if s.name == name),
            key=lambda s: s.start_time or 0,
        )


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    handler_id = otel.setup(tracer_provider=s.provider)
    yield s
    otel.teardown(handler_id)


@pytest.fixture
def make_instance(db_url: str) -> Iterator[Callable[[], cn.Instance]]:
    """New instances on the test database under one name (a new one replaces the old)."""
    name = f"otel-{uuid.uuid4().hex[:8]}"
    made: list[cn.Instance] = []

    def make() -> cn.Instance:
        inst = cn.Instance(name=name, database_url=db_url)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def stored_trace_context(db_url: str, run_id: str) -> bytes | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT trace_context FROM continuum_runs WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    return None if row[0] is None else bytes(row[0])


def attempts_ended(spans: Spans, outcome: str) -> Callable[[], bool]:
    return lambda: any(
        (s.attributes or {}).get("continuum.outcome") == outcome for s in spans.named("continuum.run_attempt")
    )


def awaiting_signal(run_id: str, instance: str) -> Callable[[], bool]:
    """True once the run has journaled its signal wait and committed the suspension."""
    return lambda: get_run(run_id, instance=instance).state == "suspended" and any(
        e.event_type == "signal_awaited" for e in events(run_id, instance=instance)
    )


def traceparent(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_caller_span_parents_the_first_attempt_and_later_attempts_link_to_it(
    spans: Spans, make_instance: Callable[[], cn.Instance], db_url: str
) -> None:
    inst = make_instance()
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        run = cn.start(otel_order, {"order_id": "A1"}, instance=inst.name)
    caller_ctx = caller.get_span_context()
    wait_until("the run to suspend on its signal", awaiting_signal(run.id, inst.name))
    cn.signal(run.id, "approve", {"by": "ana"}, instance=inst.name)
    assert cn.wait(run.id, timeout=30, instance=inst.name) == {
        "prepared": "prepared:A1", "shipped": "shipped:A1:ana",
    }
    wait_until("the completed attempt span", attempts_ended(spans, "completed"))

    # the caller's traceparent is what the run stored
    assert decode_trace_context(stored_trace_context(db_url, run.id) or b"") == {
        "traceparent": f"00-{caller_ctx.trace_id:032x}-{caller_ctx.span_id:016x}-{int(caller_ctx.trace_flags):02x}"
    }
    attempts = spans.named("continuum.run_attempt")
    assert len(attempts) >= 2
    first, later = attempts[0], attempts[1:]
    assert first.parent is not None and first.parent.span_id == caller_ctx.span_id
    assert first.context.trace_id == caller_ctx.trace_id
    assert (first.attributes or {})["continuum.resumed"] is False
    for span in later:
        attrs = span.attributes or {}
        assert attrs["continuum.resumed"] is True
        assert span.parent is None
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
            (caller_ctx.trace_id, caller_ctx.span_id)
        ]
    for span in attempts:
        attrs = span.attributes or {}
        assert attrs["continuum.run_id"] == run.id
        assert attrs["continuum.workflow"] == "otel_order"
        assert attrs["continuum.instance"] == inst.name
        assert isinstance(attrs["continuum.lease_token"], int) and attrs["continuum.lease_token"] > 0
    assert (attempts[-1].attributes or {})["continuum.outcome"] == "completed"

    # one span per activity attempt, children of the stored (caller's) context
    acts = spans.named("continuum.activity_attempt")
    assert sorted((s.attributes or {})["continuum.activity"] for s in acts) == sorted(
        [otel_prepare.name, otel_ship.name]
    )
    for span in acts:
        assert span.parent is not None and span.parent.span_id == caller_ctx.span_id
        assert (span.attributes or {})["continuum.attempt"] == 1
        assert (span.attributes or {})["continuum.run_id"] == run.id


def test_context_of_a_root_first_attempt_is_persisted_once_and_survives_an_engine_restart(
    spans: Spans, make_instance: Callable[[], cn.Instance], db_url: str
) -> None:
    inst = make_instance()
    run = cn.start(otel_order, {"order_id": "B2"}, instance=inst.name)  # no caller span
    wait_until("the run to suspend on its signal", awaiting_signal(run.id, inst.name))
    wait_until("the first attempt span", lambda: spans.named("continuum.run_attempt"))
    first = spans.named("continuum.run_attempt")[0]
    assert first.parent is None and list(first.links) == []
    stored = wait_until("trace_context to be stored", lambda: stored_trace_context(db_url, run.id))
    assert decode_trace_context(stored) == {"traceparent": traceparent(first)}
    wait_until("the first activity attempt span", lambda: len(spans.named("continuum.activity_attempt")) == 1)

    inst.stop()  # the engine goes away; a new one on the same database finishes the run
    new = make_instance()
    cn.signal(run.id, "approve", {"by": "bo"}, instance=new.name)
    assert cn.wait(run.id, timeout=30, instance=new.name)["shipped"] == "shipped:B2:bo"
    wait_until("the completed attempt span", attempts_ended(spans, "completed"))

    assert stored_trace_context(db_url, run.id) == stored  # persisted once, never replaced
    attempts = spans.named("continuum.run_attempt")
    roots_without_links = [s for s in attempts if s.parent is None and not s.links]
    assert roots_without_links == [first]
    for span in attempts[1:]:
        assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
            (first.context.trace_id, first.context.span_id)
        ]
        assert (span.attributes or {})["continuum.resumed"] is True
    # replaying the journal on the new engine made no span for the already-finished activity
    acts = spans.named("continuum.activity_attempt")
    assert [(s.attributes or {})["continuum.activity"] for s in acts] == [otel_prepare.name, otel_ship.name]
    for span in acts:
        assert span.context.trace_id == first.context.trace_id


def test_each_activity_attempt_is_its_own_span(spans: Spans, make_instance: Callable[[], cn.Instance]) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        run = cn.start(otel_retry, {"key": key}, instance=inst.name)
    assert cn.wait(run.id, timeout=30, instance=inst.name) == 2
    wait_until("the completed attempt span", attempts_ended(spans, "completed"))
    acts = spans.named("continuum.activity_attempt")
    assert [((s.attributes or {})["continuum.attempt"], (s.attributes or {})["continuum.outcome"]) for s in acts] == [
        (1, "retried"), (2, "completed"),
    ]
    failed, ok = acts
    assert failed.status.status_code is StatusCode.ERROR
    assert "first attempt of" in (failed.status.description or "")
    [exc] = failed.events
    assert (exc.attributes or {})["exception.type"] == "builtins.ConnectionError"
    assert ok.status.status_code is StatusCode.OK
    for span in acts:
        assert span.context.trace_id == caller.get_span_context().trace_id


def test_a_run_started_by_a_pure_client_is_traced_under_the_callers_span(spans: Spans, db_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    client = cn.Instance(name=f"otel-client-{suffix}", database_url=db_url, run_engine=False)
    worker = cn.Instance(name=f"otel-worker-{suffix}", database_url=db_url)
    try:
        tracer = spans.provider.get_tracer("test")
        with tracer.start_as_current_span("caller") as caller:
            run = cn.start("otel_retry", {"key": uuid.uuid4().hex}, instance=client.name)
        caller_ctx = caller.get_span_context()
        assert decode_trace_context(stored_trace_context(db_url, run.id) or b"")["traceparent"].split("-")[2] == (
            f"{caller_ctx.span_id:016x}"
        )
        worker.start_engine()
        assert cn.wait(run.id, timeout=30, instance=worker.name) == 2
        wait_until("the completed attempt span", attempts_ended(spans, "completed"))
        first = spans.named("continuum.run_attempt")[0]
        assert first.parent is not None and first.parent.span_id == caller_ctx.span_id
        assert (first.attributes or {})["continuum.instance"] == worker.name
        assert (first.attributes or {})["continuum.resumed"] is False
    finally:
        client.close()
        worker.close()
