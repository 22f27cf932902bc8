"""The engine loop: an asyncio loop on a thread of its own, and what a part may ask of it.

``LoopThread`` is the machinery (the thread, the loop, the executor for store calls, background
tasks, the claim "kick"); it knows nothing of runs. ``Loop`` is the small interface the engine
(node.py) gives its parts — drives, activities, the dispatcher, leases, timers — so that no part
ever holds the engine itself or calls into its internals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

__all__ = ["Emit", "Loop", "LoopThread"]

log = logging.getLogger("continuum_nb.engine")
T = TypeVar("T")

#: Telemetry of one instance: ``emit(event, measurements, metadata)`` (the instance is added).
Emit = Callable[[tuple[str, ...], dict[str, Any], dict[str, Any]], None]


class Loop(Protocol):
    """What a part of the engine may ask of the engine loop."""

    @property
    def stopping(self) -> bool:
        """(any thread) The engine is stopping: start nothing new."""
        ...

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """(any thread) Run ``fn(*args)`` on the loop; dropped once the loop has closed."""
        ...

    def kick(self) -> None:
        """(loop) Claim runnable runs and tasks now instead of at the next poll."""
        ...

    def request_wake(self, run_id: uuid.UUID) -> None:
        """(loop) Wake a held run (coalesced with a wake in progress)."""
        ...

    def deliver_outcome(self, run_id: uuid.UUID, seq: int, outcome: Any, record: Any = None) -> bool:
        """(loop) Hand an attempt's outcome to the held run and wake it; False when the run is
        not held here (the caller writes the outcome to its task row instead)."""
        ...

    def let_go(self, run_id: uuid.UUID, *, tell_waiters: bool) -> None:
        """(loop) Forget a held run (lease lost, ended elsewhere, a failed wake), writing the
        outcomes it still holds to their task rows; with ``tell_waiters``, local ``wait()``
        callers read the run's state instead of waiting for this engine to report it."""
        ...


class LoopThread:
    """An asyncio loop on its own thread, with an executor for blocking store calls."""

    def __init__(self, name: str, db_threads: int) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._kicked: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None  # set once by wake_sleepers(): ends every sleep
        self._bg: set[asyncio.Task[Any]] = set()
        self._db = concurrent.futures.ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix=f"{name}-db")

    def run(self, main: Callable[[], Coroutine[Any, Any, None]], on_exit: Callable[[], None]) -> None:
        """Start the thread running ``main()`` on a new loop; returns once the loop exists."""
        self._thread = threading.Thread(target=self._thread_main, args=(main, on_exit), name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _thread_main(self, main: Callable[[], Coroutine[Any, Any, None]], on_exit: Callable[[], None]) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        self._kicked = asyncio.Event()
        self._stopped = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(main())
        except Exception:
            log.exception("engine loop %s crashed", self.name)
        finally:
            on_exit()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        self._db.shutdown(wait=False, cancel_futures=True)

    # --- any thread -----------------------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the engine stopped
            pass

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop from another thread."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # --- on the loop ------------------------------------------------------------------------------
    def kick(self) -> None:
        if self._kicked is not None:
            self._kicked.set()

    async def wait_for_kick(self, timeout: float) -> None:
        """Sleep until kicked or ``timeout`` seconds passed, then re-arm the kick."""
        assert self._kicked is not None
        try:
            await asyncio.wait_for(self._kicked.wait(), timeout=max(timeout, 0.001))
        except asyncio.TimeoutError:
            pass

    def clear_kick(self) -> None:
        assert self._kicked is not None
        self._kicked.clear()

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store executor (never blocks the loop)."""
        assert self.loop is not None
        return await self.loop.run_in_executor(self._db, fn, *args)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """A background task, awaited by ``drain`` at shutdown."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        assert self.loop is not None
        return self.loop.call_later(delay, fn, *args)

    def time(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    def wake_sleepers(self) -> None:
        """(on the loop) The engine is stopping: every ``sleep`` returns now, and at once from then
        on (a stop used to wait for the next 0.2 s poll of each sleeping part)."""
        if self._stopped is not None:
            self._stopped.set()

    async def sleep(self, seconds: float, stopping: Callable[[], bool]) -> None:
        """Sleep ``seconds``, or less: until ``wake_sleepers()``, or at once when ``stopping()``."""
        assert self._stopped is not None
        if stopping() or seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def drain(self, others: set[concurrent.futures.Future[None]], timeout: float) -> None:
        """Wait (bounded) for background tasks and ``others`` (futures of other threads)."""
        deadline = self.time() + timeout
        while (self._bg or others) and self.time() < deadline:
            pending: list[Any] = list(self._bg)
            pending += [asyncio.wrap_future(f) for f in list(others)]
            await asyncio.wait(pending, timeout=max(0.0, deadline - self.time()))
            # a finished drive posts its report to the loop: let those callbacks run
            await asyncio.sleep(0)
