"""The workflow context of the running thread: set by the engine while it drives a workflow
coroutine (``send()``/``throw()`` run the workflow's code synchronously on that thread)."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class WorkflowContext(Protocol):
    run_id: str
    workflow: str

    def side_effect(self, kind: str, compute: Any) -> Any: ...

    def now(self) -> Any: ...

    def patched(self, name: str, deprecated: bool) -> bool: ...

    def log(self, message: str, fields: dict[str, Any], level: str) -> None: ...

    def continue_as_new(self, input: dict[str, Any], version: str) -> BaseException: ...


_local = threading.local()


def current() -> WorkflowContext | None:
    return getattr(_local, "ctx", None)


def require(what: str) -> WorkflowContext:
    ctx = current()
    if ctx is None:
        raise RuntimeError(
            f"`{what}` only works inside a workflow run by the engine; outside one, call the "
            "activity directly or use cn.start(workflow, input)"
        )
    return ctx


class active:
    """``with active(ctx):`` — make ``ctx`` current for this thread."""

    def __init__(self, ctx: WorkflowContext) -> None:
        self.ctx = ctx
        self.prev: Any = None

    def __enter__(self) -> WorkflowContext:
        self.prev = getattr(_local, "ctx", None)
        _local.ctx = self.ctx
        return self.ctx

    def __exit__(self, *exc: Any) -> None:
        _local.ctx = self.prev
