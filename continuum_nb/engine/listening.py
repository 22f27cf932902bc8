"""A LISTEN loop that survives connection loss, shared by the dispatcher and ``wait()``.

Notifications sent while a listener was disconnected are lost, so every (re)connection — ours,
or one the listener made by itself (``reconnects``) — calls ``on_gap`` and the caller re-checks
whatever the notifications would have told it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["listen_forever"]

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
) -> None:
    """Block until ``stop`` is set, delivering notifications; reconnect with backoff."""
    listener = None
    backoff = 0.2
    seen = 0
    while not stop.is_set():
        try:
            if listener is None:
                listener = store.listen(list(channels))
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
