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
    st = _server(args).status()
    print("\n".join(st.lines()))
    return 0 if st.running else NOT_RUNNING


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
        ("status", _status, f"show whether it runs, where, and its URL (exit {NOT_RUNNING} when stopped)"),
        ("url", _url, "print the URL of its `continuum` database (starts nothing)"),
    ):
        p = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument(
            "--data-dir",
            metavar="DIR",
            help="the server's data root (default: CONTINUUM_EMBEDDED_DIR, else the user data dir)",
        )
        p.set_defaults(func=func)
