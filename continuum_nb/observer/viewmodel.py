"""The observer's view-model: plain Python, no ipywidgets, no database.

Everything the observer decides — which page of runs to ask for, which actions a run allows, how
whether typed JSON is valid, what a trace id is — lives here so it
can be unit-tested without a browser or a kernel. The widget classes only copy these values into
widgets; the SQL lives in ``continuum_nb.store.observer_sql``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from ..notebook.formats import duration, human_size
from ..notebook.parser import split_attribute

__all__ = [
    "ACTIONS",
    "STATES",
    "JsonInput",
    "RunsPager",
    "allowed_actions",
    "decode_trace_id",
    "parse_json_input",
    "partition_view",
    "row_view",
    "short_id",
]

STATES = ("running", "suspended", "completed", "failed", "cancelled", "drifted")
ACTIONS = ("signal", "cancel", "resume", "upgrade")

# Which states each operator action accepts (mirrors the API: signal/cancel take active or
# drifted runs, resume only drifted ones, upgrade active or drifted ones).
_ACTION_STATES: dict[str, frozenset[str]] = {
    "signal": frozenset({"running", "suspended", "drifted"}),
    "cancel": frozenset({"running", "suspended", "drifted"}),
    "resume": frozenset({"drifted"}),
    "upgrade": frozenset({"running", "suspended", "drifted"}),
}


def allowed_actions(state: str | None, read_only: bool) -> dict[str, bool]:
    """Action name -> enabled, for a run in ``state`` (None: no run selected)."""
    return {a: (not read_only and state is not None and state in _ACTION_STATES[a]) for a in ACTIONS}


# --- JSON input ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonInput:
    ok: bool
    value: Any = None
    error: str | None = None


def parse_json_input(text: str, *, what: str = "payload") -> JsonInput:
    """Parse what an operator typed. Empty text is JSON ``null``; anything else must be strict
    JSON (no NaN/Infinity, which PostgreSQL's jsonb would refuse anyway)."""
    if not text.strip():
        return JsonInput(True, None)

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        return JsonInput(
            False,
            error=f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; "
            'fix it (e.g. {"approved": true}) or leave it empty for null',
        )
    except ValueError as exc:
        return JsonInput(False, error=f"{what} is not valid JSON: {exc}; use a number or a string")
    return JsonInput(True, value)


_SIGNAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")


def signal_name_error(name: str) -> str | None:
    """None when ``name`` is a usable signal name, else a one-line message."""
    if not name.strip():
        return "type the signal name the workflow awaits (e.g. approve)"
    if not _SIGNAL_NAME.match(name.strip()):
        return f"{name.strip()!r} is not a signal name; use letters, digits, _ . : - (starting with a letter)"
    return None


# --- trace id -------------------------------------------------------------------------------------

_TRACEPARENT = re.compile(r"\b[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\b")


def decode_trace_id(trace_context: bytes | memoryview | str | None) -> str | None:
    """The W3C trace-id (32 hex digits) from ``continuum_runs.trace_context``.

    The column holds the traceparent text (possibly followed by tracestate, or as a small JSON
    object); raw 16-byte ids are accepted too. An all-zero (invalid) trace id gives None.
    """
    if trace_context is None:
        return None
    raw = bytes(trace_context) if isinstance(trace_context, memoryview) else trace_context
    if isinstance(raw, bytes):
        if len(raw) == 16:
            tid = raw.hex()
            return None if set(tid) == {"0"} else tid
        text = raw.decode("utf-8", errors="replace")
    else:
        text = raw
    m = _TRACEPARENT.search(text.lower())
    if not m or set(m.group(1)) == {"0"}:
        return None
    return m.group(1)


# --- runs list ---------------------------------------------------------------------------------------


def parse_attributes(text: str) -> dict[str, Any]:
    """``customer=acme, tier=2`` -> ``{"customer": "acme", "tier": 2}``: the attributes filter as
    typed in the observer (values are JSON when they read as JSON, else text)."""
    return dict(split_attribute(part) for part in text.split(",") if part.strip())


def short_id(run_id: UUID | str) -> str:
    return str(run_id)[:8]


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


@dataclass
class RunsPager:
    """Keyset paging state for the runs list.

    ``cursors[i]`` is the (started_at, id) of the last row before page i (None for page 0); going
    forward pushes the current last row, going back pops. Changing a filter starts over.
    """

    page_size: int = 25
    state: str | None = None
    workflow: str | None = None
    search: str | None = None
    attributes: dict[str, Any] | None = None
    cursors: list[tuple[datetime, UUID] | None] = field(default_factory=lambda: [None])
    rows: list[Any] = field(default_factory=list)
    has_next: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, not {self.page_size}")

    @property
    def page(self) -> int:
        """0-based page number."""
        return len(self.cursors) - 1

    @property
    def has_prev(self) -> bool:
        return self.page > 0

    def set_filters(self, *, state: str | None = None, workflow: str | None = None, search: str | None = None,
                    attributes: str | None = None) -> None:
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}; use one of {', '.join(STATES)}")
        parsed = parse_attributes(attributes or "")
        self.state, self.workflow = state or None, workflow or None
        self.search = (search or "").strip() or None
        self.attributes = parsed or None
        self.cursors = [None]

    def query(self) -> dict[str, Any]:
        """Keyword arguments for ``ObserverQueries.list_runs`` (one extra row tells whether a next page exists)."""
        return {
            "state": self.state,
            "workflow": self.workflow,
            "search": self.search,
            "attributes": self.attributes,
            "after": self.cursors[-1],
            "limit": self.page_size + 1,
        }

    def accept(self, rows: Sequence[Any]) -> None:
        """Take the rows the query returned. An empty page past the first (the runs behind the
        cursor were deleted) steps back so the operator never sees a blank page with no way back."""
        if not rows and self.page > 0:
            self.cursors.pop()
        self.has_next = len(rows) > self.page_size
        self.rows = list(rows[: self.page_size])

    def next_page(self) -> bool:
        if not self.has_next or not self.rows:
            return False
        last = self.rows[-1]
        self.cursors.append((_get(last, "started_at"), _get(last, "id")))
        return True

    def prev_page(self) -> bool:
        if not self.has_prev:
            return False
        self.cursors.pop()
        return True


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def row_view(row: Any, now: datetime) -> dict[str, str]:
    """One runs-table row as display strings."""
    started = _get(row, "started_at")
    completed = _get(row, "completed_at")
    end = completed or now
    return {
        "id": str(_get(row, "id")),
        "short_id": short_id(_get(row, "id")),
        "workflow": _get(row, "workflow"),
        "version": (_get(row, "version_hash") or "")[:12],
        "state": _get(row, "state"),
        "started": _iso(started),
        "duration": duration(max((end - started).total_seconds(), 0.0)) if started else "",
        "lease_owner": _get(row, "lease_owner") or "",
    }


PARTITION_COLUMNS = ("partition", "months", "rows", "size")


def partition_view(part: Any) -> dict[str, str]:
    """One partition as the command line shows it: its month range, a counted row number and a
    human size (``48.0 kB``), not raw bytes."""
    start, end = _get(part, "start"), _get(part, "end")
    if start is None or end is None:
        months = "DEFAULT (outside every month)"
    else:
        months = f"{start:%Y-%m} → {end:%Y-%m}"
    return {"partition": _get(part, "name"), "months": months, "rows": f"{int(_get(part, 'rows')):,}",
            "size": human_size(_get(part, "size_bytes"))}
