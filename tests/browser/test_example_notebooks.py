"""The example notebooks with widgets, as a reader runs them: JupyterLab 4 + headless Chromium,
Run All, every widget renders, and the browser console stays free of errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from .conftest import Lab, cell_errors, open_and_run_all

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]

# notebook -> the suffix of the database it creates next to the default one, the runs its
# observer lists once Run All is done
NOTEBOOKS = {
    "03_observer.ipynb": ("_example_observer", 4),
    "10_pipeline_at_size.ipynb": ("_example_pipeline", 1),
}


@pytest.fixture
def example_db(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """The kernel's default database; the notebook's own, created next to it, is dropped after."""
    own = conninfo_to_dict(db_url)["dbname"] + NOTEBOOKS[request.param][0]
    try:
        yield db_url
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')


@pytest.mark.parametrize(("notebook", "example_db"), [(n, n) for n in NOTEBOOKS], indirect=["example_db"])
def test_example_notebook_widgets_render_without_console_errors(
    notebook: str, example_db: str, start_lab: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    lab: Lab = start_lab(env={"CONTINUUM_DATABASE_URL": example_db})
    shutil.copy(REPO / "notebooks" / notebook, lab.root / notebook)
    open_and_run_all(page, lab, notebook)
    errors = cell_errors(page)
    assert not errors, "\n".join(errors) + "\n--- server log ---\n" + lab.log_tail()

    observer = page.locator(".cn-observer")
    expect(observer).to_have_count(1)
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table).to_be_visible()
    expect(table.locator("tr[data-run-id]")).to_have_count(NOTEBOOKS[notebook][1])
    # the static snapshot is for renderers without widgets; a widget that failed says so in text
    expect(page.locator(".cn-static-fallback")).to_be_hidden()
    expect(page.get_by_text("Error displaying widget", exact=False)).to_have_count(0)
    # a run selected (10 selects its pipeline in code, 03 by a click): its timeline draws bars
    if not observer.locator("[data-testid=cn-timeline] .cn-bar").count():
        table.locator("tr[data-run-id]").first.click()
    expect(observer.locator("[data-testid=cn-timeline] .cn-bar").first).to_be_visible()
    assert console == [], console
