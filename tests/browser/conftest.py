"""JupyterLab 4 + headless Chromium for the browser tests.

Each test gets its own JupyterLab on loopback (token auth, its own JUPYTER_*/IPYTHONDIR dirs, so a
developer's settings or extensions never leak in) and a Playwright page on the system Chromium
(``apt-get install -y chromium``; never ``playwright install``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CONTINUUM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright's expect() default (5 s) is too short for a kernel start + Run All on a busy CI box.
EXPECT_TIMEOUT_MS = 60_000


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    app: str = "lab"

    def notebook_url(self, name: str) -> str:
        where = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.url}/{where}/{name}?token={self.token}"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"JupyterLab did not answer {url} within {deadline_s:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def start_lab(tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """``start_lab(env={...})`` starts JupyterLab (``app="notebook"``: Notebook 7) with
    ``tmp_path/'root'`` as its root dir."""
    if not shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) and not Path(sys.executable).with_name("jupyter-lab").exists():
        pytest.skip("jupyterlab is not installed (pip install 'continuum-nb[dev]')")
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str] | None = None, app: str = "lab") -> Lab:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        dirs = {k: tmp_path / d for k, d in (("JUPYTER_CONFIG_DIR", "jupyter_config"), ("JUPYTER_DATA_DIR", "jupyter_data"),
                                            ("JUPYTER_RUNTIME_DIR", "jupyter_runtime"), ("IPYTHONDIR", "ipython"))}
        for d in dirs.values():
            d.mkdir(exist_ok=True)
        # No news popup over the widgets.
        settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        full_env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **(env or {})}
        full_env.pop("JUPYTER_PATH", None)
        port, token = _free_port(), secrets.token_hex(16)
        log = tmp_path / "jupyterlab.log"
        cmd = [
            sys.executable, "-m", "jupyterlab" if app == "lab" else "notebook", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        ]
        if app == "lab":
            cmd += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
        else:
            cmd += ["--JupyterNotebookApp.expose_app_in_browser=True"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:   # CI containers run as root
            cmd.append("--allow-root")
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=root, start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/api/status?token={token}", proc, log)
        return Lab(url, token, root, log, app)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)   # the server and its kernels (own session)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def page() -> Iterator[Any]:
    """A Playwright page in headless system Chromium, with a long expect() timeout."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`")
    sync_api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        pg = context.new_page()
        pg.set_default_timeout(EXPECT_TIMEOUT_MS)
        try:
            yield pg
        finally:
            context.close()
            browser.close()


# --- helpers used by the tests ---------------------------------------------------------------------

KERNEL_IDLE_JS = """() => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return false;
  const w = app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.content && w.content.widgets && w.content.widgets.length);
}"""

# True when every code cell ran, or as soon as one failed (Run All stops there): fail fast.
ALL_CELLS_DONE_JS = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  if (cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'))) return true;
  if (!k || k.status !== 'idle') return false;
  return cells.every(c => c.model.executionCount !== null);
}"""

CELL_ERRORS_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === 'code')
  .flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
  .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n')))"""


def open_and_run_all(page: Any, lab: Lab, name: str) -> None:
    """Open a notebook, wait for its kernel to be idle, Run All, wait until every code cell ran."""
    page.goto(lab.notebook_url(name))
    page.wait_for_function(KERNEL_IDLE_JS, timeout=EXPECT_TIMEOUT_MS * 2)
    # Clearing outputs also clears execution counts, so "every cell has a count" means "ran now".
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_CELLS_DONE_JS, timeout=EXPECT_TIMEOUT_MS * 2)


def cell_errors(page: Any) -> list[str]:
    """Errors raised by the notebook's cells (tracebacks, ANSI colours included)."""
    return list(page.evaluate(CELL_ERRORS_JS))
