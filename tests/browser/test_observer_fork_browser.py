"""The observer's actions on an event in a real browser (JupyterLab 4 + headless Chromium): look at
a finished run's state at an event, then "fork from here" and see the fork selected in the list."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest

from .conftest import Lab, cell_errors, open_and_run_all

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _screenshot(target: Any, tmp_path: Path, name: str, *, docs: bool = True) -> None:
    """Under the test's tmp dir; also into docs/img/ (docs/observer.md) when CONTINUUM_DOCS_SCREENSHOTS=1."""
    path = tmp_path / f"{name}.png"
    target.screenshot(path=str(path))
    if docs and os.environ.get("CONTINUUM_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / path.name)

CODE = '''\
import continuum_nb as cn


@cn.activity(name="browser_fork.add")
def add(x: int, y: int) -> int:
    return x + y


@cn.workflow(name="browser_fork_sums")
async def sums(start: int) -> int:
    first = await add(start, 1)
    second = await add(first, 10)
    return await add(second, 100)


run = cn.start(sums, {"start": 1})
print(run.wait(timeout=60))
obs = cn.observer()
obs
'''


def test_fork_from_here_shows_the_new_run_selected(start_lab: Any, page: Any, tmp_path: Path, db_url: str) -> None:
    from playwright.sync_api import expect

    console: list[str] = []
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    lab: Lab = start_lab(env={"CONTINUUM_DATABASE_URL": db_url})
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(CODE)]
    nbformat.write(nb, lab.root / "fork.ipynb")
    open_and_run_all(page, lab, "fork.ipynb")
    errors = cell_errors(page)
    assert not errors, "\n".join(errors) + "\n--- server log ---\n" + lab.log_tail()

    observer = page.locator(".cn-observer")
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table.locator("td[data-state=completed]")).to_have_count(1)
    original = table.locator("tr[data-run-id]").first.get_attribute("data-run-id")
    assert original
    table.locator(f"tr[data-run-id='{original}']").click()
    event = observer.get_by_placeholder("#", exact=True)
    expect(event).to_have_value("6")                        # the run's last event

    # the state at event 4: two commands so far, the frame's locals
    event.fill("4")
    event.press("Enter")
    observer.get_by_role("button", name="state at this event").click()
    state = observer.locator(".cn-state-view[data-upto='4']")
    expect(state).to_be_visible()
    expect(state.locator(".cn-state-local[data-name=second]")).to_have_text("second = 12")
    box = observer.locator(".cn-state-box").bounding_box()
    assert box is not None and box["height"] < 300           # a small box, not the whole replay
    _screenshot(observer, tmp_path, "observer_state_at_event")

    observer.get_by_role("button", name="fork from here").click()
    # the list may draw the new row before the selection moves to it: wait for the selection itself
    expect(table.locator("tr[data-run-id]")).to_have_count(2)
    selected = table.locator(f"tr.cn-selected:not([data-run-id='{original}'])")
    expect(selected).to_have_count(1)
    expect(table.locator("tr.cn-selected")).to_have_count(1)
    fork_id = selected.get_attribute("data-run-id")
    assert fork_id and fork_id != original
    expect(observer.get_by_text(f"new run {fork_id[:8]} selected", exact=False)).to_be_visible()
    expect(selected.locator("td.cn-state")).to_have_text("completed")   # live refresh: it ran to the end
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT forked_from_run_id::text, forked_at_seq, state FROM continuum_runs WHERE id = %s",
                           (fork_id,)).fetchone()
    assert row == (original, 4, "completed")
    _screenshot(page, tmp_path, "observer_fork", docs=False)
    assert console == [], console
