"""``continuum db status`` says who is connected to the embedded server (the session's pg18 test
server, found through its socket directory)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from continuum_nb.cli import main

pytestmark = pytest.mark.postgres


@pytest.mark.servers("pg18")
def test_db_status_lists_the_sessions(admin_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    socket_dir = Path(str(conninfo_to_dict(admin_url)["host"]))
    if socket_dir.name != "run":
        pytest.skip("the test server's socket is not under its data root (a long temp path)")
    with psycopg.connect(make_conninfo(admin_url, application_name="status-probe-7f3a")) as probe:
        (pid,) = probe.execute("SELECT pg_backend_pid()").fetchone() or (None,)
        assert main(["db", "status", "--data-dir", str(socket_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "state:     running (pid " in out
    header = next(line for line in out.splitlines() if line.strip().startswith("pid "))
    assert header.split() == ["pid", "database", "application", "client", "since"]
    (row,) = [line for line in out.splitlines() if "status-probe-7f3a" in line]
    assert row.split()[:2] == [str(pid), "postgres"] and "local socket" in row and "s ago)" in row
    assert "continuum db status" not in out  # the status's own session is not listed


def test_db_status_of_a_stopped_server_lists_nobody(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "status", "--data-dir", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "state:     stopped" in out and "connected" not in out
