"""The per-instance LISTEN connection (engine/listening.Notifications) on the memory store."""

from __future__ import annotations

import queue
import threading

from continuum_nb.engine.listening import Notifications
from continuum_nb.store.base import CHANNEL_DONE, CHANNEL_TASKS, CHANNEL_WAKE, Notification
from continuum_nb.store.memory import MemoryStore


def _listening(store: MemoryStore) -> int:
    return len(store._listeners)


def test_subscribers_share_one_listener_and_get_only_their_channels() -> None:
    store = MemoryStore()
    hub = Notifications(store, "t")
    done: queue.Queue[str] = queue.Queue()
    every: queue.Queue[tuple[str, str]] = queue.Queue()
    gaps = {"every": 0}
    gap_seen = threading.Event()

    def on_gap() -> None:
        gaps["every"] += 1
        gap_seen.set()

    k1 = hub.subscribe([CHANNEL_DONE], lambda _c, p: done.put(p), lambda: None, wait_connected=5)
    assert _listening(store) == 1
    # a subscriber that brings new channels restarts the one listener on the union
    k2 = hub.subscribe([CHANNEL_WAKE, CHANNEL_TASKS, CHANNEL_DONE], lambda c, p: every.put((c, p)), on_gap,
                       wait_connected=5)
    assert gap_seen.wait(5)
    assert _listening(store) == 1
    store._notify([Notification(CHANNEL_WAKE, "w1"), Notification(CHANNEL_DONE, "d1")])
    assert done.get(timeout=5) == "d1"
    assert {every.get(timeout=5), every.get(timeout=5)} == {(CHANNEL_WAKE, "w1"), (CHANNEL_DONE, "d1")}
    assert done.empty()  # never the wake: not its channel
    # a subscriber whose channels are already listened to restarts nothing
    before = gaps["every"]
    k3 = hub.subscribe([CHANNEL_WAKE], lambda _c, _p: None, lambda: None, wait_connected=5)
    assert gaps["every"] == before and _listening(store) == 1
    hub.unsubscribe(k3)
    hub.unsubscribe(k2)
    assert _listening(store) == 1  # one subscriber left
    hub.unsubscribe(k1)
    assert _listening(store) == 0  # the last one gone: its connection closed
    hub.close()


def test_a_failing_handler_does_not_starve_the_others() -> None:
    store = MemoryStore()
    hub = Notifications(store, "t")
    got: queue.Queue[str] = queue.Queue()

    def broken(_c: str, _p: str) -> None:
        raise RuntimeError("boom")

    hub.subscribe([CHANNEL_DONE], broken, lambda: None, wait_connected=5)
    hub.subscribe([CHANNEL_DONE], lambda _c, p: got.put(p), lambda: None, wait_connected=5)
    store._notify([Notification(CHANNEL_DONE, "a")])
    store._notify([Notification(CHANNEL_DONE, "b")])
    assert [got.get(timeout=5), got.get(timeout=5)] == ["a", "b"]
    hub.close()
    assert _listening(store) == 0
