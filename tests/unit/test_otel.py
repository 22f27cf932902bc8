"""The OpenTelemetry bridge (continuum_nb/otel.py), driven with synthetic telemetry events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from continuum_nb import otel, telemetry
from continuum_nb.otel import capture_trace_context, decode_trace_context, encode_trace_context


class Bridge:
    """A set-up bridge with its own provider and in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.handler_id = otel.setup(tracer_provider=self.provider)
        self.stored: list[bytes] = []

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def claim(self, run_id: str, token: int, *, resumed: bool, trace_context: bytes | None, **extra: Any) -> None:
        telemetry.emit(
            ("continuum", "run", "claimed"),
            {"system_time": 0},
            {
                "run_id": run_id, "workflow": "order", "instance": "default", "lease_token": token,
                "resumed": resumed, "trace_context": trace_context,
                "set_trace_context": self.stored.append, **extra,
            },
        )

    def end(self, run_id: str, token: int, what: tuple[str, str], **extra: Any) -> None:
        telemetry.emit(
            ("continuum", *what),
            {"duration": 1000},
            {"run_id": run_id, "workflow": "order", "instance": "default", "lease_token": token, **extra},
        )

    def activity(self, run_id: str, outcome: str, *, attempt: int = 1, trace_context: bytes | None, **extra: Any) -> None:
        md = {
            "run_id": run_id, "workflow": "order", "instance": "default", "activity": "charge",
            "attempt": attempt, "task_id": "t-1", "trace_context": trace_context,
        }
        telemetry.emit(("continuum", "activity", "started"), {}, md)
        telemetry.emit(("continuum", "activity", outcome), {"duration": 5_000_000}, {**md, **extra})


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    b = Bridge()
    yield b
    otel.teardown(b.handler_id)


def run_id() -> str:
    return str(uuid.uuid4())


def test_first_attempt_without_caller_span_is_a_root_whose_context_is_stored(bridge: Bridge) -> None:
    rid = run_id()
    bridge.claim(rid, 7, resumed=False, trace_context=None)
    bridge.end(rid, 7, ("run", "completed"))
    [span] = bridge.spans("continuum.run_attempt")
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        "continuum.run_id": rid, "continuum.workflow": "order", "continuum.instance": "default",
        "continuum.lease_token": 7, "continuum.resumed": False, "continuum.outcome": "completed",
    }
    assert span.status.status_code is StatusCode.OK
    [stored] = bridge.stored
    carrier = decode_trace_context(stored)
    ctx = span.get_span_context()
    assert carrier == {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"}


def test_first_attempt_is_a_child_of_the_callers_span_and_later_attempts_link_to_it(bridge: Bridge) -> None:
    tracer = bridge.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        stored = capture_trace_context()
    assert stored is not None
    rid = run_id()
    bridge.claim(rid, 1, resumed=False, trace_context=stored)
    bridge.end(rid, 1, ("run", "suspended"))
    bridge.claim(rid, 2, resumed=True, trace_context=stored)
    bridge.end(rid, 2, ("run", "completed"))
    first, second = bridge.spans("continuum.run_attempt")
    caller_ctx = caller.get_span_context()
    assert first.parent is not None and first.parent.span_id == caller_ctx.span_id
    assert first.context.trace_id == caller_ctx.trace_id
    assert first.links == () or list(first.links) == []
    assert bridge.stored == []  # a stored context is never replaced
    # the resumed attempt is its own root, linked back to the original trace
    assert second.parent is None
    assert second.context.trace_id != caller_ctx.trace_id
    [link] = second.links
    assert (link.context.trace_id, link.context.span_id) == (caller_ctx.trace_id, caller_ctx.span_id)
    assert second.attributes is not None and second.attributes["continuum.resumed"] is True
    assert second.attributes["continuum.lease_token"] == 2
    assert first.attributes is not None and first.attributes["continuum.outcome"] == "suspended"


def test_resumed_attempt_after_a_root_first_attempt_links_to_that_attempt(bridge: Bridge) -> None:
    rid = run_id()
    bridge.claim(rid, 1, resumed=False, trace_context=None)
    bridge.end(rid, 1, ("run", "released"))
    bridge.claim(rid, 2, resumed=True, trace_context=bridge.stored[0])
    bridge.end(rid, 2, ("lease", "lost"))
    first, second = bridge.spans("continuum.run_attempt")
    [link] = second.links
    assert link.context.span_id == first.context.span_id
    assert second.status.status_code is StatusCode.ERROR
    assert second.attributes is not None and second.attributes["continuum.outcome"] == "lease_lost"
    assert len(bridge.stored) == 1


@pytest.mark.parametrize(
    ("what", "status"),
    [
        (("run", "failed"), StatusCode.ERROR),
        (("run", "drifted"), StatusCode.ERROR),
        (("run", "cancelled"), StatusCode.UNSET),
        (("run", "suspended"), StatusCode.UNSET),
        (("run", "released"), StatusCode.UNSET),
        (("run", "completed"), StatusCode.OK),
    ],
)
def test_attempt_end_status(bridge: Bridge, what: tuple[str, str], status: StatusCode) -> None:
    rid = run_id()
    bridge.claim(rid, 3, resumed=False, trace_context=None)
    extra = {"error": {"type": "ValueError", "message": "bad order"}} if what[1] == "failed" else {}
    bridge.end(rid, 3, what, **extra)
    [span] = bridge.spans()
    assert span.status.status_code is status
    if what[1] == "failed":
        assert span.status.description == "ValueError: bad order"
        [event] = span.events
        assert event.name == "exception"
        assert dict(event.attributes or {}) == {"exception.type": "ValueError", "exception.message": "bad order"}


def test_activity_attempt_spans_are_children_of_the_stored_context(bridge: Bridge) -> None:
    tracer = bridge.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        stored = capture_trace_context()
    rid = run_id()
    bridge.activity(
        rid, "retried", attempt=1, trace_context=stored,
        error={"type": "IOError", "message": "down", "traceback": "Traceback ...\nOSError: down"},
    )
    bridge.activity(rid, "completed", attempt=2, trace_context=stored)
    first, second = bridge.spans("continuum.activity_attempt")
    for span, attempt in ((first, 1), (second, 2)):
        assert span.parent is not None and span.parent.span_id == caller.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["continuum.attempt"] == attempt
        assert span.attributes["continuum.run_id"] == rid
        assert span.attributes["continuum.activity"] == "charge"
        assert span.attributes["continuum.workflow"] == "order"
    assert first.status.status_code is StatusCode.ERROR and first.status.description == "IOError: down"
    [exc_event] = first.events
    assert dict(exc_event.attributes or {}) == {
        "exception.type": "IOError", "exception.message": "down", "exception.stacktrace": "Traceback ...\nOSError: down",
    }
    assert second.status.status_code is StatusCode.OK


def test_activity_without_stored_context_parents_on_the_open_attempt(bridge: Bridge) -> None:
    rid = run_id()
    bridge.claim(rid, 1, resumed=False, trace_context=None)
    bridge.activity(rid, "failed", trace_context=None, error={"type": "KeyError", "message": "x"})
    bridge.end(rid, 1, ("run", "suspended"))
    [act] = bridge.spans("continuum.activity_attempt")
    [run] = bridge.spans("continuum.run_attempt")
    assert act.parent is not None and act.parent.span_id == run.context.span_id
    assert act.status.status_code is StatusCode.ERROR


def test_replay_and_other_events_make_no_spans(bridge: Bridge) -> None:
    rid = run_id()
    for event in telemetry.EVENTS:
        if event not in otel.EVENTS:
            telemetry.emit(event, {"duration": 1}, {"run_id": rid, "workflow": "order", "instance": "default"})
    telemetry.emit(("continuum", "replay", "stop"), {"duration": 10}, {"run_id": rid, "events": 3})
    assert bridge.spans() == []
    assert ("continuum", "replay", "stop") not in otel.EVENTS


def test_teardown_detaches_and_ends_open_spans() -> None:
    b = Bridge()
    assert b.handler_id in telemetry.handlers()
    rid = run_id()
    b.claim(rid, 1, resumed=False, trace_context=None)
    otel.teardown(b.handler_id)
    assert b.handler_id not in telemetry.handlers()
    [span] = b.spans()
    assert span.attributes is not None and span.attributes["continuum.outcome"] == "detached"
    b.claim(run_id(), 1, resumed=False, trace_context=None)
    b.end(rid, 1, ("run", "completed"))
    assert len(b.spans()) == 1
    assert capture_trace_context() is None  # nothing set up any more


def test_two_bridges_get_their_own_ids(bridge: Bridge) -> None:
    other = Bridge()
    try:
        assert other.handler_id != bridge.handler_id
        rid = run_id()
        bridge.claim(rid, 1, resumed=False, trace_context=None)
        bridge.end(rid, 1, ("run", "completed"))
        assert len(bridge.spans()) == 1 and len(other.spans()) == 1
    finally:
        otel.teardown(other.handler_id)


def test_capture_returns_none_without_an_active_span(bridge: Bridge) -> None:
    assert capture_trace_context() is None


def test_capture_never_includes_baggage(bridge: Bridge) -> None:
    tracer = bridge.provider.get_tracer("test")
    token = context.attach(baggage.set_baggage("user", "ana"))
    try:
        with tracer.start_as_current_span("caller"):
            stored = capture_trace_context()
    finally:
        context.detach(token)
    assert stored is not None
    assert b"ana" not in stored and b"user" not in stored
    assert set(decode_trace_context(stored)) == {"traceparent"}


def test_tracestate_round_trips(bridge: Bridge) -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    ctx = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=True,
        trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "abc")]),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(ctx)))
    try:
        stored = capture_trace_context()
    finally:
        context.detach(token)
    assert stored == b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nvendor=abc"
    assert decode_trace_context(stored) == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=abc",
    }


@pytest.mark.parametrize(
    "bad",
    [b"", b"hello", b"00-xyz-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\xff".encode("latin-1")],
)
def test_decode_rejects_malformed_values(bad: bytes) -> None:
    with pytest.raises(ValueError, match="trace_context"):
        decode_trace_context(bad)


def test_decode_accepts_memoryview_and_encode_validates() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert decode_trace_context(memoryview(tp.encode()))["traceparent"] == tp  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="traceparent"):
        encode_trace_context({"traceparent": "nope"})


def test_a_damaged_stored_context_starts_a_fresh_root(bridge: Bridge) -> None:
    rid = run_id()
    bridge.claim(rid, 1, resumed=True, trace_context=b"garbage")
    bridge.end(rid, 1, ("run", "completed"))
    [span] = bridge.spans()
    assert span.parent is None and list(span.links) == []


def test_module_imports_without_opentelemetry_and_setup_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # makes every opentelemetry import fail\n"
        "import continuum_nb, continuum_nb.otel as o\n"
        "assert o.capture_trace_context() is None\n"
        "assert o.decode_trace_context(b'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')\n"
        "try:\n"
        "    o.setup()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('setup() did not fail')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install continuum-nb[otel]" in out.stdout


def test_token_assigned_by_the_first_commit_is_recorded_and_client_events_end_nothing(bridge: Bridge) -> None:
    rid = run_id()
    # the first attempt of a run started with its first wake is claimed before its token exists
    bridge.claim(rid, 0, resumed=False, trace_context=None)
    telemetry.emit(("continuum", "run", "cancelled"), {}, {"run_id": rid, "workflow": "order", "instance": "default"})
    assert bridge.spans() == []  # a client-side event (no lease_token) does not end an attempt
    bridge.end(rid, 41, ("run", "suspended"))
    [span] = bridge.spans()
    assert span.attributes is not None and span.attributes["continuum.lease_token"] == 41


def test_the_telemetry_reference_documents_every_event() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    missing = [".".join(e) for e in telemetry.EVENTS if f"`{'.'.join(e)}`" not in doc]
    assert missing == [], f"docs/observability.md does not document {missing}"


def test_a_failing_trace_context_setter_does_not_leak_the_span(bridge: Bridge) -> None:
    def broken(_: bytes) -> None:
        raise RuntimeError("store down")

    rid = run_id()
    telemetry.emit(
        ("continuum", "run", "claimed"), {},
        {"run_id": rid, "workflow": "order", "instance": "default", "lease_token": 1, "resumed": False,
         "trace_context": None, "set_trace_context": broken},
    )  # the handler's exception is logged by telemetry.emit, never raised
    bridge.end(rid, 1, ("run", "completed"))
    [span] = bridge.spans()
    assert span.attributes is not None and span.attributes["continuum.outcome"] == "completed"


def test_setup_registers_the_trace_context_source_that_cn_start_asks() -> None:
    assert telemetry.current_trace_context() is None
    first, second = Bridge(), Bridge()
    tracer = first.provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("caller"):
            expected = capture_trace_context()
            assert expected is not None and telemetry.current_trace_context() == expected
        otel.teardown(first.handler_id)
        with tracer.start_as_current_span("caller"):  # one bridge is left: still registered
            expected = capture_trace_context()
            assert expected is not None and telemetry.current_trace_context() == expected
    finally:
        otel.teardown(first.handler_id)  # a second teardown of an id does nothing
        otel.teardown(second.handler_id)
    assert not telemetry.remove_trace_context_source(capture_trace_context)  # the last one removed it
    assert telemetry.current_trace_context() is None


def test_teardown_leaves_a_source_registered_by_someone_else() -> None:
    b = Bridge()

    def mine() -> bytes:
        return b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    telemetry.set_trace_context_source(mine)  # replaces the bridge's
    try:
        otel.teardown(b.handler_id)
        assert telemetry.current_trace_context() == mine()
    finally:
        assert telemetry.remove_trace_context_source(mine)
