"""Test PostgreSQL servers: the machine's PostgreSQL 15 and an embedded PostgreSQL 18.

The embedded one is started by ``continuum_nb.store.embedded`` in a temp dir for the session.
"""

from __future__ import annotations

import os

_started: dict[str, object] = {}


def server_names() -> list[str]:
    raw = os.environ.get("CONTINUUM_TEST_SERVERS", "pg15,pg18")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = set(names) - {"pg15", "pg18"}
    if unknown:
        raise RuntimeError(f"CONTINUUM_TEST_SERVERS has unknown server(s) {sorted(unknown)}; use pg15,pg18")
    return names


def admin_conninfo(name: str) -> str:
    if name == "pg15":
        return os.environ.get("CONTINUUM_TEST_PG15_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    raise KeyError(name)


def start_server(name: str) -> str:
    """Start (or reuse) a server; returns its admin conninfo."""
    if name == "pg15":
        return admin_conninfo(name)
    if name == "pg18":
        if name not in _started:
            import tempfile

            from continuum_nb.store.embedded import EmbeddedPostgres

            server = EmbeddedPostgres(tempfile.mkdtemp(prefix="cn-test-pg18-"))
            server.start()
            _started[name] = server
        return _started[name].admin_url()  # type: ignore[attr-defined]
    raise KeyError(name)


def stop_all() -> None:
    for server in list(_started.values()):
        server.stop()  # type: ignore[attr-defined]
    _started.clear()
