"""Which database: URL normalisation and resolution (explicit URL > CONTINUUM_DATABASE_URL > embedded).

Any URL a PostgreSQL user would paste is accepted — ``postgresql://``, ``postgres://``,
``postgresql+psycopg://`` (and other ``+driver`` suffixes: psycopg 3 is always the driver) — plus
libpq keyword strings (``host=... dbname=...``). ``conninfo()`` gives what psycopg wants;
``sqlalchemy_url()`` what SQLAlchemy wants.
"""

from __future__ import annotations

import os
import re

from ..errors import ConfigurationError

__all__ = ["conninfo", "describe", "resolve_url", "sqlalchemy_url"]

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")


def conninfo(url: str) -> str:
    """A libpq URL or keyword string psycopg accepts."""
    url = url.strip()
    if not url:
        raise ConfigurationError("the database URL is empty; pass postgresql://user@host:port/dbname")
    m = _SCHEME.match(url)
    if not m:
        if "=" in url:  # libpq keyword/value form
            return url
        raise ConfigurationError(
            f"{url!r} is not a PostgreSQL URL; use postgresql://user@host:port/dbname "
            "(or postgresql://user@/dbname?host=/socket/dir for a Unix socket)"
        )
    scheme = m.group("scheme").lower()
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r}; continuum_nb needs PostgreSQL: "
            "postgresql://user@host:port/dbname"
        )
    return "postgresql://" + url[m.end():]


def sqlalchemy_url(url: str) -> str:
    info = conninfo(url)
    if info.startswith("postgresql://"):
        return "postgresql+psycopg://" + info[len("postgresql://"):]
    # keyword form: let psycopg parse it
    return "postgresql+psycopg:///?" + "&".join(
        f"{k}={v}" for k, v in (p.split("=", 1) for p in info.split())
    )


def describe(url: str) -> str:
    """The URL with any password masked (for messages and logs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def resolve_url(explicit: str | None = None, *, start_embedded: bool = True) -> str:
    """The database this process should use, as a psycopg conninfo string.

    An explicit URL wins, then ``CONTINUUM_DATABASE_URL``, else the embedded PostgreSQL under the
    user's data dir (started on first use, shared by every process of the user).
    """
    if explicit:
        return conninfo(explicit)
    env = os.environ.get("CONTINUUM_DATABASE_URL")
    if env:
        return conninfo(env)
    from . import embedded

    return embedded.ensure_running() if start_embedded else embedded.url()
