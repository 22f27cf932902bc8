"""Test PostgreSQL servers: the machine's PostgreSQL 15 and an embedded PostgreSQL 18.

- ``pg15``: ``CONTINUUM_TEST_PG15_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
  When it is down and ``CI`` is set, it is started with ``pg_ctlcluster`` and stopped again at
  the end of the session.
- ``pg18``: ``continuum_nb.store.embedded.EmbeddedPostgres`` in a temp dir, started once per test
  session and stopped (and its dir removed) at the end, also when tests fail. A session that was
  killed cannot clean up after itself, so each session first stops the servers of dead sessions
  (each temp dir records the PID of the session that owns it).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg

__all__ = ["admin_conninfo", "server_names", "start_server", "stop_all", "sweep_dead_sessions"]

_PREFIX = "cn-test-pg18-"
#: Throwaway clusters: durability settings off, room for multi-process tests.
_TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}

# name -> (admin conninfo, how to stop it)
_started: dict[str, tuple[str, Callable[[], None]]] = {}


def server_names() -> list[str]:
    raw = os.environ.get("CONTINUUM_TEST_SERVERS", "pg15,pg18")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = set(names) - {"pg15", "pg18"}
    if unknown or not names:
        raise RuntimeError(
            f"CONTINUUM_TEST_SERVERS={raw!r} names unknown server(s) {sorted(unknown)}; use pg15, pg18 or pg15,pg18"
        )
    return names


def admin_conninfo(name: str) -> str:
    if name == "pg15":
        return os.environ.get("CONTINUUM_TEST_PG15_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if name == "pg18" and name in _started:
        return _started[name][0]
    raise KeyError(name)


def _reachable(conninfo: str) -> str | None:
    """None when a connection works, else the reason."""
    try:
        with psycopg.connect(conninfo, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _start_pg15() -> str:
    url = admin_conninfo("pg15")
    reason = _reachable(url)
    if reason is None:
        return url
    ctl = shutil.which("pg_ctlcluster")
    if not os.environ.get("CI") or ctl is None:
        raise RuntimeError(
            f"test server pg15 ({url}) is unreachable: {reason}; start it "
            "(pg_ctlcluster --skip-systemctl-redirect 15 main start) or run with CONTINUUM_TEST_SERVERS=pg18"
        )
    started = subprocess.run(
        [ctl, "--skip-systemctl-redirect", "15", "main", "start"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    if started.returncode == 0:  # ours to stop at the end (not when it was already running)

        def stop() -> None:
            subprocess.run([ctl, "--skip-systemctl-redirect", "15", "main", "stop"], check=False, timeout=120)

        _started["pg15"] = (url, stop)
    reason = _reachable(url)
    if reason is not None:
        said = " ".join((started.stderr or started.stdout).split())
        raise RuntimeError(
            f"test server pg15 ({url}) is unreachable after `pg_ctlcluster 15 main start` "
            f"(exit {started.returncode}: {said or 'no output'}): {reason}"
        )
    return url


def sweep_dead_sessions() -> None:
    """Stop and remove embedded test servers whose session died without cleaning up."""
    from continuum_nb.store.embedded import EmbeddedPostgres

    for root in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
            continue  # that session is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            EmbeddedPostgres(root).stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _start_pg18() -> str:
    from continuum_nb.store.embedded import EmbeddedPostgres

    sweep_dead_sessions()
    root = Path(tempfile.mkdtemp(prefix=_PREFIX))
    (root / "owner.pid").write_text(str(os.getpid()))
    server = EmbeddedPostgres(root, settings=_TEST_SETTINGS)

    def stop() -> None:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    # Registered before start(): a start that fails half-way is still cleaned up.
    _started["pg18"] = (server.admin_url(), stop)
    server.start()
    _started["pg18"] = (server.admin_url(), stop)
    return server.admin_url()


def start_server(name: str) -> str:
    """Start (or reuse) a server; returns its admin conninfo."""
    if name in _started:
        return _started[name][0]
    if name == "pg15":
        return _start_pg15()
    if name == "pg18":
        return _start_pg18()
    raise KeyError(name)


def stop_all() -> None:
    """Stop every server this process started (idempotent)."""
    while _started:
        _, (_, stop) = _started.popitem()
        stop()


# Also on an interpreter exit that skipped the session teardown (e.g. an error in collection).
atexit.register(stop_all)
