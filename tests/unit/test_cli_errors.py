"""Bad input to ``continuum db`` / ``continuum demo``: one line on stderr, exit code != 0."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def _continuum(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "continuum_nb", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode not in (0, None), proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_unreachable_database() -> None:
    url = f"postgresql://ana:s3cret@127.0.0.1:{_closed_port()}/orders"
    proc = _continuum("demo", "--database-url", url)
    _assert_one_line_error(proc, "continuum demo: error: cannot connect to", "is PostgreSQL running?")
    assert "s3cret" not in proc.stderr


def test_demo_bad_url_scheme() -> None:
    _assert_one_line_error(_continuum("demo", "--database-url", "mysql://root@db/x"), "unsupported database URL scheme 'mysql'")


def test_demo_bad_environment_url() -> None:
    proc = _continuum("demo", env={"CONTINUUM_DATABASE_URL": "not a url"})
    _assert_one_line_error(proc, "is not a PostgreSQL URL")


def test_demo_unknown_instance() -> None:
    _assert_one_line_error(_continuum("demo", "--instance", "billing"), "CONTINUUM_BILLING_DATABASE_URL")


def test_db_start_with_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _assert_one_line_error(_continuum("db", "start", "--data-dir", str(blocker / "sub")), "continuum db: error:", str(blocker))
    assert blocker.read_text() == "not a directory"


def test_db_start_refuses_a_foreign_directory() -> None:
    # Under the system temp dir: as root, pytest's tmp_path parents are not traversable.
    root = Path(tempfile.mkdtemp(prefix="cn-test-cli-"))
    try:
        root.chmod(0o755)
        data = root / "pgdata"
        data.mkdir()
        (data / "notes.txt").write_text("mine")
        proc = _continuum("db", "start", "--data-dir", str(root))
        _assert_one_line_error(proc, "not a PostgreSQL data directory", "move it aside")
        assert (data / "notes.txt").read_text() == "mine"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("argv", [["db"], ["db", "restart"]])
def test_db_usage_errors(argv: list[str]) -> None:
    proc = _continuum(*argv)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
