"""Which database: URL normalisation and resolution (explicit URL > CONTINUUM_DATABASE_URL > embedded).

Any URL a PostgreSQL user would paste is accepted — ``postgresql://``, ``postgres://``,
``postgresql+psycopg://`` (and other ``+driver`` suffixes: psycopg 3 is always the driver) — plus
libpq keyword strings (``host=... dbname=...``). ``conninfo()`` gives what psycopg wants;
``sqlalchemy_url()`` what SQLAlchemy wants; ``describe()`` what may be printed (password masked).
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlencode

from ..errors import ConfigurationError, DatabaseUnavailable

__all__ = ["check_connection", "conninfo", "describe", "resolve_url", "sqlalchemy_url"]

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_FORMS = (
    "use postgresql://user@host:port/dbname "
    "(or postgresql://user@/dbname?host=/socket/dir for a Unix socket, or a libpq string "
    "like 'host=... dbname=...')"
)


def _parse_keywords(text: str) -> dict[str, str]:
    """A libpq keyword/value string as a dict; ConfigurationError when libpq would reject it."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(text)
    except ProgrammingError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigurationError(f"{describe(text)!r} is not a valid connection string ({reason}); {_FORMS}") from None
    return {k: str(v) for k, v in parsed.items() if v is not None}


def conninfo(url: str) -> str:
    """A libpq URL or keyword string psycopg accepts.

    URLs come back as ``postgresql://...``; keyword strings come back unchanged once libpq's
    parser accepts them. Anything else raises ``ConfigurationError`` naming the accepted forms.
    """
    url = url.strip()
    if not url:
        raise ConfigurationError(f"the database URL is empty; {_FORMS}")
    m = _SCHEME.match(url)
    if not m:
        if "=" in url:  # libpq keyword/value form
            _parse_keywords(url)
            return url
        raise ConfigurationError(f"{describe(url)!r} is not a PostgreSQL URL; {_FORMS}")
    scheme = m.group("scheme").lower()
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r}; continuum_nb needs PostgreSQL: {_FORMS}"
        )
    normalised = "postgresql://" + url[m.end():]
    _parse_keywords(normalised)  # libpq's own URI parser: bad ports, bad escapes, ...
    return normalised


def read_only(url: str) -> str:
    """The same database, with every transaction read-only (``default_transaction_read_only``):
    the server refuses any write, whatever code runs on the connection."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    options = conninfo_to_dict(conninfo(url)).get("options") or ""
    return make_conninfo(conninfo(url), options=f"{options} -c default_transaction_read_only=on".strip())


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL with the psycopg 3 driver."""
    info = conninfo(url)
    if info.startswith("postgresql://"):
        return "postgresql+psycopg://" + info[len("postgresql://"):]
    # Keyword form: every parameter goes into the query string, which the psycopg dialect
    # passes through to libpq unchanged (host may be a socket dir, so it cannot go in netloc).
    params = _parse_keywords(info)
    dbname = params.pop("dbname", "")
    return f"postgresql+psycopg:///{quote(dbname, safe='')}" + (f"?{urlencode(params, quote_via=quote)}" if params else "")


def describe(url: str) -> str:
    """The URL or keyword string with any password masked (for messages and logs)."""
    masked = re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", url)
    masked = re.sub(r"([?&]password=)[^&]*", r"\1***", masked)
    return re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", masked)


def check_connection(info: str, *, timeout: float = 10.0) -> None:
    """Connect once; ``DatabaseUnavailable`` with a one-line reason when that fails."""
    import psycopg

    try:
        with psycopg.connect(info, connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to {describe(info)}: {reason}; is PostgreSQL running? Check "
            "--database-url / CONTINUUM_DATABASE_URL, or unset it to use the embedded database"
        ) from None


def resolve_url(explicit: str | None = None, *, start_embedded: bool = True) -> str:
    """The database this process should use, as a psycopg conninfo string.

    An explicit URL wins, then ``CONTINUUM_DATABASE_URL``, else the embedded PostgreSQL under the
    user's data dir (started on first use, shared by every process of the user).
    """
    if explicit:
        return conninfo(explicit)
    env = os.environ.get("CONTINUUM_DATABASE_URL")
    if env and env.strip():
        return conninfo(env)
    from . import embedded

    return embedded.ensure_running() if start_embedded else embedded.url()
