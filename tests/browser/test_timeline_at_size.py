"""The observer's timeline at 60, 10,000 and 100,000 events in JupyterLab + Chromium: no two
labels overlap, none leaves the axis, no console error, the widget stays about a screen high,
and all of it again after a page reload (the kernel still running)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.observer_data import insert_run

from .conftest import EXPECT_TIMEOUT_MS, Lab, cell_errors, open_and_run_all

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SIZES = (60, 10_000, 100_000)

# Every label box of the timeline: any two that overlap, any bar label or tick that leaves the
# axis (or its own bar), how many bars the browser holds.
LABEL_CHECK_JS = """() => {
  const tl = document.querySelector('.cn-observer [data-testid=cn-timeline] svg');
  if (!tl) return {missing: true};
  const axis = tl.querySelector('.cn-axis-area').getBoundingClientRect();
  const boxes = [...tl.querySelectorAll('.cn-label')].map(n => {
    const r = n.getBoundingClientRect();
    return {text: n.textContent, cls: n.getAttribute('class'), l: r.left, r: r.right, t: r.top, b: r.bottom,
            bar: n.closest('.cn-bar') ? n.closest('.cn-bar').querySelector('rect').getBoundingClientRect() : null};
  }).filter(b => b.r > b.l);
  const problems = [];
  const eps = 0.5;
  for (const b of boxes) {
    const inPlot = b.cls.includes('cn-bar-label') || b.cls.includes('cn-tick');
    if (inPlot && (b.l < axis.left - eps || b.r > axis.right + eps)) problems.push('outside the axis: ' + b.text);
    if (b.bar && (b.l < b.bar.left - eps || b.r > b.bar.right + eps)) problems.push('wider than its bar: ' + b.text);
  }
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++) {
      const p = boxes[i], q = boxes[j];
      if (p.l < q.r - eps && q.l < p.r - eps && p.t < q.b - eps && q.t < p.b - eps)
        problems.push('overlap: ' + p.text + ' / ' + q.text);
    }
  return {problems, labels: boxes.length, bars: tl.querySelectorAll('.cn-bar').length,
          barLabels: tl.querySelectorAll('.cn-bar-label').length,
          merged: tl.querySelectorAll('.cn-merged').length};
}"""


def _artifacts(tmp_path: Path) -> Path:
    """Screenshots go to CONTINUUM_TEST_ARTIFACTS (CI keeps .ci-work/artifacts), else tmp_path."""
    where = Path(os.environ.get("CONTINUUM_TEST_ARTIFACTS") or tmp_path) / "observer"
    where.mkdir(parents=True, exist_ok=True)
    return where


def _check_labels(page: Any, what: str) -> dict[str, Any]:
    page.wait_for_function("() => !!document.querySelector('.cn-observer [data-testid=cn-timeline] svg .cn-bar')")
    result = page.evaluate(LABEL_CHECK_JS)
    assert not result.get("missing"), f"{what}: no timeline"
    assert result["problems"] == [], f"{what}: " + "; ".join(result["problems"][:10])
    assert result["labels"] > 0, f"{what}: no label at all"
    return result


def test_timeline_reads_at_every_size_and_after_a_reload(start_lab: Any, page: Any, tmp_path: Path, db_url: str) -> None:
    from playwright.sync_api import expect

    runs = {n: insert_run(db_url, n, workflow=f"pipeline_{n}") for n in SIZES}
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    lab: Lab = start_lab(env={"CONTINUUM_DATABASE_URL": db_url})
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import continuum_nb as cn\nobs = cn.observer(live=False)\nobs")]
    nbformat.write(nb, lab.root / "at_size.ipynb")
    open_and_run_all(page, lab, "at_size.ipynb")
    assert not cell_errors(page), cell_errors(page)
    shots = _artifacts(tmp_path)
    observer = page.locator(".cn-observer")
    table = observer.locator("[data-testid=cn-runs-table]")
    expect(table.locator("tr[data-run-id]")).to_have_count(len(SIZES))
    # a short id on screen, the full id on hover and in what is copied
    first_id = table.locator(f"tr[data-run-id='{runs[60]}'] td").first
    assert first_id.text_content() == str(runs[60])
    assert first_id.locator(".cn-id-rest").bounding_box()["width"] < 2

    # one hint at a time: nothing selected yet, only the runs list says what to do
    expect(observer.get_by_text("Click a run", exact=False)).to_have_count(1)
    expect(observer.get_by_text("Select a run", exact=False)).to_have_count(0)

    viewport_h = page.viewport_size["height"]
    for n in SIZES:
        table.locator(f"tr[data-run-id='{runs[n]}']").click()
        expect(observer.locator(".cn-tl-info")).to_contain_text(f"{n - 1} events")
        result = _check_labels(page, f"{n} events")
        assert result["bars"] <= 5 * 760, result          # aggregated: never one bar per event
        if n >= 10_000:
            assert result["merged"] > 0, result
        observer.screenshot(path=str(shots / f"observer_{n}_events.png"))
        # the detail stays in proportion: the journal is collapsed, the widget about a screen high
        expect(observer.locator(".cn-events")).to_be_hidden()
        assert observer.bounding_box()["height"] <= viewport_h, observer.bounding_box()
        # zoom in twice: still no overlap, nothing outside the axis
        observer.get_by_role("button", name="zoom in").click()
        expect(observer.locator(".cn-tl-info")).to_contain_text("showing")
        observer.get_by_role("button", name="zoom in").click()
        _check_labels(page, f"{n} events zoomed in")
        observer.get_by_role("button", name="show the whole run").click()
        expect(observer.locator(".cn-tl-info")).not_to_contain_text("showing")

    # a click on a bar opens the journal on exactly its events
    observer.locator("[data-testid=cn-timeline] .cn-bar").first.click()
    expect(observer.locator(".cn-events")).to_be_visible()
    expect(observer.locator(".cn-events")).to_contain_text("selected")
    rows = observer.locator(".cn-ev-row")
    assert 1 <= rows.count() <= 50
    expect(rows.first.locator("pre")).to_be_hidden()          # one line until opened
    assert observer.bounding_box()["height"] <= viewport_h * 1.5, observer.bounding_box()
    observer.screenshot(path=str(shots / "observer_events_selected.png"))

    # a typed payload does not follow the operator to another run
    observer.get_by_placeholder("JSON payload", exact=False).fill('{"approved": true}')
    table.locator(f"tr[data-run-id='{runs[60]}']").click()
    expect(observer.get_by_placeholder("JSON payload", exact=False)).to_have_value("")

    # a disabled button looks disabled (resume: only for drifted runs)
    resume = observer.locator("button:text-is('resume')")
    expect(resume).to_be_disabled()
    # (ipywidgets alone dims it to 0.6, which next to a coloured button still reads as enabled)
    assert float(resume.evaluate("b => getComputedStyle(b).opacity")) <= 0.45
    assert "grayscale" in resume.evaluate("b => getComputedStyle(b).filter")
    assert resume.evaluate("b => getComputedStyle(b).cursor") == "not-allowed"

    assert console == [], console

    # after a reload (same kernel): the widgets come back, the tabs switch, labels still read
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.reload()
    expect(observer.locator("[data-testid=cn-runs-table]")).to_be_visible(timeout=EXPECT_TIMEOUT_MS)
    observer.get_by_role("tab", name="Partitions").click()
    expect(observer.get_by_role("button", name="List partitions")).to_be_visible()
    observer.get_by_role("tab", name="Runs").click()
    expect(table).to_be_visible()
    table.locator(f"tr[data-run-id='{runs[100_000]}']").click()
    expect(observer.locator(".cn-tl-info")).to_contain_text(f"{100_000 - 1} events")
    _check_labels(page, "100,000 events after a reload")
    observer.screenshot(path=str(shots / "observer_after_reload.png"))
    assert console == [], console
