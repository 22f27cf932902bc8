"""The client API for asyncio: ``await cn.start_async(...)``, ``await cn.wait_async(...)``,
``await cn.signal_async(...)``, ``await cn.cancel_async(...)``.

For top-level ``await`` in a notebook and for asyncio applications: each call runs its sync
twin (same arguments, same errors) on a thread of its own pool, so the event loop — the
kernel's, or the application's — keeps running while the database is read or written. A wait
is cut into slices, so a cancelled ``wait_async`` lets go of its thread within one slice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import api

__all__ = ["cancel_async", "signal_async", "start_async", "wait_async"]

T = TypeVar("T")

#: Threads that run the calls; a wait holds one for at most one slice at a time.
_POOL_SIZE = 16
_WAIT_SLICE = 2.0

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="continuum-aio")
        return _pool


async def _offload(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the pool, with the caller's context (its trace span)."""
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)


async def start_async(wf: Any, input: dict[str, Any] | None = None, **kwargs: Any) -> api.Run:
    """``cn.start`` without blocking the event loop."""
    return await _offload(api.start, wf, input, **kwargs)


async def signal_async(run_id: Any, name: str, payload: Any = None, **kwargs: Any) -> Any:
    """``cn.signal`` (outside a workflow) without blocking the event loop."""
    return await _offload(api.signal, run_id, name, payload, **kwargs)


async def cancel_async(run_id: Any, **kwargs: Any) -> Any:
    """``cn.cancel`` without blocking the event loop."""
    return await _offload(api.cancel, run_id, **kwargs)


async def wait_async(run_id: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """``cn.wait``'s result (or its error) without blocking the event loop; ``TimeoutError``
    after ``timeout`` seconds (None: no limit)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 <= timeout < float("inf")):
        raise TypeError(f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        step = _WAIT_SLICE if remaining is None else min(_WAIT_SLICE, remaining)
        try:
            return await _offload(api.wait, run_id, step, **kwargs)
        except TimeoutError:
            if remaining is not None and remaining <= step:
                raise TimeoutError(f"run {getattr(run_id, 'id', run_id)} did not end within {timeout}s") from None
