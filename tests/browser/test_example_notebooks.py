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

# Each notebook works on a database of its own, named after the kernel's default one plus this.
OWN_DB = {
    "03_observer.ipynb": "_example_observer",
    "07_migrating_from_v0_1.ipynb": "_example_legacy",
    "10_pipeline_at_size.ipynb": "_example_pipeline",
}


@pytest.fixture
def example_db(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """The kernel's default database; the notebook's own, created next to it, is dropped after
    (this fixture is set up before the lab, so it is torn down after the lab has stopped)."""
    try:
        yield db_url
    finally:
        own = conninfo_to_dict(db_url)["dbname"] + OWN_DB[request.param]
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')


def _check_observer(page: Any, runs: int) -> None:
    from playwright.sync_api import expect

    observer = page.locator(".cn-observer")
    expect(observer).to_have_count(1)
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table.locator("tr[data-run-id]")).to_have_count(runs)
    # the static snapshot is for renderers without widgets only
    expect(page.locator(".cn-static-fallback")).to_be_hidden()
    # a run selected (10 selects its pipeline in code, 03 by a click): its timeline draws bars
    if not observer.locator("[data-testid=cn-timeline] .cn-bar").count():
        table.locator("tr[data-run-id]").first.click()
    expect(observer.locator("[data-testid=cn-timeline] .cn-bar").first).to_be_visible()


def _check_upgrade_buttons(page: Any) -> None:
    from playwright.sync_api import expect

    # the %%workflow summary offers to upgrade the v0.1 run that replays cleanly
    expect(page.get_by_role("button", name="Upgrade")).to_have_count(1)
    expect(page.get_by_role("button", name="Upgrade")).to_be_visible()


CHECKS = {
    "03_observer.ipynb": lambda page: _check_observer(page, runs=4),
    "07_migrating_from_v0_1.ipynb": _check_upgrade_buttons,
    "10_pipeline_at_size.ipynb": lambda page: _check_observer(page, runs=1),
}


# One JupyterLab per notebook: a lab restores the tabs it had open, and Run All would then run
# whichever notebook it put in front.
@pytest.mark.parametrize(("notebook", "example_db"), [(n, n) for n in OWN_DB], ids=[n[:2] for n in OWN_DB],
                         indirect=["example_db"])
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
    # a widget that failed to render says so in its output area
    expect(page.get_by_text("Error displaying widget", exact=False)).to_have_count(0)
    CHECKS[notebook](page)
    assert console == [], console
