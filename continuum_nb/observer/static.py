"""Display values for a run's detail and the HTML the observer shows — live, and as the static
fallback that ``jupyter nbconvert --to html`` (or any front end without widgets) renders.

Plain Python: every string that reaches HTML goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .viewmodel import decode_trace_id

__all__ = ["detail_html", "detail_view", "header_html", "pending_html", "pretty_json", "runs_table_html", "table_html"]

_MAX_PAYLOAD_CHARS = 4000

STYLE = """
<style>
.cn-obs-table{border-collapse:collapse;font:12px/1.4 var(--jp-code-font-family,monospace);margin:4px 0}
.cn-obs-table th,.cn-obs-table td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
.cn-obs-table th{background:#f3f3f3}
.cn-obs-state{font-weight:600}
.cn-obs-state-completed{color:#1a7f37}.cn-obs-state-failed,.cn-obs-state-drifted{color:#cf222e}
.cn-obs-state-suspended{color:#9a6700}.cn-obs-state-running{color:#0969da}.cn-obs-state-cancelled{color:#6e7781}
.cn-obs-json{margin:0;white-space:pre-wrap;max-height:16em;overflow:auto}
.cn-obs-warn{color:#9a6700;font-weight:600}
</style>
"""


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def pretty_json(value: Any) -> str:
    """Indented JSON, cut at a few thousand characters (a huge payload must not freeze the page)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    if len(text) > _MAX_PAYLOAD_CHARS:
        text = text[:_MAX_PAYLOAD_CHARS] + f"\n… ({len(text) - _MAX_PAYLOAD_CHARS} more characters)"
    return text


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return html.escape(_iso(value))
    if isinstance(value, (dict, list)):
        return f'<pre class="cn-obs-json">{html.escape(pretty_json(value))}</pre>'
    return html.escape("" if value is None else str(value))


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, empty: str = "none") -> str:
    if not rows:
        return f"<p><i>{html.escape(empty)}</i></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if c == "state" and isinstance(v, str):
                cells.append(f'<td class="cn-obs-state cn-obs-state-{html.escape(v)}">{html.escape(v)}</td>')
            else:
                cells.append(f"<td>{_cell(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="cn-obs-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


RUN_COLUMNS = ("id", "workflow", "version", "state", "started", "duration", "lease_owner")


def runs_table_html(rows: Sequence[Mapping[str, str]], *, caption: str = "") -> str:
    """The runs table as static HTML (rows from ``viewmodel.row_view``)."""
    cap = f"<p><b>{html.escape(caption)}</b></p>" if caption else ""
    return STYLE + cap + table_html(rows, RUN_COLUMNS, empty="no runs match")


def detail_view(run: Mapping[str, Any]) -> dict[str, str]:
    """The run header as label → display string."""
    token = run.get("lease_token")
    forked = {} if run.get("forked_from_run_id") is None else {
        "forked from": f"{run['forked_from_run_id']} at event {run.get('forked_at_seq')}"}
    # a chain of runs (cn.continue_as_new): the run it continues, the run that continues it
    chain = {label: str(run[key]) for label, key in (("continued from", "continued_from_run_id"),
                                                      ("continued as", "continued_to_run_id"))
             if run.get(key) is not None}
    return {
        "run id": str(run["id"]),
        "workflow": str(run["workflow"]),
        "state": str(run["state"]),
        "version": str(run.get("version_hash") or ""),
        "started": _iso(run.get("started_at")),
        "completed": _iso(run.get("completed_at")),
        "next wakeup": _iso(run.get("next_wakeup_at")),
        "lease owner": str(run.get("lease_owner") or "—"),
        "lease token": "—" if token is None else str(token),
        "lease expires": _iso(run.get("lease_expires_at")) or "—",
        "trace id": decode_trace_id(run.get("trace_context")) or "—",
        "retention until": _iso(run.get("retention_until")) or "—",
        **forked,   # a fork (cn.fork, the observer's "fork from here") names its original
        **chain,
    }


def header_html(run: Mapping[str, Any]) -> str:
    """The run header as a compact key/value grid (two pairs per row)."""
    items = list(detail_view(run).items())
    cells = []
    for i in range(0, len(items), 2):
        row = []
        for k, v in items[i : i + 2]:
            cls = f' class="cn-obs-state cn-obs-state-{html.escape(v)}"' if k == "state" else ""
            row.append(f"<th>{html.escape(k)}</th><td{cls}>{html.escape(v)}</td>")
        cells.append("<tr>" + "".join(row) + "</tr>")
    return f'<table class="cn-obs-table cn-obs-header">{"".join(cells)}</table>'


def detail_html(
    run: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    signals: Sequence[Mapping[str, Any]] = (),
    tasks: Sequence[Mapping[str, Any]] = (),
    timers: Sequence[Mapping[str, Any]] = (),
    *,
    truncated: bool = False,
) -> str:
    """Everything about one run, readable without JavaScript."""
    parts = [STYLE, header_html(run)]
    for name in ("input", "result", "error"):
        if run.get(name) is not None:
            parts.append(f"<p><b>{name}</b></p><pre class=\"cn-obs-json\">{html.escape(pretty_json(run[name]))}</pre>")
    ev_rows = [
        {"seq": e["seq"], "event_type": e["event_type"], "inserted_at": e.get("inserted_at"), "payload": e.get("payload")}
        for e in events
    ]
    more = " (first events only)" if truncated else ""
    parts.append(f"<p><b>events</b>{more}</p>" + table_html(ev_rows, ("seq", "event_type", "inserted_at", "payload"), empty="no events yet"))
    parts.append(pending_html(signals, tasks, timers))
    return "".join(parts)


def pending_html(
    signals: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]], timers: Sequence[Mapping[str, Any]]
) -> str:
    """Undelivered signals, activity tasks and timers of a run."""
    return (
        "<p><b>pending signals</b></p>"
        + table_html(signals, ("id", "name", "inserted_at", "payload"), empty="none pending")
        + "<p><b>activity tasks</b></p>"
        + table_html(
            tasks, ("seq", "activity", "state", "attempt", "available_at", "lease_owner", "lease_token", "error"), empty="none"
        )
        + "<p><b>timers</b></p>"
        + table_html(timers, ("seq", "fires_at", "fired"), empty="none")
    )
