"""What the magics show: tables of runs and events, a run's detail, the %%workflow summary.

Every object here renders twice: ``_repr_html_`` for a notebook and ``__repr__`` as plain text
(terminal IPython, logs, a static export without JavaScript). Tables become pandas DataFrames
when pandas is installed. Widgets (the "Upgrade" buttons) are optional extras on top of the text.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import formats

__all__ = [
    "HtmlTable",
    "OutdatedRun",
    "RunDetail",
    "RunsTable",
    "WorkflowSummary",
    "event_rows",
    "run_rows",
    "short_hash",
    "table",
    "upgrade_buttons",
]

RUN_COLUMNS = ("id", "workflow", "version", "state", "started_at", "completed_at",
               "next_wakeup_at", "lease_owner")  # fmt: skip
EVENT_COLUMNS = ("seq", "event_type", "payload", "inserted_at")


def short_hash(version_hash: str | None) -> str:
    return (version_hash or "")[:12]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, dict):
        return dict(record)
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    return dict(vars(record))


@dataclass
class HtmlTable:
    """A small table that renders as HTML and as aligned text (used when pandas is missing)."""

    columns: Sequence[str]
    rows: list[dict[str, Any]]
    caption: str | None = None

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in self.columns)
            + "</tr>"
            for r in self.rows
        )
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table class='continuum-table'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        cells = [[_cell(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [
            max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(self.columns)
        ]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        if not self.rows:
            lines.append("(no rows)")
        if self.caption:
            lines.insert(0, self.caption)
        return "\n".join(line.rstrip() for line in lines)

    def __len__(self) -> int:
        return len(self.rows)


def table(rows: list[dict[str, Any]], columns: Sequence[str], *, index: str | None = None) -> Any:
    """A DataFrame of ``rows`` when pandas is installed, else an ``HtmlTable``."""
    try:
        import pandas as pd
    except ImportError:
        return HtmlTable(list(columns), rows)
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.set_index(index) if index else frame


def run_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        d = _as_dict(r)
        d["id"] = str(d.get("id"))
        d["version"] = short_hash(d.get("version_hash"))
        out.append(d)
    return out


#: What ``%continuum runs`` shows (the full values stay in ``RunsTable.frame``).
RUN_DISPLAY_COLUMNS = ("run", "workflow", "version", "state", "started", "duration", "next wakeup",
                       "lease owner")  # fmt: skip
_ACTIVE = ("running", "suspended")


class RunsTable:
    """``%continuum runs``: a table to read — run ids cut to 8 digits (the full id on hover, and in
    what is copied), times to the second in one time zone stated once, human durations, empty
    cells empty. ``.frame`` is the DataFrame of full values for code (``t.frame``, ``t.loc[...]``,
    ``t.index`` reach it); ``cn.runs()`` returns full values too."""

    def __init__(self, runs: Iterable[Any], *, zone: datetime.tzinfo | None = None,
                 now: datetime.datetime | None = None) -> None:
        self.rows = run_rows(runs)
        self.zone = zone or formats.display_zone()
        self.now = now or datetime.datetime.now(datetime.timezone.utc)

    @property
    def frame(self) -> Any:
        return table(self.rows, RUN_COLUMNS, index="id")

    def __getattr__(self, name: str) -> Any:
        # Only public names: IPython probes _repr_*_ methods, which must not reach the frame.
        if name.startswith("_") or name in ("rows", "zone", "now"):
            raise AttributeError(name)
        return getattr(self.frame, name)

    def __len__(self) -> int:
        return len(self.rows)

    def caption(self) -> str:
        n = len(self.rows)
        return f"{n} run{'' if n == 1 else 's'} · times in {formats.zone_label(self.zone)}"

    def display_rows(self) -> list[dict[str, str]]:
        out = []
        for r in self.rows:
            started, completed = r.get("started_at"), r.get("completed_at")
            seconds = None
            if isinstance(started, datetime.datetime):
                end = completed if isinstance(completed, datetime.datetime) else self.now
                if end.tzinfo is None or started.tzinfo is None:
                    end, started = end.replace(tzinfo=None), started.replace(tzinfo=None)
                seconds = (end - started).total_seconds()
            running = r.get("state") in _ACTIVE and seconds is not None
            out.append({
                "id": r["id"],
                "run": formats.short_id(r["id"]),
                "workflow": _cell(r.get("workflow")),
                "version": _cell(r.get("version")),
                "state": _cell(r.get("state")),
                "started": formats.when(r.get("started_at"), self.zone),
                "duration": formats.duration(seconds) + (" so far" if running else ""),
                "next wakeup": formats.when(r.get("next_wakeup_at"), self.zone),
                "lease owner": _cell(r.get("lease_owner")),
            })
        return out

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in RUN_DISPLAY_COLUMNS)
        body = []
        for d in self.display_rows():
            full = html.escape(d["id"])
            # The rest of the id is in the cell at font-size 0: invisible, but selected and copied.
            cells = [f"<td title='{full}' style='white-space:nowrap'><code>{html.escape(d['run'])}<span "
                     f"style='font-size:0'>{full[len(d['run']):]}</span></code></td>"]
            cells += [f"<td style='white-space:nowrap'>{html.escape(d[c])}</td>" for c in RUN_DISPLAY_COLUMNS[1:]]
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption style='text-align:left'>{html.escape(self.caption())}</caption>"
        return (f"<table class='continuum-table continuum-runs'>{cap}<thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def __repr__(self) -> str:
        text = repr(HtmlTable(list(RUN_DISPLAY_COLUMNS), list(self.display_rows()), caption=self.caption()))
        return text.replace("\n(no rows)", "\n(no runs)")


def event_rows(events: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        d = _as_dict(e)
        # The payload stays a JSON string: a DataFrame cell holding a dict is hard to read.
        d["payload"] = _cell(d.get("payload"))
        out.append(d)
    return out


@dataclass
class RunDetail:
    """One run, field by field (``%continuum show``)."""

    info: Any

    def _fields(self) -> list[tuple[str, str]]:
        d = _as_dict(self.info)
        out = []
        for key, value in d.items():
            if key in ("parent_run_id", "correlation_id") and value is None:
                continue  # a run's links to its family: shown for children only
            if key == "trace_context" and isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("ascii", "replace")
            if key in ("input", "result", "error") and value is not None:
                value = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            out.append((key, _cell(value)))
        return out

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><pre style='margin:0'>{html.escape(v)}</pre></td></tr>"
            for k, v in self._fields()
        )
        return f"<table class='continuum-run'>{rows}</table>"

    def __repr__(self) -> str:
        fields = self._fields()
        width = max((len(k) for k, _ in fields), default=0)
        return "\n".join(
            f"{k.ljust(width)}  {v.replace(chr(10), chr(10) + ' ' * (width + 2))}"
            for k, v in fields
        )


@dataclass(frozen=True)
class OutdatedRun:
    run_id: str
    state: str
    version_hash: str
    #: Whether it replays cleanly on the new version (cn.upgrade(check_only=True)); None if unknown.
    upgradable: bool | None
    note: str = ""


@dataclass
class WorkflowSummary:
    """What ``%%workflow`` registered, and what the user should know about it."""

    name: str
    version_hash: str
    #: None: registered in every instance of the process (%%workflow without --instance).
    instance: str | None
    activities: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    cell_problems: list[str] = field(default_factory=list)
    outdated: list[OutdatedRun] = field(default_factory=list)
    #: The version the previous %%workflow of this name registered in this kernel, if any.
    previous_version: str | None = None

    def _lines(self) -> list[tuple[str, list[str]]]:
        sections: list[tuple[str, list[str]]] = []
        if self.cell_problems:
            sections.append(
                ("Not self-contained (a worker could not load this cell)", self.cell_problems)
            )
        if self.findings:
            sections.append(("Determinism findings", self.findings))
        if self.outdated:
            lines = []
            for r in self.outdated:
                verdict = {True: "replays cleanly: can upgrade", False: "would drift: keep its version",
                           None: "upgrade not checked"}[r.upgradable]  # fmt: skip
                extra = f" ({r.note})" if r.note else ""
                lines.append(
                    f"{r.run_id} [{r.state}, version {short_hash(r.version_hash)}]: {verdict}{extra}"
                )
            sections.append((f"Runs on older versions ({len(self.outdated)})", lines))
        return sections

    def _header(self) -> tuple[str, str, str]:
        acts = ", ".join(self.activities) if self.activities else "(none)"
        if self.previous_version is None:
            status = ""
        elif self.previous_version == self.version_hash:
            status = " (unchanged)"
        else:
            status = f" (new; was {short_hash(self.previous_version)})"
        where = f"instance {self.instance}" if self.instance else "every instance"
        version = f"version {short_hash(self.version_hash)}{status}, {where}"
        return (f"workflow {self.name}", version, f"activities: {acts}")

    def __repr__(self) -> str:
        title, version, acts = self._header()
        out = [f"{title} — {version}", acts]
        if not self.findings:
            out.append("determinism scan: no findings")
        for heading, lines in self._lines():
            out.append(f"{heading}:")
            out.extend(f"  - {line}" for line in lines)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        title, version, acts = self._header()
        parts = [f"<div class='continuum-summary'><b>{html.escape(title)}</b> — {html.escape(version)}",
                 f"<br>{html.escape(acts)}"]  # fmt: skip
        if not self.findings:
            parts.append("<br>determinism scan: no findings")
        for heading, lines in self._lines():
            items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
            parts.append(f"<div><b>{html.escape(heading)}</b><ul>{items}</ul></div>")
        parts.append("</div>")
        return "".join(parts)


def upgrade_buttons(runs: Sequence[OutdatedRun], upgrade: Callable[[str], Any]) -> Any | None:
    """An "Upgrade" button per run that replays cleanly; None without ipywidgets or such runs.

    The click handler runs on the kernel's main thread (a comm message), so it may touch widgets.
    """
    ready = [r for r in runs if r.upgradable]
    if not ready:
        return None
    try:
        import ipywidgets as w
    except ImportError:
        return None
    rows = []
    for r in ready:
        button = w.Button(
            description="Upgrade", tooltip=f"cn.upgrade({r.run_id!r})", button_style="info"
        )
        status = w.Label(value="")

        def on_click(
            _b: Any, r: OutdatedRun = r, button: Any = button, status: Any = status
        ) -> None:
            try:
                upgrade(r.run_id)
            except (
                Exception
            ) as exc:  # shown in the widget: a click must never raise into the kernel
                status.value = f"not upgraded: {' '.join(str(exc).split())}"
                return
            button.disabled = True
            button.description = "Upgraded"
            status.value = "now on the new version"

        button.on_click(on_click)
        rows.append(w.HBox([w.Label(value=f"{r.run_id} [{r.state}]"), button, status]))
    return w.VBox(rows)
