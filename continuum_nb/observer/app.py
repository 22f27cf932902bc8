"""The observer app: thin ipywidgets over the view-model, the observer queries and the public API.

Every decision (paging, action enabling, timeline layout, JSON validation) is made by
``viewmodel``; this module only moves values between it and widgets. It runs on the kernel
thread only — live refresh arrives through ``bridge.LiveBridge``.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime, timezone
from typing import Any, Protocol

import ipywidgets as w

from ..errors import ContinuumError
from ..store.observer_sql import ObserverQueries, RunDetail
from . import static
from .bridge import LiveBridge
from .event_actions import ApiTimeTravel, EventActions, TimeTravel
from .tabs import AnalyticsTab, PartitionsTab
from .timeline import journal_spans
from .viewmodel import (
    STATES,
    RunsPager,
    allowed_actions,
    parse_json_input,
    row_view,
    signal_name_error,
)
from .widgets import EventsPanel, RunsTable, Timeline

__all__ = ["ApiActions", "Actions", "ObserverApp", "build_observer"]


class Actions(Protocol):
    def signal(self, run_id: str, name: str, payload: Any) -> None: ...
    def cancel(self, run_id: str) -> None: ...
    def resume(self, run_id: str) -> None: ...
    def upgrade(self, run_id: str) -> Any: ...


class ApiActions:
    """Operator actions through the public API (never SQL), on one instance."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def signal(self, run_id: str, name: str, payload: Any) -> None:
        from .. import api

        api.signal(run_id, name, payload, instance=self._instance)

    def cancel(self, run_id: str) -> None:
        from .. import api

        api.cancel(run_id, instance=self._instance)

    def resume(self, run_id: str) -> None:
        from .. import api

        api.resume(run_id, instance=self._instance)

    def upgrade(self, run_id: str) -> Any:
        from .. import api

        return api.upgrade(run_id, instance=self._instance)


def _msg(text: str, kind: str = "info") -> str:
    colour = {"info": "#1a7f37", "error": "#cf222e", "warn": "#9a6700"}[kind]
    return f"<span style='color:{colour}' data-kind='{kind}'>{html.escape(text)}</span>"


class ObserverApp(w.VBox):
    """Runs | Analytics | Partitions. Build it with ``cn.observer()``."""

    def __init__(
        self,
        queries: ObserverQueries,
        *,
        conninfo: str,
        actions: Actions | None,
        label: str = "default",
        instance_name: str | None = None,
        read_only: bool = False,
        page_size: int = 25,
        live: bool = True,
        travel: TimeTravel | None = None,
    ) -> None:
        self.queries = queries
        self.read_only = read_only or actions is None
        self._actions = actions
        self.pager = RunsPager(page_size=page_size)
        self.selected: str | None = None
        self.detail: RunDetail | None = None
        self._static_detail = ""

        # --- runs list ---
        self.state_filter = w.Dropdown(options=[("all states", "")] + [(s, s) for s in STATES], value="",
                                       description="state", layout=w.Layout(width="190px"))
        self.workflow_filter = w.Dropdown(options=[("all workflows", "")], value="", description="workflow",
                                          layout=w.Layout(width="240px"))
        self.search = w.Text(placeholder="run id or its first digits", description="search",
                             continuous_update=False, layout=w.Layout(width="300px"))
        self.attributes = w.Text(placeholder="customer=acme, tier=2", description="attributes",
                                 continuous_update=False, layout=w.Layout(width="300px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=w.Layout(width="100px"))
        self.live = w.Checkbox(value=live, description="live", indent=False, layout=w.Layout(width="70px"))
        self.table = RunsTable()
        self.newer = w.Button(description="◀ newer", layout=w.Layout(width="90px"))
        self.older = w.Button(description="older ▶", layout=w.Layout(width="90px"))
        self.page_label = w.HTML()
        self.status = w.HTML()
        for widget in (self.state_filter, self.workflow_filter, self.search, self.attributes):
            widget.observe(self._on_filter, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh(full=True))
        self.newer.on_click(lambda _b: self._page(self.pager.prev_page()))
        self.older.on_click(lambda _b: self._page(self.pager.next_page()))
        self.table.observe(self._on_select, names="selected_id")
        self.live.observe(self._on_live, names="value")

        # --- run detail ---
        self.header = w.HTML("<p><i>Click a run to see its timeline, journal and actions.</i></p>")
        self.timeline = Timeline()
        self.timeline.observe(self._on_pick, names="selected")
        self.events = EventsPanel()
        self.data_html = w.HTML()
        self.pending_html = w.HTML()
        for part in (self.data_html, self.pending_html):
            part.add_class("cn-events-list")   # scrolls inside its own box
        # Collapsed: a run's journal can be 100,000 events; it opens on demand, a page at a time.
        self.details = details = w.Accordion(children=[self.events, self.data_html, self.pending_html])
        for i, title in enumerate(("events", "input / result / error", "pending signals · tasks · timers")):
            details.set_title(i, title)
        details.selected_index = None
        self._shown_run: str | None = None
        self._detail_key: tuple[Any, ...] | None = None
        self.signal_name = w.Text(placeholder="signal name", description="signal", layout=w.Layout(width="260px"))
        self.signal_payload = w.Textarea(placeholder='JSON payload, e.g. {"approved": true}', rows=3,
                                         layout=w.Layout(width="420px"))
        self.action_buttons = {
            "signal": w.Button(description="send signal", icon="paper-plane", button_style="primary"),
            "cancel": w.Button(description="cancel", icon="ban", button_style="danger"),
            "resume": w.Button(description="resume", icon="play"),
            "upgrade": w.Button(description="upgrade", icon="level-up"),
        }
        for name, button in self.action_buttons.items():
            button.on_click(lambda _b, name=name: self.act(name))
        self.action_message = w.HTML()
        action_box = w.VBox([
            w.HBox([self.signal_name, self.signal_payload, self.action_buttons["signal"]]),
            w.HBox([self.action_buttons[n] for n in ("cancel", "resume", "upgrade")]),
        ])
        # "state at this event" only reads, so a read-only observer keeps it (fork disabled there)
        self.event_actions = EventActions(travel, read_only=self.read_only, message=self.action_message,
                                          on_forked=self.select_run)
        detail_children: list[Any] = [self.header, self.timeline]
        if not self.read_only:
            detail_children.append(action_box)
        detail_children += [self.event_actions, self.action_message, details]
        self.detail_box = w.VBox(detail_children, layout=w.Layout(border="1px solid #ddd", padding="6px"))

        runs_tab = w.VBox([
            w.HBox([self.state_filter, self.workflow_filter, self.search, self.attributes, self.refresh_button,
                    self.live]),
            self.table,
            w.HBox([self.newer, self.page_label, self.older, self.status]),
            self.detail_box,
        ])
        self.analytics = AnalyticsTab(conninfo)
        self.partitions = PartitionsTab(conninfo)
        self.tabs = w.Tab(children=[runs_tab, self.analytics, self.partitions])
        for i, title in enumerate(("Runs", "Analytics", "Partitions")):
            self.tabs.set_title(i, title)
        self.tabs.observe(self._on_tab, names="selected_index")
        mode = " · read-only" if self.read_only else ""
        title = w.HTML(f"<b>continuum observer</b> — instance <code>{html.escape(label)}</code>{mode}")
        super().__init__([title, self.tabs])
        self.add_class("cn-observer")

        self.bridge = LiveBridge(self._on_live_change, instance=instance_name)
        # Count front-end views: once every view of this observer is gone (its cell re-run or
        # cleared), live refresh pauses instead of polling for nobody; a new view resumes it.
        self._view_count = 0
        self.observe(self._on_views, names="_view_count")
        if self.partitions.check_next_month():
            self.tabs.set_title(2, "Partitions ⚠")
        self._load_workflows()
        self.refresh(full=True)
        self._update_actions()
        if live:
            self.bridge.start()

    # --- loading ----------------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            result = fn(*args)
            return result if result is not None else True
        except ContinuumError as exc:
            self.status.value = _msg(str(exc), "error")
            return None

    def _load_workflows(self) -> None:
        names = self._guard(self.queries.workflow_names)
        if isinstance(names, list):
            options = [("all workflows", "")] + [(n, n) for n in names]
            if list(self.workflow_filter.options) == options:
                return   # reassigning would reset an open dropdown for nothing
            # ipywidgets keeps the value (and so the paging) when it is still among the options
            current = self.workflow_filter.value
            self.workflow_filter.options = options
            self.workflow_filter.value = current if current in names else ""

    def refresh(self, *, full: bool = False) -> None:
        """Reload the visible page (and the selected run). ``full`` also reloads workflow names."""
        if full:
            self._load_workflows()
        if self._guard(self._load_page) is None:
            return
        if self.selected:
            self._guard(self._load_detail)

    def _load_page(self) -> None:
        rows = self.queries.list_runs(**self.pager.query())
        self.pager.accept(rows)
        if self.pager.page and not rows:  # stepped back past a vanished page
            self.pager.accept(self.queries.list_runs(**self.pager.query()))
        now = datetime.now(timezone.utc)
        self.table.rows = [row_view(r, now) for r in self.pager.rows]
        self.newer.disabled = not self.pager.has_prev
        self.older.disabled = not self.pager.has_next
        self.page_label.value = f"&nbsp;page {self.pager.page + 1}&nbsp;"
        self.status.value = _msg(f"updated {now:%H:%M:%S} UTC", "info")

    def _load_detail(self) -> None:
        assert self.selected is not None
        detail = self.queries.run_detail(uuid.UUID(self.selected), max_events=0)
        self.detail = detail
        if detail is None:
            self.header.value = _msg(f"run {self.selected} no longer exists", "warn")
            self.event_actions.show_run(None, None, None, same_run=False)
            self._update_actions()
            return
        run = detail.run
        run_id, started = detail.run["id"], run["started_at"]
        same_run = self._shown_run == self.selected
        self._shown_run = self.selected
        self.header.value = static.STYLE + static.header_html(run)
        # A finished run shown already has nothing new: a live refresh must not re-read 100,000 events.
        key = (self.selected, run["state"], run.get("completed_at"))
        if same_run and run.get("completed_at") is not None and key == self._detail_key:
            self._update_actions()
            return
        self._detail_key = key
        spans = journal_spans(self.queries.timeline_events(run_id, started), started_at=started, now=detail.db_now,
                              completed_at=run.get("completed_at"), tasks=detail.tasks)
        self.timeline.show(self.selected, spans)
        counts = self.queries.event_counts(run_id, started)
        self.event_actions.show_run(self.selected, run["state"], sum(counts.values()), same_run=same_run)
        self.details.set_title(0, f"events ({sum(counts.values()):,})")
        self.events.show(counts, lambda **q: self.queries.events_page(run_id, started, **q), started,
                         same_run=same_run)
        self.data_html.value = static.STYLE + "".join(
            f"<p><b>{k}</b></p><pre class='cn-obs-json'>{html.escape(static.pretty_json(run.get(k)))}</pre>"
            for k in ("input", "result", "error")
        )
        self.pending_html.value = static.STYLE + static.pending_html(detail.signals, detail.tasks, detail.timers)
        # Suggest the signal the run is waiting for.
        if spans.open_signals and not self.signal_name.value:
            self.signal_name.value = spans.open_signals[0]
        first = self.queries.events_page(run_id, started, limit=50)
        self._static_detail = static.detail_html(run, first, detail.signals, detail.tasks, detail.timers,
                                                 truncated=spans.events > len(first))
        self._update_actions()

    def _update_actions(self) -> None:
        state = self.detail.run["state"] if self.detail is not None else None
        for name, enabled in allowed_actions(state, self.read_only).items():
            self.action_buttons[name].disabled = not enabled
        self.signal_name.disabled = self.signal_payload.disabled = self.action_buttons["signal"].disabled
        self.event_actions.run_state = state
        self.event_actions.update()

    # --- events -------------------------------------------------------------------------------------
    def _on_filter(self, _change: Any) -> None:
        try:
            self.pager.set_filters(state=self.state_filter.value or None,
                                   workflow=self.workflow_filter.value or None, search=self.search.value,
                                   attributes=self.attributes.value)
        except ValueError as exc:
            self.status.value = _msg(str(exc), "error")
            return
        self.refresh()

    def _page(self, moved: bool) -> None:
        if moved:
            self.refresh()

    def _on_select(self, change: Any) -> None:
        self.selected = change["new"] or None
        # What was typed for one run must never be sent to another by mistake.
        self.signal_name.value = ""
        self.signal_payload.value = ""
        self.action_message.value = ""
        if self.selected:
            self._guard(self._load_detail)

    def _on_pick(self, change: Any) -> None:
        """A click on a timeline bar: its events, in the (opened) events list."""
        seqs = (change["new"] or {}).get("seqs")
        if not seqs:
            return
        self.events.select([int(s) for s in seqs])
        self.event_actions.pick(seqs)
        self.details.selected_index = 0

    def select_run(self, run_id: str) -> None:
        """Select ``run_id`` in the list (a fork just made): page one, filters that hide it cleared."""
        self.pager.cursors = [None]
        self.refresh()
        if run_id not in {r["id"] for r in self.table.rows}:
            for widget in (self.state_filter, self.workflow_filter, self.attributes):
                widget.value = ""
            self.search.value = run_id   # each change re-reads the page (see _on_filter)
        self.table.selected_id = run_id

    def _on_tab(self, change: Any) -> None:
        if change["new"] == 2:
            self.partitions.load()

    def _on_live(self, change: Any) -> None:
        if change["new"]:
            self.bridge.start()
            self.refresh()
        else:
            self.bridge.stop()

    def _on_views(self, change: Any) -> None:
        was_paused = self.bridge.paused
        self.bridge.paused = change["new"] == 0 and (change["old"] or 0) > 0
        if was_paused and not self.bridge.paused:
            self.refresh()

    def _on_live_change(self, run_ids: set[str], poll: bool) -> None:
        if poll:
            self._load_workflows()   # a workflow first run elsewhere joins the filter
        if self._load_page_ok() and self.selected and (poll or self.selected in run_ids):
            self._guard(self._load_detail)

    def _load_page_ok(self) -> bool:
        return self._guard(self._load_page) is not None

    # --- actions ----------------------------------------------------------------------------------------
    def act(self, name: str) -> bool:
        """Run an operator action on the selected run; True when it was sent."""
        run_id = self.selected
        if self.read_only or self._actions is None or run_id is None:
            return False
        if not allowed_actions(self.detail.run["state"] if self.detail else None, False)[name]:
            self.action_message.value = _msg(f"{name} is not possible in the run's current state", "warn")
            return False
        try:
            if name == "signal":
                problem = signal_name_error(self.signal_name.value)
                parsed = parse_json_input(self.signal_payload.value)
                if problem or not parsed.ok:
                    self.action_message.value = _msg(problem or parsed.error or "", "error")
                    return False
                self._actions.signal(run_id, self.signal_name.value.strip(), parsed.value)
                done = f"signal {self.signal_name.value.strip()!r} sent"
            elif name == "cancel":
                self._actions.cancel(run_id)
                done = "cancelled"
            elif name == "resume":
                self._actions.resume(run_id)
                done = "resumed"
            else:
                moved = self._actions.upgrade(run_id)
                done = "upgraded to the newest version" if moved else "already on the newest version"
        except (ContinuumError, TypeError, ValueError) as exc:
            self.action_message.value = _msg(f"{name} failed: {exc}", "error")
            self.refresh()
            return False
        self.action_message.value = _msg(f"{done} ({run_id[:8]})", "info")
        self.refresh()
        return True

    # --- lifecycle and static rendering ---------------------------------------------------------------
    def close(self) -> None:
        """Stop live refresh, detach telemetry, close the database connection and the widgets."""
        self.bridge.stop()
        self.queries.close()
        for child in (self.table, self.timeline, self.events, self.analytics, self.partitions):
            child.close()
        super().close()

    def static_html(self) -> str:
        """A snapshot of the visible page (and the selected run) as plain HTML."""
        caption = f"continuum observer — snapshot of page {self.pager.page + 1} (run the notebook for the live observer)"
        return static.runs_table_html(self.table.rows, caption=caption) + self._static_detail

    def _ipython_display_(self) -> None:
        """Display the widget, then a static snapshot as a second output.

        Front ends that render the widget also load ``widgets/observer.css``, which hides the
        snapshot (``.cn-static-fallback``); where widgets cannot render — ``nbconvert --to html``
        offline, GitHub, a notebook reopened without its kernel — the snapshot is what is read.
        """
        from IPython.display import HTML, display

        display(self._repr_mimebundle_(), raw=True)
        display(HTML(f'<div class="cn-static-fallback">{self.static_html()}</div>'))


def _resolve(instance: Any) -> tuple[Any, str, str]:
    """(instance object, its name, its conninfo) for None / a name / an Instance."""
    if instance is not None and not isinstance(instance, str) and hasattr(instance, "conninfo"):
        inst = instance
    else:
        from ..engine.instance import instance as get_instance

        inst = get_instance(instance)
    # The instance's store applies pending migrations on first use, so a fresh database shows an
    # empty observer rather than "relation does not exist".
    _ = inst.store
    return inst, str(inst.name), str(inst.conninfo)


def build_observer(instance: Any = None, read_only: bool = False, *, page_size: int = 25,
                   live: bool = True) -> ObserverApp:
    inst, name, conninfo = _resolve(instance)
    return ObserverApp(
        ObserverQueries(conninfo),
        conninfo=conninfo,
        actions=None if read_only else ApiActions(inst),
        travel=ApiTimeTravel(inst),
        label=name,
        instance_name=name,
        read_only=read_only,
        page_size=page_size,
        live=live,
    )
