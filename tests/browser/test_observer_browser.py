"""The observer in a real browser: JupyterLab 4 + headless Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest

from .conftest import Lab, cell_errors, open_and_run_all

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"


def _notebook_db(db_url: str) -> str:
    """notebooks/03_observer.ipynb works on a database of its own, named after the default one."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(db_url, dbname=conninfo_to_dict(db_url)["dbname"] + "_example_observer")


def _drop_notebook_db(db_url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(_notebook_db(db_url))["dbname"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def observer_db(db_url: str) -> Any:
    """(the kernel's default database, the database notebook 03 creates next to it and uses)."""
    try:
        yield db_url, _notebook_db(db_url)
    finally:
        _drop_notebook_db(db_url)


def _save_screenshot(page: Any, target: Any, tmp_path: Path, name: str, *, docs: bool = True) -> Path:
    """Under the test's tmp dir; also into docs/img/ (for docs/observer.md) when
    CONTINUUM_DOCS_SCREENSHOTS=1."""
    path = tmp_path / f"{name}.png"
    target.screenshot(path=str(path))
    if docs and os.environ.get("CONTINUUM_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / path.name)
    return path


def test_custom_views_render_and_talk_back_to_the_kernel(start_lab: Any, page: Any, tmp_path: Path) -> None:
    """The anywidget views load from the package (no CDN, no build) and a click reaches Python."""
    from playwright.sync_api import expect

    lab: Lab = start_lab()
    run_id = str(uuid.uuid4())
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import ipywidgets as w\n"
            "from continuum_nb.observer.widgets import RunsTable, Timeline\n"
            f"table = RunsTable(rows=[{{'id': '{run_id}', 'short_id': '{run_id[:8]}', 'workflow': 'order', "
            "'version': 'abc', 'state': 'suspended', 'started': '2026-11-25 12:00:00', 'duration': '3 s', "
            "'lease_owner': ''}])\n"
            "echo = w.HTML('nothing selected')\n"
            "table.observe(lambda ch: setattr(echo, 'value', 'selected ' + ch['new']), names='selected_id')\n"
            "from datetime import datetime, timedelta, timezone\n"
            "from continuum_nb.observer.timeline import journal_spans\n"
            "t0 = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)\n"
            "ev = lambda seq, kind, s, **p: {'seq': seq, 'event_type': kind, 'payload': p, 'inserted_at': t0 + timedelta(seconds=s)}\n"
            "spans = journal_spans([ev(1, 'activity_scheduled', 0, activity='charge'), "
            "ev(2, 'activity_completed', 4, activity='charge', scheduled_seq=1, attempts=2), "
            "ev(3, 'signal_awaited', 4, name='approve')], started_at=t0, now=t0 + timedelta(seconds=10))\n"
            "timeline = Timeline()\n"
            "timeline.show('x', spans)\n"
            "w.VBox([table, echo, timeline])"
        )
    ]
    nbformat.write(nb, lab.root / "views.ipynb")
    open_and_run_all(page, lab, "views.ipynb")
    row = page.locator(f"[data-testid=cn-runs-table] tr[data-run-id='{run_id}']")
    expect(row).to_be_visible()
    expect(row.locator("td.cn-state")).to_have_text("suspended")
    timeline = page.locator("[data-testid=cn-timeline] svg")
    expect(timeline).to_be_visible()
    expect(page.locator("[data-testid=cn-timeline] .cn-bar-completed")).to_have_count(1)
    expect(page.locator("[data-testid=cn-timeline] .cn-gap-signal")).to_have_count(1)
    row.click()
    expect(page.get_by_text(f"selected {run_id}")).to_be_visible()
    _save_screenshot(page, page.locator(".jp-Notebook"), tmp_path, "views", docs=False)
    assert not cell_errors(page), cell_errors(page)


def test_observer_notebook_cancel_a_suspended_run(start_lab: Any, page: Any, tmp_path: Path, observer_db: Any) -> None:
    """notebooks/03_observer.ipynb end to end: Run All, find the runs table and the timeline,
    cancel the suspended run with the widget, see ``cancelled`` in the widget and the database."""
    from playwright.sync_api import expect

    db_url, nb_db = observer_db

    console: list[str] = []   # the notebook's widgets render without a console error
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    lab: Lab = start_lab(env={"CONTINUUM_DATABASE_URL": db_url})
    shutil.copy(REPO / "notebooks" / "03_observer.ipynb", lab.root / "03_observer.ipynb")
    open_and_run_all(page, lab, "03_observer.ipynb")
    errors = cell_errors(page)
    assert not errors, "\n".join(errors) + "\n--- server log ---\n" + lab.log_tail()

    observer = page.locator(".cn-observer")
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table).to_be_visible()
    # the static snapshot printed under the widget is for renderers without widgets only
    expect(page.locator(".cn-static-fallback")).to_be_hidden()
    expect(table.locator("td[data-state=completed]")).to_have_count(3)
    suspended = table.locator("tr:has(td[data-state=suspended])")
    expect(suspended).to_have_count(1)
    run_id = suspended.get_attribute("data-run-id")
    assert run_id
    with psycopg.connect(nb_db) as conn:
        row = conn.execute("SELECT state FROM continuum_runs WHERE id = %s", (run_id,)).fetchone()
    assert row == ("suspended",)

    # The run detail: its timeline shows the completed activity and the open signal wait.
    suspended.click()
    timeline = observer.locator("[data-testid=cn-timeline] svg")
    expect(timeline).to_be_visible()
    expect(observer.locator("[data-testid=cn-timeline] .cn-bar-completed")).to_have_count(1)
    expect(observer.locator("[data-testid=cn-timeline] .cn-gap-signal.cn-gap-open")).to_have_count(1)
    observer.get_by_text("events (3)").click()   # the decoded journal, collapsed until opened
    expect(observer.locator(".cn-ev-type:text-is('signal_awaited')")).to_be_visible()
    _save_screenshot(page, observer, tmp_path, "observer_run_detail")
    _save_screenshot(page, observer.locator("[data-testid=cn-timeline]"), tmp_path, "observer_timeline")

    # Bad JSON in the signal editor shows an error and sends nothing.
    observer.get_by_placeholder("JSON payload", exact=False).fill('{"by": ana}')
    observer.get_by_role("button", name="send signal").click()
    expect(observer.get_by_text("is not valid JSON", exact=False)).to_be_visible()
    with psycopg.connect(nb_db) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_signals WHERE run_id = %s", (run_id,)).fetchone() == (0,)
    _save_screenshot(page, observer, tmp_path, "observer_bad_json")

    # Cancel it from the widget.
    observer.locator("button:text-is('cancel')").click()
    expect(table.locator(f"tr[data-run-id='{run_id}'] td.cn-state")).to_have_text("cancelled")
    with psycopg.connect(nb_db) as conn:
        row = conn.execute("SELECT state FROM continuum_runs WHERE id = %s", (run_id,)).fetchone()
    assert row == ("cancelled",)
    expect(observer.locator("button:text-is('cancel')")).to_be_disabled()
    _save_screenshot(page, observer, tmp_path, "observer_cancelled")

    # Live refresh: a run started in the kernel (not through the widget) appears without Refresh.
    page.evaluate(
        """async (code) => {
            const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            await k.requestExecute({ code }).done;
        }""",
        'late = cn.start(order, {"order_id": "C1", "cents": 1}); late.wait(timeout=60)',
    )
    expect(table.locator("td[data-state=completed]")).to_have_count(4)

    # The Analytics and Partitions tabs.
    observer.get_by_role("tab", name="Analytics").click()
    observer.get_by_role("button", name="Load analytics").click()
    expect(observer.get_by_text("Run durations by workflow", exact=False)).to_be_visible()
    assert console == [], console
    _save_screenshot(page, observer, tmp_path, "observer_analytics")
    observer.get_by_role("tab", name="Partitions").click()
    expect(observer.locator("td:text-matches('continuum_events_y\\\\d{4}_m\\\\d{2}')").first).to_be_visible()
    _save_screenshot(page, observer, tmp_path, "observer_partitions")


def test_static_html_export_shows_a_readable_runs_table(tmp_path: Path, observer_db: Any) -> None:
    """`jupyter nbconvert --to html --execute` of notebook 03: without JavaScript, the observer's
    snapshot table is in the page, with the notebook's four runs."""
    import re
    import subprocess
    import sys

    db_url, _ = observer_db
    nb = tmp_path / "03_observer.ipynb"
    shutil.copy(REPO / "notebooks" / "03_observer.ipynb", nb)
    env = {**os.environ, "CONTINUUM_DATABASE_URL": db_url, "IPYTHONDIR": str(tmp_path / "ipython"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(nb)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page_html = (tmp_path / "03_observer.html").read_text()
    fallback = page_html[page_html.index('class="cn-static-fallback"'):]
    runs_table = fallback[: fallback.index("</table>")]
    states = re.findall(r'cn-obs-state-(\w+)">(\w+)</td>', runs_table)
    assert sorted(s for s, _ in states) == ["completed", "completed", "completed", "suspended"]
    assert "observer_demo_order" in runs_table


def test_observer_renders_in_notebook_7(start_lab: Any, page: Any, tmp_path: Path, observer_db: Any) -> None:
    """The same notebook in Notebook 7: the runs table and the timeline render there too, and a
    valid JSON signal sent from the widget completes the waiting run."""
    from playwright.sync_api import expect

    pytest.importorskip("notebook", minversion="7")
    db_url, nb_db = observer_db
    lab: Lab = start_lab(env={"CONTINUUM_DATABASE_URL": db_url}, app="notebook")
    shutil.copy(REPO / "notebooks" / "03_observer.ipynb", lab.root / "03_observer.ipynb")
    open_and_run_all(page, lab, "03_observer.ipynb")
    errors = cell_errors(page)
    assert not errors, "\n".join(errors) + "\n--- server log ---\n" + lab.log_tail()
    observer = page.locator(".cn-observer")
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table.locator("td[data-state=completed]")).to_have_count(3)
    expect(page.locator(".cn-static-fallback")).to_be_hidden()
    suspended = table.locator("tr:has(td[data-state=suspended])")
    run_id = suspended.get_attribute("data-run-id")
    suspended.click()
    expect(observer.locator("[data-testid=cn-timeline] .cn-gap-signal.cn-gap-open")).to_have_count(1)
    _save_screenshot(page, observer, tmp_path, "observer_notebook7", docs=False)

    expect(observer.get_by_placeholder("signal name")).to_have_value("approve")   # pre-filled from the wait
    observer.get_by_placeholder("JSON payload", exact=False).fill('{"by": "ana"}')
    observer.get_by_role("button", name="send signal").click()
    expect(table.locator(f"tr[data-run-id='{run_id}'] td.cn-state")).to_have_text("completed")
    # the live refresh redraws the selected run: its signal wait is closed now
    expect(observer.locator("[data-testid=cn-timeline] .cn-gap-signal.cn-gap-open")).to_have_count(0)
    expect(observer.locator("[data-testid=cn-timeline] .cn-gap-signal")).to_have_count(1)
    with psycopg.connect(nb_db) as conn:
        state, result = conn.execute("SELECT state, result FROM continuum_runs WHERE id = %s", (run_id,)).fetchone()
    assert state == "completed" and result["decision"] == {"by": "ana"}
