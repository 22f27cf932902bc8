"""``PgListener``: LISTEN on a dedicated autocommit connection that survives reconnects."""

from __future__ import annotations

import re
import selectors
import socket
import threading
import time
from collections.abc import Sequence

import psycopg
from psycopg import pq, sql

from ...errors import DatabaseUnavailable
from ..base import Notification
from .pool import first_line

__all__ = ["PgListener"]

_CHANNEL = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Longest pause between reconnection attempts while PostgreSQL is down.
_MAX_BACKOFF = 2.0


class PgListener:
    """Notifications of ``channels`` on one connection of its own.

    ``wait`` never raises for a timeout or a lost connection: it returns what arrived (maybe
    nothing), reconnecting and re-issuing LISTEN when the connection broke. Notifications sent
    while the connection was down are lost, as with any LISTEN; ``reconnects`` counts the
    reconnections so that a caller can do one catch-up poll after each.
    """

    def __init__(self, conninfo: str, channels: Sequence[str], *, connect_timeout: float = 10.0) -> None:
        for ch in channels:
            if not _CHANNEL.match(ch):
                raise ValueError(f"{ch!r} is not a valid channel name; use lower-case letters, digits and _")
        self._conninfo = conninfo
        self.channels = tuple(channels)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self._closed = threading.Event()
        self._backoff = 0.05
        self.reconnects = 0
        self._selector: selectors.BaseSelector | None = None
        self._selected: psycopg.Connection | None = None  # the connection _selector polls
        # close() from another thread wakes a wait() through this pair (closing what a poll
        # waits on does not wake it); the sockets close themselves when the listener goes.
        self._interrupt, self._interrupter = socket.socketpair()
        self._interrupt.setblocking(False)
        try:
            self._conn = self._connect()
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot LISTEN: PostgreSQL is unavailable ({first_line(exc)}); check that it is running"
            ) from None

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))
        for ch in self.channels:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ch)))
        return conn

    def wait(self, timeout: float) -> list[Notification]:
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._closed.is_set():
            return []
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._reconnect(deadline)
            if conn is None:
                return []
        remaining = max(0.0, deadline - time.monotonic())
        try:
            # Straight on libpq: one poll of the socket, then every notification it brought.
            # (Connection.notifies() builds a generator and a new epoll object per call, which
            # cost more than the notification itself on this thread's hot path.)
            pgconn = conn.pgconn
            sel = self._selector
            if sel is None or self._selected is not conn:
                self._close_selector()
                sel = selectors.DefaultSelector()
                sel.register(pgconn.socket, selectors.EVENT_READ)
                sel.register(self._interrupt, selectors.EVENT_READ)
                self._selector, self._selected = sel, conn
            got = _drain(pgconn)
            if not got and sel.select(remaining):
                if self._closed.is_set():
                    self._close_selector()
                    return []
                pgconn.consume_input()
                got = _drain(pgconn)
        except (psycopg.Error, OSError, ValueError):
            # ValueError: the selector or the connection was closed under this wait by close()
            # on another thread (a race close() avoids, kept here as the last line).
            if self._closed.is_set():
                return []
            self._drop()
            return []
        encoding = conn.info.encoding
        return [Notification(n.relname.decode(encoding), n.extra.decode(encoding)) for n in got]

    def _close_selector(self) -> None:
        sel, self._selector, self._selected = self._selector, None, None
        if sel is not None:
            sel.close()

    def _reconnect(self, deadline: float) -> psycopg.Connection | None:
        """One attempt; on failure, pause (interruptibly) for the backoff within the deadline."""
        try:
            self._conn = self._connect()
        except psycopg.Error:
            pause = min(self._backoff, max(0.0, deadline - time.monotonic()))
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            self._closed.wait(pause)
            return None
        self._backoff = 0.05
        self.reconnects += 1
        return self._conn

    def _drop(self) -> None:
        self._close_selector()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        self._closed.set()
        try:
            self._interrupter.send(b"x")
        except OSError:  # already sent (buffer full) or closed
            pass
        # The selector is left to the thread that may be polling it (closing an epoll object
        # under a select() raises there); a listener nobody waits on frees it when collected.
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


def _drain(pgconn: pq.abc.PGconn) -> list[pq.PGnotify]:
    """The notifications libpq has already read."""
    out = []
    while (n := pgconn.notifies()) is not None:
        out.append(n)
    return out
