"""The default embedded server: the one under ``CONTINUUM_EMBEDDED_DIR`` (else the user's data
dir, or ``/var/lib/continuum-nb`` for root), shared by every process of the user on the machine.
Nothing stops it at interpreter exit; ``continuum db stop`` does."""

from __future__ import annotations

import os
from pathlib import Path

from .os_user import is_root
from .server import EmbeddedPostgres, ServerStatus

__all__ = ["default_data_root", "ensure_running", "status", "stop", "url"]


def default_data_root() -> Path:
    """``CONTINUUM_EMBEDDED_DIR``, else ``/var/lib/continuum-nb`` for root, else the user data dir."""
    env = os.environ.get("CONTINUUM_EMBEDDED_DIR")
    if env:
        return Path(env).expanduser()
    if is_root():
        return Path("/var/lib/continuum-nb")
    import platformdirs

    return Path(platformdirs.user_data_dir("continuum-nb", appauthor=False))


def _default() -> EmbeddedPostgres:
    return EmbeddedPostgres(default_data_root())


def ensure_running() -> str:
    """Start (or attach to) the default embedded server; the conninfo of its ``continuum`` db."""
    server = _default()
    server.start()
    return server.url()


def url() -> str:
    """The default embedded database's conninfo, without starting anything."""
    return _default().url()


def stop() -> bool:
    """Stop the default embedded server; returns whether it was running."""
    return _default().stop()


def status() -> ServerStatus:
    return _default().status()
