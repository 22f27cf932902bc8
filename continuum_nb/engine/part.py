"""What every part of an engine is handed, once: ``Surroundings``, and ``Part``, the base that
keeps them.

A part (drives, activities, dispatcher, leases, timers) reaches the loop only through the
``Loop`` interface and the held runs only as ``held.py`` allows; it never sees the Engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..store.base import Store
from .clock import Clock
from .held import HeldRuns
from .loop import Emit, Loop, LoopThread

__all__ = ["Part", "Surroundings"]


@dataclass(frozen=True)
class Surroundings:
    """The engine's identity, settings, store and clock, its loop, and its held runs."""

    owner: str
    config: Config
    store: Store
    clock: Clock
    runtime: LoopThread
    loop: Loop
    held: HeldRuns
    emit: Emit


class Part:
    """The base of an engine part: its surroundings as attributes of its own."""

    def __init__(self, surroundings: Surroundings) -> None:
        s = surroundings
        self._owner = s.owner
        self._config = s.config
        self._store = s.store
        self._clock = s.clock
        self._runtime = s.runtime
        self._loop = s.loop
        self._held = s.held
        self._emit = s.emit
