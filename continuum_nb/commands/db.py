"""``continuum db start|stop|status|url``: the embedded PostgreSQL.

These act on the embedded server under ``--data-dir`` (default: ``CONTINUUM_EMBEDDED_DIR``, else
the user's data dir; ``/var/lib/continuum-nb`` for root), whatever ``CONTINUUM_DATABASE_URL`` says.
The server is shared by every process of the user, so ``stop`` disconnects all of them.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..store import embedded

__all__ = ["register"]

#: ``db status`` exit code when the server is not running (as ``pg_ctl status``).
NOT_RUNNING = 3


def _server(args: argparse.Namespace) -> embedded.EmbeddedPostgres:
    root = args.data_dir if args.data_dir else embedded.default_data_root()
    return embedded.EmbeddedPostgres(root)


def _start(args: argparse.Namespace) -> int:
    server = _server(args)
    server.start()
    print(server.url())
    return 0


def _stop(args: argparse.Namespace) -> int:
    server = _server(args)
    print("stopped" if server.stop() else f"not running ({server.data_dir})")
    return 0


def _status(args: argparse.Namespace) -> int:
    server = _server(args)
    st = server.status()
    print("\n".join(st.lines()))
    if st.running:
        print("\n".join(_connected(server.admin_url())))
    return 0 if st.running else NOT_RUNNING


def _ago(seconds: int) -> str:
    if seconds < 60:
        return f"{max(0, seconds)}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m ago"


def _connected(admin_url: str) -> list[str]:
    """Who is connected to the server (every database), from pg_stat_activity."""
    from datetime import datetime, timezone

    from ..store.migrate import connect
    from ..store.sessions_sql import sessions

    try:
        with connect(admin_url, autocommit=True, application_name="continuum db status") as conn:
            found = sessions(conn, all_databases=True)
    except Exception as exc:  # a status must not fail because the server is busy or starting
        return [f"connected: unknown ({(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"]
    out = [f"connected: {len(found)} session(s) besides this one"]
    if not found:
        return out
    now = datetime.now(timezone.utc)
    rows = [("pid", "database", "application", "client", "since")]
    for s in found:
        since = "?"
        if s.since is not None:
            since = f"{s.since.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z ({_ago(int((now - s.since).total_seconds()))})"
        rows.append((str(s.pid), s.database or "?", s.application_name or "-", s.client or "?", since))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out += ["  " + "  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    return out


def _url(args: argparse.Namespace) -> int:
    print(_server(args).url())
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="the embedded PostgreSQL 18 (start, stop, status, url)",
        description="Manage the embedded PostgreSQL 18 used when no database URL is configured.",
    )
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION")
    actions.required = True
    for name, func, text in (
        ("start", _start, "start the server (creating it on first use) and print its URL"),
        ("stop", _stop, "stop the server (disconnects every process using it)"),
        ("status", _status, f"show whether it runs, where, its URL and who is connected (exit {NOT_RUNNING} when stopped)"),
        ("url", _url, "print the URL of its `continuum` database (starts nothing)"),
    ):
        p = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument(
            "--data-dir",
            metavar="DIR",
            help="the server's data root (default: CONTINUUM_EMBEDDED_DIR, else the user data dir)",
        )
        p.set_defaults(func=func)
