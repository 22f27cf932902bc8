"""``PgPool``: the connection pool of a ``PostgresStore`` and the mapping of database errors to
continuum errors (one-line messages that name the fix).

Connections are autocommit (one statement = one round trip, no BEGIN/COMMIT), prepare every
statement on first use, and speak UTC. A connection that breaks under a call is dropped, and so
are its idle siblings (they died with the same server restart), so the pool recovers as soon as
PostgreSQL is back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import DatabaseUnavailable, MigrationError, PartitionError
from ..database import conninfo as normalise_conninfo
from ..partitions import partition_error_message

__all__ = ["BrokenConnection", "Conn", "PgPool", "TRANSIENT_STATES", "TransientConflict", "first_line", "server_error"]

T = TypeVar("T")
Conn = psycopg.Connection[Any]
_PARTITION_MONTH = re.compile(r"\((\d{4})-(\d{2})-\d{2}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BrokenConnection(DatabaseUnavailable):
    """A pooled connection died under a call (a pool timeout is plain DatabaseUnavailable)."""


#: SQLSTATEs of a statement aborted to break a conflict with another transaction (deadlock_detected,
#: serialization_failure): nothing of it was written, and the same statement succeeds again.
TRANSIENT_STATES = ("40P01", "40001")


class TransientConflict(DatabaseUnavailable):
    """PostgreSQL aborted a statement to break a deadlock (or a serialization conflict) with
    another transaction: nothing of it was written, and the same call succeeds when retried.
    Statements that lock several run rows (lease renewal, recovery, a group commit, a cancel
    with its children) can meet in different orders; callers retry it like an outage."""


class PgPool:
    def __init__(
        self, conninfo: str, *, size: int, instance: str, timeout: float, connect_timeout: float
    ) -> None:
        info = normalise_conninfo(conninfo)
        params = conninfo_to_dict(info)
        extra: dict[str, Any] = {"connect_timeout": params.get("connect_timeout") or max(1, int(connect_timeout))}
        if "application_name" not in params:
            extra["application_name"] = f"continuum_nb:{instance}"
        # Over TCP, notice a vanished server within ~30 s even on an idle LISTEN connection.
        for key, value in (("keepalives", 1), ("keepalives_idle", 15), ("keepalives_interval", 5),
                           ("keepalives_count", 3)):
            if key not in params:
                extra[key] = value
        self.conninfo = make_conninfo(info, **extra)
        #: For messages: where, without the password or connection options.
        self.where = "{}:{}/{}".format(params.get("host") or params.get("hostaddr") or "localhost",
                                       params.get("port") or 5432, params.get("dbname") or "")
        self.pool = ConnectionPool(
            self.conninfo,
            min_size=size,
            max_size=size,
            open=False,
            timeout=timeout,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=self._configure_connection,
            name=f"continuum_nb-{instance}",
        )
        self._open_lock = threading.Lock()
        self._opened = False
        self._closed = False

    @staticmethod
    def _configure_connection(conn: Conn) -> None:
        # Decoded timestamps are UTC-aware whatever the server's TimeZone setting is.
        conn.execute("SET TimeZone TO 'UTC'")

    def ensure_open(self) -> None:
        """Open lazily: creating a store never touches the network."""
        if self._opened:
            return
        with self._open_lock:
            if self._closed:
                raise DatabaseUnavailable("this store was closed; create a new PostgresStore")
            if not self._opened:
                self.pool.open(wait=False)
                self._opened = True

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"PostgreSQL at {self.where} is unavailable: {first_line(exc)}")

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection; database errors become continuum errors with one-line reasons."""
        self.ensure_open()
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise self.unavailable(self._why_no_connection()) from None
        except psycopg.Error as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from None

    def call(self, fn: Callable[[Conn], T]) -> T:
        """``fn`` on a pooled connection, as ``connection()`` gives it, without that method's
        two generator-based context managers and its no-op commit on an autocommit connection
        (the wake's hot path)."""
        self.ensure_open()
        try:
            conn = self.pool.getconn()
        except PoolTimeout:
            raise self.unavailable(self._why_no_connection()) from None
        try:
            return fn(conn)
        except psycopg.Error as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from None
        finally:
            self.pool.putconn(conn)  # a broken connection is discarded here

    def _translate(self, exc: psycopg.Error) -> Exception | None:
        """The continuum error for a database error (None: raise it as it is)."""
        state = exc.sqlstate or ""
        if isinstance(exc, psycopg.OperationalError) and _connection_failed(state):
            # The pool discards this (broken) connection; drop its idle siblings that died
            # with the same server restart, so the next calls get fresh ones.
            self._check()
            return BrokenConnection(str(self.unavailable(exc)))
        if state in TRANSIENT_STATES:
            return TransientConflict(f"PostgreSQL aborted a statement to resolve a conflict with another "
                                     f"transaction ({first_line(exc)}); nothing was written, it is retried")
        return server_error(state, first_line(exc), exc.diag.message_primary or "", exc.diag.message_detail or "")

    def read(self, fn: Callable[[Conn], T]) -> T:
        """Run a read; retried once on a fresh connection if the first one was broken."""
        try:
            return self.call(fn)
        except BrokenConnection:
            return self.call(fn)

    def _why_no_connection(self) -> BaseException:
        """The pool only says it timed out; one direct attempt tells why (refused, auth, ...)."""
        try:
            with psycopg.connect(self.conninfo, connect_timeout=2):
                pass
        except psycopg.Error as exc:
            return exc
        return TimeoutError(f"all {self.pool.max_size} pooled connections stayed busy; raise pool_size")

    def _check(self) -> None:
        try:
            self.pool.check()
        except Exception:  # noqa: BLE001 - best effort; the next call reports the real error
            pass

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            opened, self._opened = self._opened, False
        if opened:
            self.pool.close()


def server_error(state: str, line: str, primary: str, detail: str) -> Exception | None:
    """The continuum error for an error the server raised in a statement (SQLSTATE, its first
    line, primary message and detail); None: no mapping, raise the database's own. Serves a
    failed call and a wake refused inside a group commit alike."""
    if state.startswith(("22", "54")):
        # data exceptions and program limits (an index entry too large, say): the value was
        # refused, the database is fine
        return ValueError(f"PostgreSQL refused a value ({line}); see docs/semantics.md, "
                          "\"What may be stored\"")
    if state == "23514":  # check_violation
        if primary.startswith("no partition of relation"):
            match = _PARTITION_MONTH.search(detail)
            # The month of the failing row's key; else (a detail we cannot read) this month.
            month = f"{match.group(1)}-{match.group(2)}" if match else datetime.now(timezone.utc)
            return PartitionError(partition_error_message(month))
        return None
    if state in ("42P01", "42883", "42703"):  # undefined table, function, column
        return MigrationError(f"the continuum tables are missing or out of date ({line}); run `continuum migrate`")
    return None


def _connection_failed(sqlstate: str) -> bool:
    """Whether an OperationalError means the connection or the server is gone (the database is
    unavailable), as opposed to a statement it refused (a program limit, a lock): no SQLSTATE
    (the client lost the connection), class 08 (connection exception), 57P (the server shut
    down or is starting), 53300 (too many connections)."""
    return not sqlstate or sqlstate.startswith(("08", "57P")) or sqlstate == "53300"
