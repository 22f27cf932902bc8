"""A LISTEN loop that survives connection loss, and the per-instance connection that the
dispatcher and ``wait()`` share.

Notifications sent while a listener was disconnected are lost, so every (re)connection — ours,
or one the listener made by itself (``reconnects``) — calls ``on_gap`` and the caller re-checks
whatever the notifications would have told it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["Notifications", "listen_forever"]

log = logging.getLogger("continuum_nb.listening")


def listen_forever(
    store: Any,
    channels: Sequence[str],
    on_notification: Callable[[str, str], None],
    on_gap: Callable[[], None],
    stop: threading.Event,
    *,
    max_backoff: float = 10.0,
    on_failure: Callable[[], None] | None = None,
    on_listener: Callable[[Any], None] | None = None,
) -> None:
    """Block until ``stop`` is set, delivering notifications; reconnect with backoff.
    ``on_listener`` is told of each listener it opens (so a stop can close it, which ends a
    wait on it at once instead of at its next timeout)."""
    listener = None
    backoff = 0.2
    seen = 0
    while not stop.is_set():
        try:
            if listener is None:
                listener = store.listen(list(channels))
                if on_listener is not None:
                    on_listener(listener)
                backoff = 0.2
                seen = getattr(listener, "reconnects", 0)
                on_gap()  # (re)connected: something may have been missed
            for n in listener.wait(0.5):
                on_notification(n.channel, n.payload)
            if getattr(listener, "reconnects", 0) != seen:  # it reconnected by itself
                seen = getattr(listener, "reconnects", 0)
                on_gap()
        except Exception as exc:
            log.debug("listener on %s failed: %s", ",".join(channels), exc)
            if listener is not None:
                try:
                    listener.close()
                except Exception:  # noqa: S110 - already broken
                    pass
            listener = None
            if on_failure is not None:
                on_failure()
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
    if listener is not None:
        listener.close()


class Notifications:
    """One LISTEN connection (and thread) per instance, shared by its engine's dispatcher and by
    ``wait()``: a NOTIFY, most often a run's end, wakes one server backend and one thread of
    this process instead of one of each per subscriber.

    The connection listens on the union of the subscribers' channels; a subscriber that brings
    a new channel restarts it, and every (re)connection calls each subscriber's ``on_gap``."""

    def __init__(self, store: Any, name: str) -> None:
        self._store = store
        self._name = name
        self._lock = threading.Lock()
        self._subscribers: dict[int, _Subscriber] = {}
        self._next_key = 0
        self._channels: frozenset[str] = frozenset()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()

    def subscribe(
        self,
        channels: Sequence[str],
        on_notification: Callable[[str, str], None],
        on_gap: Callable[[], None],
        *,
        on_failure: Callable[[], None] | None = None,
        wait_connected: float = 0.0,
    ) -> int:
        """Deliver notifications on ``channels`` to ``on_notification`` (on the listening
        thread) until ``unsubscribe``. With ``wait_connected``, return once LISTEN is in place
        (or the first attempt failed), at most that many seconds later."""
        wanted = frozenset(channels)
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._subscribers[key] = _Subscriber(wanted, on_notification, on_gap, on_failure)
            old = None
            if self._thread is None or not wanted <= self._channels:
                old = self._restart(self._channels | wanted)
            connected = self._connected
        _join(old)
        if wait_connected:
            connected.wait(wait_connected)
        return key

    def unsubscribe(self, key: int) -> None:
        with self._lock:
            self._subscribers.pop(key, None)
            old = self._halt() if not self._subscribers else None
        _join(old)

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
            old = self._halt()
        _join(old)

    def _restart(self, channels: frozenset[str]) -> threading.Thread | None:
        """(under the lock) Start a thread on ``channels``; the old one, told to stop, is
        returned to be joined outside the lock (it may be delivering, which takes the lock)."""
        old = self._halt()
        self._channels = channels
        stop, connected = _Stop(), threading.Event()
        self._stop, self._connected = stop, connected
        self._thread = threading.Thread(
            target=self._run, args=(sorted(channels), stop, connected),
            name=f"continuum-{self._name}-listen", daemon=True,
        )
        self._thread.start()
        return old

    def _halt(self) -> threading.Thread | None:
        """(under the lock) Tell the thread, if any, to stop (it closes its connection on its
        way out) and return it."""
        thread, self._thread = self._thread, None
        self._channels = frozenset()
        self._stop.set()
        return thread

    def _run(self, channels: list[str], stop: _Stop, connected: threading.Event) -> None:
        def deliver(channel: str, payload: str) -> None:
            for sub in self._snapshot():
                if channel in sub.channels:
                    _call(sub.on_notification, channel, payload)

        def gap() -> None:
            connected.set()
            for sub in self._snapshot():
                _call(sub.on_gap)

        def failed() -> None:
            connected.set()  # nobody waits for a connection that is not coming
            for sub in self._snapshot():
                if sub.on_failure is not None:
                    _call(sub.on_failure)

        listen_forever(self._store, channels, deliver, gap, stop, max_backoff=5.0, on_failure=failed,
                       on_listener=stop.attach)

    def _snapshot(self) -> list[_Subscriber]:
        with self._lock:
            return list(self._subscribers.values())


class _Stop(threading.Event):
    """The stop request of one listening thread: setting it also closes the listener the thread
    waits on, so the thread ends now rather than at the end of its wait (an instance's stop, and
    every test's teardown, waited up to half a second for it)."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._listener: Any = None

    def attach(self, listener: Any) -> None:
        with self._guard:
            self._listener = listener
        if self.is_set():  # stopped while the listener was being opened
            listener.close()

    def set(self) -> None:
        super().set()
        with self._guard:
            listener = self._listener
        if listener is not None:
            listener.close()  # thread-safe, and closing twice is harmless


class _Subscriber(NamedTuple):
    channels: frozenset[str]
    on_notification: Callable[[str, str], None]
    on_gap: Callable[[], None]
    on_failure: Callable[[], None] | None


def _join(thread: threading.Thread | None) -> None:
    if thread is not None and thread is not threading.current_thread():
        thread.join(5)


def _call(fn: Callable[..., None], *args: Any) -> None:
    """A subscriber's callback; its failure must not stop the others' notifications."""
    try:
        fn(*args)
    except Exception:
        log.exception("a notification handler failed")
