"""The run's journal as a list people can read: 50 events a page, filterable by event type or by
what a click on the timeline selected, each payload one line until it is opened.

Plain Python (no widgets, no database): ``EventsPager`` says which page to ask
``ObserverQueries.events_page`` for; ``events_html`` renders the rows.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .lanes import fmt_ms

__all__ = ["PAGE_SIZE", "EventsPager", "events_html", "one_line"]

PAGE_SIZE = 50
#: A payload's one-line preview is cut here; the full payload is one click away.
ONE_LINE_CHARS = 160
#: An opened payload is cut here (a 1 MB payload must not freeze the page).
OPEN_CHARS = 4000


@dataclass
class EventsPager:
    """Paging over a run's events: ``counts`` (event type -> how many) comes from
    ``ObserverQueries.event_counts``; ``seqs`` (a timeline selection) narrows to those events."""

    counts: dict[str, int] = field(default_factory=dict)
    event_type: str | None = None
    seqs: list[int] | None = None
    page: int = 0
    page_size: int = PAGE_SIZE

    @property
    def total(self) -> int:
        if self.seqs is not None:
            return len(set(self.seqs))   # an upper bound when a type filter is also set
        if self.event_type:
            return self.counts.get(self.event_type, 0)
        return sum(self.counts.values())

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_prev(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page + 1 < self.pages

    def options(self) -> list[tuple[str, str]]:
        """The type filter's choices, with counts: ``("activity_scheduled (20)", "activity_scheduled")``."""
        total = sum(self.counts.values())
        return [(f"all types ({total:,})", "")] + [(f"{t} ({n:,})", t) for t, n in sorted(self.counts.items())]

    def set_type(self, event_type: str | None) -> None:
        if event_type and event_type not in self.counts:
            raise ValueError(f"the run has no {event_type!r} events; choose one of {', '.join(sorted(self.counts))}")
        self.event_type = event_type or None
        self.page = 0

    def select(self, seqs: Sequence[int] | None) -> None:
        self.seqs = sorted({int(s) for s in seqs}) if seqs else None
        self.page = 0

    def move(self, step: int) -> bool:
        target = min(max(self.page + step, 0), self.pages - 1)
        moved = target != self.page
        self.page = target
        return moved

    def query(self) -> dict[str, Any]:
        """Keyword arguments for ``ObserverQueries.events_page``."""
        return {"event_type": self.event_type, "seqs": self.seqs, "offset": self.page * self.page_size,
                "limit": self.page_size}

    def caption(self, shown: int) -> str:
        if not shown:
            return "no events" + (" in the selection" if self.seqs is not None else "")
        first = self.page * self.page_size + 1
        what = f"of {self.total:,}" if self.seqs is None else f"of the {self.total:,} selected"
        return f"events {first:,}–{first + shown - 1:,} {what} · page {self.page + 1:,} of {self.pages:,}"


def one_line(value: Any, limit: int = ONE_LINE_CHARS) -> str:
    """Compact JSON on one line, cut with an ellipsis."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > OPEN_CHARS:
        text = text[:OPEN_CHARS] + f"\n… ({len(text) - OPEN_CHARS:,} more characters)"
    return text


def events_html(rows: Sequence[Mapping[str, Any]], *, started_at: datetime | None) -> str:
    """One ``<details>`` per event: seq, type, time since the start and the payload on one line;
    opened, the whole payload indented."""
    out = []
    for r in rows:
        at = r.get("inserted_at")
        when = ""
        title = ""
        if isinstance(at, datetime):
            title = at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
            when = "+" + fmt_ms(max((at - started_at).total_seconds() * 1000.0, 0.0)) if started_at else title
        payload = r.get("payload")
        out.append(
            f'<details class="cn-ev-row" data-seq="{int(r["seq"])}"><summary>'
            f'<span class="cn-ev-seq">#{int(r["seq"])}</span>'
            f'<span class="cn-ev-type">{html.escape(str(r["event_type"]))}</span>'
            f'<span class="cn-ev-time" title="{html.escape(title)}">{html.escape(when)}</span>'
            f'<span class="cn-ev-payload">{html.escape(one_line(payload))}</span></summary>'
            f'<pre>{html.escape(_pretty(payload))}</pre></details>'
        )
    return "".join(out)
