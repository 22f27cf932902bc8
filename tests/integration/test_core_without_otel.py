"""The core imports and runs in an environment without opentelemetry-api.

A clean venv gets the project (``--no-deps``) plus only the core dependencies from
pyproject.toml; nothing from the otel extra. Building it takes ~40 s (pip), hence ``slow``.
"""

from __future__ import annotations

import subprocess
import textwrap
import venv
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(python: Path, code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    script = cwd / "check.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv holding continuum-nb and its core dependencies only."""
    env_dir = tmp_path_factory.mktemp("core-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for args in (["--no-deps", "-e", str(ROOT)], core):
        out = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            capture_output=True, text=True, timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
    return python


def test_opentelemetry_is_really_absent(core_python: Path, tmp_path: Path) -> None:
    out = _run(core_python, "import importlib.util, sys\nprint(importlib.util.find_spec('opentelemetry'))\n", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def test_core_imports_and_scans_without_opentelemetry(core_python: Path, tmp_path: Path) -> None:
    out = _run(
        core_python,
        """
        import warnings
        import continuum_nb as cn
        from continuum_nb import otel, telemetry
        from continuum_nb.determinism import check_workflow

        assert "opentelemetry" not in __import__("sys").modules
        assert otel.capture_trace_context() is None
        try:
            otel.setup()
        except ImportError as exc:
            assert "pip install continuum-nb[otel]" in str(exc), exc
        else:
            raise SystemExit("otel.setup() worked without opentelemetry")

        seen = []
        telemetry.attach("probe", [("continuum", "run", "started")], lambda e, m, md: seen.append(e))
        telemetry.emit(("continuum", "run", "started"), {}, {"run_id": "x"})
        assert seen == [("continuum", "run", "started")]

        import time

        async def wf():
            return time.time()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            findings = check_workflow(wf)
        assert [f.target for f in findings] == ["time.time"], findings
        print("ok")
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.postgres
def test_core_runs_a_workflow_without_opentelemetry(core_python: Path, tmp_path: Path, db_url: str) -> None:
    out = _run(
        core_python,
        f"""
        import json
        import sys
        import continuum_nb as cn

        @cn.activity
        def double(x: int) -> int:
            return 2 * x

        @cn.workflow(name="core_no_otel")
        async def core_no_otel(x: int) -> dict:
            doubled = await double(x)
            approval = await cn.signal("go")
            return {{"doubled": doubled, "by": approval["by"]}}

        inst = cn.Instance(name="core", database_url={db_url!r})
        run = cn.start(core_no_otel, {{"x": 21}}, instance="core")
        cn.signal(run.id, "go", {{"by": "ana"}}, instance="core")
        result = cn.wait(run.id, timeout=60, instance="core")
        inst.close()
        assert "opentelemetry" not in sys.modules, "the core imported opentelemetry"
        print(json.dumps(result, sort_keys=True))
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == '{"by": "ana", "doubled": 42}'
