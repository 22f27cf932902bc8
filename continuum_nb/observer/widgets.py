"""The observer's two custom views, as anywidget classes whose ESM/CSS come from ``widgets/``.

The front-end files ship inside the wheel (``continuum_nb/_data/widgets``) and sit at the
repository root in a source checkout / editable install; they are read once, as text, so no CDN,
bundler or file watcher is involved.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["RunsTable", "Timeline", "widgets_dir"]


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
    """A run's timeline, drawn from ``viewmodel.timeline_layout`` output."""

    _esm = _asset("timeline.js")
    _css = _asset("observer.css")
    layout = traitlets.Dict().tag(sync=True)
    run_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
