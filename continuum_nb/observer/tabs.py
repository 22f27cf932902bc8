"""The observer's Analytics and Partitions tabs (thin ipywidgets over other modules' APIs).

Both load on demand: analytics starts DuckDB (and needs the ``analytics`` extra), and listing
partitions counts rows; neither should slow down opening the observer.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ..errors import ContinuumError
from .static import STYLE, table_html
from .viewmodel import PARTITION_COLUMNS, partition_view

__all__ = ["AnalyticsTab", "PartitionsTab", "ANALYTICS_FRAMES"]

#: (title, name of the ready-made query in continuum_nb.analytics)
ANALYTICS_FRAMES: tuple[tuple[str, str], ...] = (
    ("Run durations by workflow (completed runs)", "run_durations"),
    ("Activity latency and retry rates", "activity_latency"),
    ("Signal wait times", "signal_wait_times"),
    ("Events by type and month", "events_by_type_and_month"),
)

_MISSING_EXTRA = (
    "Analytics needs the analytics extra: <code>pip install 'continuum-nb[analytics]'</code> "
    "(DuckDB, pandas), then reopen the observer."
)


def _frame_html(df: Any, max_rows: int = 50) -> str:
    if df is None or len(df) == 0:
        return "<p><i>no rows yet</i></p>"
    return str(df.head(max_rows).to_html(index=False, border=0, classes="cn-obs-table", float_format=lambda v: f"{v:.3f}"))


class AnalyticsTab(w.VBox):
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self.load_button = w.Button(description="Load analytics", icon="bar-chart",
                                    tooltip="Run the ready-made DuckDB queries over the journal")
        self.output = w.HTML("<p>Ready-made DataFrames from <code>cn.analytics</code>; press Load.</p>")
        self.load_button.on_click(lambda _b: self.load())
        super().__init__([self.load_button, self.output])

    def load(self) -> None:
        try:
            from .. import analytics
        except ImportError:
            self.output.value = f"<p class='cn-obs-warn'>{_MISSING_EXTRA}</p>"
            return
        parts = [STYLE]
        try:
            con = analytics.connect(database_url=self._conninfo, progress=False)
        except ImportError:
            self.output.value = f"<p class='cn-obs-warn'>{_MISSING_EXTRA}</p>"
            return
        except Exception as exc:  # the observer must stay usable when analytics cannot start
            self.output.value = f"<p class='cn-obs-warn'>Analytics unavailable: {html.escape(str(exc))}</p>"
            return
        try:
            for title, name in ANALYTICS_FRAMES:
                fn: Callable[..., Any] | None = getattr(analytics, name, None)
                if fn is None:
                    continue
                try:
                    parts.append(f"<h4>{html.escape(title)}</h4>" + _frame_html(fn(con)))
                except Exception as exc:
                    parts.append(f"<h4>{html.escape(title)}</h4><p class='cn-obs-warn'>{html.escape(str(exc))}</p>")
        finally:
            con.close()
        self.output.value = "".join(parts)


class PartitionsTab(w.VBox):
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self.warning = w.HTML("")
        self.refresh_button = w.Button(description="List partitions", icon="refresh")
        self.output = w.HTML("<p>Monthly partitions of <code>continuum_events</code>; press List.</p>")
        self.refresh_button.on_click(lambda _b: self.load())
        self.missing: bool | None = None
        super().__init__([self.warning, self.refresh_button, self.output])

    def check_next_month(self) -> bool | None:
        """Cheap check run when the observer opens; True when next month has no partition."""
        try:
            from ..partitions import missing_next_month, next_month

            self.missing = bool(missing_next_month(self._conninfo))
            month = next_month().strftime("%Y-%m")
        except (ImportError, ContinuumError, OSError) as exc:
            self.warning.value = f"<p class='cn-obs-warn'>Cannot check partitions: {html.escape(str(exc))}</p>"
            return None
        if self.missing:
            self.warning.value = (
                STYLE + f"<p class='cn-obs-warn' data-testid='cn-partition-warning'>⚠ next month ({month}) has no "
                f"continuum_events partition: events written then will fail. Run "
                f"<code>continuum partitions create {month}</code>.</p>"
            )
        else:
            self.warning.value = f"<p>Next month ({month}) has its partition.</p>"
        return self.missing

    def load(self) -> None:
        try:
            from ..partitions import list_partitions

            parts = list_partitions(database_url=self._conninfo)
        except (ImportError, ContinuumError, OSError) as exc:
            self.output.value = f"<p class='cn-obs-warn'>{html.escape(str(exc))}</p>"
            return
        rows = [partition_view(p) for p in parts]
        self.output.value = STYLE + table_html(rows, PARTITION_COLUMNS, empty="no partitions")
