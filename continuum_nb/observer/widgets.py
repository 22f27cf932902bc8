"""The observer's two custom views, as anywidget classes whose ESM/CSS come from ``widgets/``.

The front-end files ship inside the wheel (``continuum_nb/_data/widgets``) and sit at the
repository root in a source checkout / editable install; they are read once, as text, so no CDN,
bundler or file watcher is involved.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as w
import traitlets

from .journal_view import EventsPager, events_html
from .lanes import timeline_view
from .timeline import Spans

__all__ = ["EventsPanel", "RunsTable", "Timeline", "widgets_dir"]


def widgets_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data" / "widgets", here.parent / "widgets"):
        if (candidate / "timeline.js").is_file():
            return candidate
    raise FileNotFoundError(
        "the observer's front-end files (widgets/timeline.js) are missing from this installation; "
        "reinstall continuum-nb"
    )


@cache
def _asset(name: str) -> str:
    return (widgets_dir() / name).read_text(encoding="utf-8")


class RunsTable(anywidget.AnyWidget):
    """Clickable runs table: ``rows`` in, ``selected_id`` out."""

    _esm = _asset("runs_table.js")
    _css = _asset("observer.css")
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected_id = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)

    def _repr_html_(self) -> str:
        from .static import runs_table_html

        return runs_table_html(self.rows)


class Timeline(anywidget.AnyWidget):
    """A run's timeline. ``show(spans)`` gives it a run (``timeline.journal_spans``); the view the
    browser draws (``view``) is ``lanes.timeline_view`` of those spans for the current ``window``,
    recomputed here whenever the browser zooms or pans, so it never receives more bars than pixels.

    The synced dict is ``view``, not ``layout``: ``layout`` is every ipywidget's Layout trait, and
    shadowing it made the front end fail on each render.
    """

    _esm = _asset("timeline.js")
    _css = _asset("observer.css")
    view = traitlets.Dict().tag(sync=True)
    run_id = traitlets.Unicode("").tag(sync=True)
    window = traitlets.List(traitlets.Float(), default_value=[], maxlen=2).tag(sync=True)
    selected = traitlets.Dict().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spans: Spans | None = None
        self.observe(self._redraw, names="window")

    def show(self, run_id: str, spans: Spans | None) -> None:
        """Draw ``spans`` of ``run_id``; the zoom is kept when it is the same run (a live refresh)."""
        new_run = run_id != self.run_id
        self.spans = spans
        self.run_id = run_id if spans is not None else ""
        if new_run:
            self.selected = {}
        if new_run and self.window:
            self.window = []        # observed: redraws the whole run
        else:
            self._redraw()

    def _redraw(self, _change: Any = None) -> None:
        self.view = {} if self.spans is None else timeline_view(self.spans, window=self.window or None)


class EventsPanel(w.VBox):
    """The run's journal, a page at a time: a type filter, ◀ ▶, and the rows of
    ``journal_view.events_html``. ``fetch(**EventsPager.query())`` returns a page of events."""

    def __init__(self) -> None:
        self.pager = EventsPager()
        self._fetch: Callable[..., list[dict[str, Any]]] | None = None
        self._started_at: datetime | None = None
        self.type_filter = w.Dropdown(options=[("all types", "")], value="", description="type",
                                      layout=w.Layout(width="300px"))
        self.prev_button = w.Button(description="◀", tooltip="previous page", layout=w.Layout(width="40px"))
        self.next_button = w.Button(description="▶", tooltip="next page", layout=w.Layout(width="40px"))
        self.clear_button = w.Button(description="show all events", tooltip="drop the timeline selection",
                                     layout=w.Layout(width="140px", display="none"))
        self.caption = w.HTML()
        self.rows = w.HTML()
        self.rows.add_class("cn-events-list")
        self.type_filter.observe(self._on_type, names="value")
        self.prev_button.on_click(lambda _b: self._move(-1))
        self.next_button.on_click(lambda _b: self._move(1))
        self.clear_button.on_click(lambda _b: self.select(None))
        super().__init__([w.HBox([self.type_filter, self.prev_button, self.next_button, self.caption,
                                  self.clear_button]), self.rows])
        self.add_class("cn-events")

    def show(self, counts: dict[str, int], fetch: Callable[..., list[dict[str, Any]]] | None,
             started_at: datetime | None, *, same_run: bool) -> None:
        """A run's counts and page source; paging and filters are kept on a refresh of the same run."""
        self._fetch, self._started_at = fetch, started_at
        self.pager.counts = counts
        if not same_run:
            self.pager.event_type, self.pager.seqs, self.pager.page = None, None, 0
        elif self.pager.event_type not in (None, *counts):
            self.pager.event_type = None
        options = self.pager.options()
        if list(self.type_filter.options) != options:
            with self.hold_trait_notifications():
                self.type_filter.options = options
                self.type_filter.value = self.pager.event_type or ""
        elif not same_run:
            self.type_filter.value = ""
        self.pager.page = min(self.pager.page, self.pager.pages - 1)
        self.load()

    def select(self, seqs: list[int] | None) -> None:
        """Show exactly these events (a timeline click), whatever the type filter was."""
        self.pager.select(seqs)
        if seqs:
            self.pager.event_type = None
            self.type_filter.value = ""   # its observer sees no change of filter and does nothing
        self.load()

    def _on_type(self, change: Any) -> None:
        if (change["new"] or None) == self.pager.event_type:
            return
        try:
            self.pager.set_type(change["new"] or None)
        except ValueError as exc:
            self.caption.value = html.escape(str(exc))
            return
        self.load()

    def _move(self, step: int) -> None:
        if self.pager.move(step):
            self.load()

    def load(self) -> None:
        rows = self._fetch(**self.pager.query()) if self._fetch is not None else []
        self.rows.value = events_html(rows, started_at=self._started_at)
        self.caption.value = f"&nbsp;{html.escape(self.pager.caption(len(rows)))}&nbsp;"
        self.prev_button.disabled = not self.pager.has_prev
        self.next_button.disabled = not self.pager.has_next
        self.clear_button.layout.display = "" if self.pager.seqs is not None else "none"
