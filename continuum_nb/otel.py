"""OpenTelemetry bridge: telemetry events -> short spans (needs only ``opentelemetry-api``).

``setup()`` attaches a telemetry handler that turns the engine's events into two kinds of span:

- ``continuum.run_attempt``: from a run's ``[continuum, run, claimed]`` to the end of that
  attempt (suspended, completed, failed, cancelled, drifted, released, or lease lost);
- ``continuum.activity_attempt``: one per activity attempt (started -> completed/retried/failed).

A run's trace context is the W3C ``traceparent`` (and ``tracestate``) of the caller's span at
``cn.start()``, or, when there was none, of the run's first attempt span. It is stored in
``continuum_runs.trace_context`` as ASCII bytes: ``traceparent`` alone, or
``traceparent + b"\\n" + tracestate``. Baggage is never stored. The first attempt is a child of
that context; every later attempt (after a suspension, a crash, on another engine) is a new
root span with a *link* to it, so a trace never stays open for days. Activity spans are
children of the stored context. Nothing is traced while a run replays: the engine emits no
activity events for replayed steps, and the bridge does not listen to replay events.

The module imports without OpenTelemetry installed; ``setup()`` then raises ImportError.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import telemetry

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = ["capture_trace_context", "decode_trace_context", "encode_trace_context", "setup", "teardown"]

RUN_SPAN = "continuum.run_attempt"
ACTIVITY_SPAN = "continuum.activity_attempt"

RUN_END_EVENTS: tuple[tuple[str, ...], ...] = (
    ("continuum", "run", "suspended"),
    ("continuum", "run", "completed"),
    ("continuum", "run", "failed"),
    ("continuum", "run", "cancelled"),
    ("continuum", "run", "drifted"),
    ("continuum", "run", "released"),
    ("continuum", "lease", "lost"),
)
ACTIVITY_END_EVENTS: tuple[tuple[str, ...], ...] = (
    ("continuum", "activity", "completed"),
    ("continuum", "activity", "retried"),
    ("continuum", "activity", "failed"),
)
CLAIMED = ("continuum", "run", "claimed")
ACTIVITY_STARTED = ("continuum", "activity", "started")
#: The events the bridge listens to; replay events are deliberately absent (no spans on replay).
EVENTS = (CLAIMED, *RUN_END_EVENTS, ACTIVITY_STARTED, *ACTIVITY_END_EVENTS)

# Outcomes whose run attempt span gets status ERROR (the run needs attention).
_ERROR_OUTCOMES = {("continuum", "run", "failed"), ("continuum", "run", "drifted"), ("continuum", "lease", "lost")}

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_MAX_TRACESTATE = 512  # W3C: at most 32 members; vendors keep it far below this

_INSTALL_HINT = "OpenTelemetry is not installed; install it with: pip install continuum-nb[otel]"

_lock = threading.Lock()
_bridges: dict[str, _Bridge] = {}
_ids = itertools.count(1)


# -- the stored encoding ---------------------------------------------------------------------


def encode_trace_context(carrier: Mapping[str, str]) -> bytes:
    """``{"traceparent": ..., "tracestate": ...}`` -> the bytes stored in ``trace_context``."""
    traceparent = carrier.get("traceparent", "").strip()
    if not _TRACEPARENT.match(traceparent):
        raise ValueError(f"not a W3C traceparent: {traceparent!r} (expected 00-<32 hex>-<16 hex>-<2 hex>)")
    tracestate = carrier.get("tracestate", "").strip()
    if "\n" in tracestate or len(tracestate) > _MAX_TRACESTATE:
        tracestate = ""  # malformed or oversized: drop it rather than store it
    text = f"{traceparent}\n{tracestate}" if tracestate else traceparent
    return text.encode("ascii")


def decode_trace_context(data: bytes) -> dict[str, str]:
    """The bytes stored in ``trace_context`` -> a W3C carrier ``{"traceparent": ..., "tracestate": ...}``.

    ``tracestate`` is present only when it was stored. Raises ValueError on anything else.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"trace_context must be bytes, not {type(data).__name__}")
    try:
        text = bytes(data).decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("trace_context is not ASCII; expected b'traceparent' or b'traceparent\\ntracestate'") from None
    traceparent, _, tracestate = text.partition("\n")
    if not _TRACEPARENT.match(traceparent):
        raise ValueError(f"trace_context does not start with a W3C traceparent: {traceparent[:80]!r}")
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return carrier


# -- public functions --------------------------------------------------------------------------


def _import_api() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return trace


def setup(tracer_provider: Any = None) -> str:
    """Attach the bridge to telemetry; returns the handler id to pass to ``teardown``.

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace.get_tracer_provider()``).
    """
    trace = _import_api()
    from . import __version__

    tracer = trace.get_tracer("continuum_nb", __version__, tracer_provider=tracer_provider)
    handler_id = f"continuum_nb.otel-{next(_ids)}"
    bridge = _Bridge(tracer)
    with _lock:
        _bridges[handler_id] = bridge
    try:
        telemetry.attach(handler_id, EVENTS, bridge.handle)
    except Exception:
        with _lock:
            _bridges.pop(handler_id, None)
        raise
    with _lock:
        # cn.start() asks telemetry for the caller's span from now on.
        telemetry.set_trace_context_source(capture_trace_context)
    return handler_id


def teardown(handler_id: str) -> None:
    """Detach a bridge; spans it still has open are ended (marked ``continuum.outcome=detached``).

    The last bridge torn down also unregisters the trace context source ``setup()`` registered.
    """
    telemetry.detach(handler_id)
    with _lock:
        bridge = _bridges.pop(handler_id, None)
        if not _bridges:
            telemetry.remove_trace_context_source(capture_trace_context)
    if bridge is not None:
        bridge.close()


def capture_trace_context() -> bytes | None:
    """The caller's current span as stored ``trace_context`` bytes (``cn.start()`` calls this
    through ``telemetry.current_trace_context()`` once ``setup()`` registered it).

    None when no bridge is set up or no valid span is active. Only traceparent/tracestate are
    taken; baggage is not.
    """
    if not _bridges:
        return None
    from opentelemetry import trace

    return _encode_span(trace.get_current_span())


def _encode_span(span: Span) -> bytes | None:
    """A span's traceparent/tracestate as stored bytes (None for an invalid span)."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return encode_trace_context(carrier)


# -- the bridge --------------------------------------------------------------------------------


def _context_of(data: Any) -> Context | None:
    """A stored trace_context as an OTel parent Context, or None when absent/unreadable."""
    if data is None:
        return None
    try:
        carrier = decode_trace_context(data)
    except (TypeError, ValueError):
        return None  # a damaged column must not break tracing of the run
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        kind = error.get("type") or error.get("error_type") or error.get("kind")
        message = error.get("message") or error.get("reason")
        if kind and message:
            return f"{kind}: {message}"
        if kind or message:
            return str(kind or message)
    return str(error) if error is not None else "error"


class _Bridge:
    """One ``setup()``: its tracer and the spans it has open."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, Any], Span] = {}  # (run_id, lease_token) -> open attempt span
        self.activities: dict[tuple[str, Any, Any], Span] = {}  # (run_id, task_id, attempt)

    def handle(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        if event == CLAIMED:
            self._run_claimed(metadata)
        elif event in RUN_END_EVENTS:
            self._run_ended(event, metadata)
        elif event == ACTIVITY_STARTED:
            self._activity_started(metadata)
        elif event in ACTIVITY_END_EVENTS:
            self._activity_ended(event, metadata)

    @staticmethod
    def _base_attributes(md: Mapping[str, Any]) -> dict[str, Any]:
        attrs: dict[str, Any] = {"continuum.run_id": str(md.get("run_id"))}
        for key in ("workflow", "instance"):
            if md.get(key) is not None:
                attrs[f"continuum.{key}"] = str(md[key])
        return attrs

    def _run_claimed(self, md: Mapping[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import Link

        attrs = self._base_attributes(md)
        if md.get("lease_token") is not None:
            attrs["continuum.lease_token"] = int(md["lease_token"])
        resumed = bool(md.get("resumed"))
        attrs["continuum.resumed"] = resumed
        stored = _context_of(md.get("trace_context"))
        if stored is not None and not resumed:
            span = self.tracer.start_span(RUN_SPAN, context=stored, attributes=attrs)
        elif stored is not None:
            link = Link(trace.get_current_span(stored).get_span_context())
            span = self.tracer.start_span(RUN_SPAN, context=Context(), attributes=attrs, links=[link])
        else:
            span = self.tracer.start_span(RUN_SPAN, context=Context(), attributes=attrs)
        key = (str(md.get("run_id")), md.get("lease_token"))
        with self.lock:
            previous = self.runs.pop(key, None)
            self.runs[key] = span
        if previous is not None:  # a claim without an end event: close the old span honestly
            previous.set_attribute("continuum.outcome", "unknown")
            previous.end()
        if stored is None:
            # No stored context (started without a caller span, or before setup()): this span
            # becomes the run's trace context, persisted by the engine with its next commit.
            # Called last, so a failing setter cannot leave the span unregistered (never ended).
            setter = md.get("set_trace_context")
            encoded = _encode_span(span)
            if callable(setter) and encoded is not None:
                setter(encoded)

    def _pop_run(self, md: Mapping[str, Any]) -> Span | None:
        """The open attempt an end event closes.

        Only engine events (they carry ``lease_token``) end an attempt: a client's
        ``[continuum, run, cancelled]`` in the same process is not the end of an attempt. The
        token can differ from the claim's when the attempt created the run (the claim comes
        before the insert that assigns the token); one engine holds one attempt per run.
        """
        if "lease_token" not in md:
            return None
        run_id = str(md.get("run_id"))
        with self.lock:
            span = self.runs.pop((run_id, md.get("lease_token")), None)
            if span is None:
                for key in list(self.runs):
                    if key[0] == run_id:
                        span = self.runs.pop(key)
                        break
        if span is not None and md.get("lease_token") is not None:
            span.set_attribute("continuum.lease_token", int(md["lease_token"]))
        return span

    def _run_ended(self, event: tuple[str, ...], md: Mapping[str, Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._pop_run(md)
        if span is None:
            return  # claimed before setup(): nothing to end
        outcome = "lease_lost" if event[1] == "lease" else event[2]
        span.set_attribute("continuum.outcome", outcome)
        if event in _ERROR_OUTCOMES:
            text = _error_text(md.get("error")) if md.get("error") is not None else outcome.replace("_", " ")
            self._record_error(span, md.get("error"))
            span.set_status(Status(StatusCode.ERROR, text))
        elif event == ("continuum", "run", "completed"):
            span.set_status(Status(StatusCode.OK))
        span.end()

    @staticmethod
    def _record_error(span: Span, error: Any) -> None:
        if not isinstance(error, Mapping):
            return
        attrs = {"exception.message": str(error.get("message", _error_text(error)))}
        kind = error.get("type") or error.get("error_type")
        if kind:
            attrs["exception.type"] = str(kind)
        if isinstance(error.get("traceback"), str):
            attrs["exception.stacktrace"] = error["traceback"]
        span.add_event("exception", attributes=attrs)

    def _activity_started(self, md: Mapping[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context

        attrs = self._base_attributes(md)
        if md.get("activity") is not None:
            attrs["continuum.activity"] = str(md["activity"])
        if md.get("attempt") is not None:
            attrs["continuum.attempt"] = int(md["attempt"])
        if md.get("task_id") is not None:
            attrs["continuum.task_id"] = str(md["task_id"])
        parent = _context_of(md.get("trace_context"))
        if parent is None:
            # The run's context is not stored yet (its first attempt is still open here):
            # parent on that attempt, else start a root.
            run_id = str(md.get("run_id"))
            with self.lock:
                open_run = next((s for k, s in self.runs.items() if k[0] == run_id), None)
            parent = trace.set_span_in_context(open_run) if open_run is not None else Context()
        span = self.tracer.start_span(ACTIVITY_SPAN, context=parent, attributes=attrs)
        key = (str(md.get("run_id")), md.get("task_id"), md.get("attempt"))
        with self.lock:
            previous = self.activities.pop(key, None)
            self.activities[key] = span
        if previous is not None:
            previous.set_attribute("continuum.outcome", "unknown")
            previous.end()

    def _activity_ended(self, event: tuple[str, ...], md: Mapping[str, Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        key = (str(md.get("run_id")), md.get("task_id"), md.get("attempt"))
        with self.lock:
            span = self.activities.pop(key, None)
        if span is None:
            return
        outcome = event[2]
        span.set_attribute("continuum.outcome", outcome)
        if outcome == "completed":
            span.set_status(Status(StatusCode.OK))
        else:  # retried or failed: this attempt raised
            self._record_error(span, md.get("error"))
            span.set_status(Status(StatusCode.ERROR, _error_text(md.get("error"))))
        span.end()

    def close(self) -> None:
        with self.lock:
            spans = [*self.runs.values(), *self.activities.values()]
            self.runs.clear()
            self.activities.clear()
        for span in spans:
            span.set_attribute("continuum.outcome", "detached")
            span.end()
