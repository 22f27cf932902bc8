"""The wheel: it ships migrations/ and widgets/, installs with only the core dependencies, and its
``continuum`` CLI migrates and lists partitions of a fresh database from that clean venv.

The wheel is built offline (``python -m build --wheel --no-isolation``, hatchling from the test
venv) and installed into a new venv, one per module; pip fetches the core dependencies from the
configured index (or its cache / find-links).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: Not a dependency of the core: none of these may be installed by ``pip install <wheel>``.
EXTRAS_ONLY = ("ipywidgets", "anywidget", "ipykernel", "duckdb", "opentelemetry", "pyarrow", "matplotlib")


def _run(argv: list[str], *, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    # Without PYTHONPATH: the clean venv must not find a source checkout (or anything else) there.
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**base, **(env or {})},
    )
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="the `build` package (dev extra) builds the wheel")
    pytest.importorskip("hatchling", reason="hatchling (dev extra) is the offline build backend")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)], cwd=REPO)
    wheels = list(out.glob("continuum_nb-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding the wheel and nothing but its core dependencies."""
    target = tmp_path_factory.mktemp("wheel-venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(target)], cwd=target.parent)
    python = target / "bin" / "python"
    # The test venv's pip installs into the new one (no pip bootstrap in the new venv).
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)], cwd=target.parent)
    yield target


def test_wheel_ships_migrations_and_widgets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("migrations", "widgets"):
        shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith(f"continuum_nb/_data/{folder}/")}
        in_repo = {p.name for p in (REPO / folder).iterdir() if p.is_file()}
        assert in_repo and shipped == in_repo, (folder, in_repo ^ shipped)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "continuum = continuum_nb.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_core_imports_without_extras(venv: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys, continuum_nb, continuum_nb.cli\n"
        "from continuum_nb.store.migrate import migrations_dir, available\n"
        f"extras = [m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m) is not None]\n"
        "assert not extras, f'extras installed with the core: {extras}'\n"
        "print(migrations_dir())\n"
        "print(len(available()))\n"
        "print(continuum_nb.__file__)\n"
    )
    # cwd is a temp dir, so nothing can come from the source checkout.
    out = _run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path).splitlines()
    site = str(venv)
    assert out[0].startswith(site) and out[0].endswith("continuum_nb/_data/migrations"), out[0]
    assert int(out[1]) == len(list((REPO / "migrations").glob("*.sql")))
    assert out[2].startswith(site), out[2]
    widgets = Path(out[2]).parent / "_data" / "widgets"
    assert sorted(p.name for p in widgets.iterdir()) == sorted(p.name for p in (REPO / "widgets").iterdir() if p.is_file())


def test_installed_cli_migrates_and_lists_partitions(venv: Path, empty_db_url: str, tmp_path: Path) -> None:
    for module in ("migrate", "partitions"):
        if not (REPO / "continuum_nb" / "commands" / f"{module}.py").exists():
            pytest.skip(f"continuum_nb/commands/{module}.py is not written yet")
    continuum = str(venv / "bin" / "continuum")
    env = {"CONTINUUM_DATABASE_URL": ""}  # only the explicit --database-url counts
    migrated = _run([continuum, "migrate", "--database-url", empty_db_url], cwd=tmp_path, env=env)
    assert "20260601000000" in migrated or "partition_continuum_events" in migrated, migrated
    listed = _run([continuum, "partitions", "list", "--database-url", empty_db_url], cwd=tmp_path, env=env)
    assert "continuum_events_y" in listed, listed
    # Applied for real: a second migrate has nothing left to do.
    import psycopg

    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute("SELECT count(*) FROM continuum_schema_migrations").fetchone()
    assert row is not None and row[0] == len(list((REPO / "migrations").glob("*.sql")))


def test_installed_cli_runs_the_demo_with_only_the_core(venv: Path, db_url: str, tmp_path: Path) -> None:
    """`pip install -e .` (no extras) is enough for `continuum demo`: the demo runs its workflow
    from the clean venv, where none of the extras' packages exist."""
    continuum = str(venv / "bin" / "continuum")
    out = _run([continuum, "demo", "--database-url", db_url], cwd=tmp_path, timeout=180,
               env={"CONTINUUM_DATABASE_URL": ""})
    assert "(state: completed)" in out and "after 2 attempt(s)" in out, out
    assert "timer_fired" in out and "signal_received" in out, out
