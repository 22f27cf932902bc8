"""``cn.wait`` / ``%continuum wait`` in a notebook: a live line saying what the run is doing.

While the cell waits, one display output shows the run's state, how many events it has journaled
so far and what it waits on (an activity, a signal, a timer), redrawn about once a second; it
ends with how the run ended. Everything happens on the waiting call's own thread (the kernel's
main thread, where ``display`` targets the running cell): the engine thread never touches it.
In a script, in terminal IPython or on another thread there is no display: the wait stays quiet.

``wait`` here is ``continuum_nb.api.wait`` in slices of a second with a redraw between them; in a
Jupyter kernel ``cn.wait`` resolves to it (``continuum_nb.__init__``), and ``%continuum wait``
calls it.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from typing import Any

from .. import api
from ..engine.instance import resolve
from ..errors import DriftError, RunCancelled, RunFailed
from .formats import duration, short_id

__all__ = ["WaitProgress", "for_wait", "in_kernel_main_thread", "wait"]

#: Redraw at most this often (seconds); the wait loop wakes about once a second while displayed.
REDRAW_EVERY = 0.5
#: What a resolution event closes, by the key naming its command-start.
_RESOLVES = {"activity_completed": "scheduled_seq", "activity_failed": "scheduled_seq",
             "signal_received": "awaited_seq", "timer_fired": "started_seq", "child_completed": "started_seq",
             "child_failed": "started_seq", "child_cancelled": "started_seq"}


class _Line:
    """The display object: HTML in a notebook, one text line elsewhere."""

    def __init__(self, text: str, kind: str) -> None:
        self.text, self.kind = text, kind

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        colour = {"live": "#0969da", "completed": "#1a7f37", "failed": "#cf222e", "other": "#6e7781"}[self.kind]
        return (f"<div class='continuum-wait' data-kind='{self.kind}' style='font-family:var(--jp-code-font-family,"
                f"monospace);font-size:12px;color:{colour}'>{html.escape(self.text)}</div>")


class WaitProgress:
    """Reads the run's new events (incrementally, by seq) and redraws one display line."""

    def __init__(self, instance: Any, run_id: uuid.UUID) -> None:
        from IPython.display import display

        self._instance, self._run_id = instance, run_id
        self._display = display
        self._handle: Any = None
        self._last_seq = 0
        self._open: dict[int, str] = {}   # seq of an unresolved command-start -> what it is
        self._t0 = time.monotonic()
        self._drawn = 0.0

    def _read(self) -> None:
        try:
            events = self._instance.store.load_journal(self._run_id, after_seq=self._last_seq)
        except Exception:   # a progress line must never break the wait it decorates
            return
        for ev in events:
            seq, kind = int(ev.seq), str(ev.event_type)
            payload = ev.payload if isinstance(ev.payload, dict) else {}
            self._last_seq = max(self._last_seq, seq)
            if kind == "activity_scheduled":
                self._open[seq] = f"activity {payload.get('activity') or '?'}"
            elif kind == "signal_awaited":
                self._open[seq] = f"signal {payload.get('name')!r}"
            elif kind == "child_started" and payload.get("child_run_id"):
                self._open[seq] = f"child {payload.get('workflow') or '?'}"
            elif kind == "timer_started":
                self._open[seq] = f"timer ({duration(payload.get('duration_s'))})"
            elif kind in _RESOLVES:
                ref = payload.get(_RESOLVES[kind])
                if isinstance(ref, int):
                    self._open.pop(ref, None)

    def _show(self, line: _Line) -> None:
        if self._handle is None:
            self._handle = self._display(line, display_id=True)
        else:
            self._handle.update(line)

    def update(self, state: str) -> None:
        """Redraw (throttled) with the run's current ``state``."""
        now = time.monotonic()
        if now - self._drawn < REDRAW_EVERY:
            return
        self._drawn = now
        self._read()
        waits = sorted(set(self._open.values()))
        on = f" · waiting on {', '.join(waits[:3])}{' …' if len(waits) > 3 else ''}" if waits else ""
        self._show(_Line(f"run {short_id(self._run_id)} · {state} · {self._last_seq} events so far{on} · "
                         f"waited {duration(now - self._t0)}", "live"))

    def finish(self, state: str | None, error: BaseException | None = None) -> None:
        """The last word: how the run ended, or why the wait stopped."""
        if self._handle is None and error is None and time.monotonic() - self._t0 < REDRAW_EVERY:
            return   # finished at once: the result alone says it
        self._read()
        waited = duration(time.monotonic() - self._t0)
        if isinstance(error, TimeoutError):
            text, kind = f"run {short_id(self._run_id)} · still {state or 'active'} when the wait timed out", "other"
        elif isinstance(error, KeyboardInterrupt):
            text, kind = f"run {short_id(self._run_id)} · wait interrupted (the run goes on)", "other"
        elif state == "completed":
            text, kind = f"run {short_id(self._run_id)} · completed", "completed"
        elif state in ("failed", "drifted", "cancelled"):
            text, kind = f"run {short_id(self._run_id)} · {state}", "failed"
        else:
            text, kind = f"run {short_id(self._run_id)} · wait ended ({type(error).__name__ if error else state})", "other"
        self._show(_Line(f"{text} · {self._last_seq} events · waited {waited}", kind))


def in_kernel_main_thread() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return (shell is not None and getattr(shell, "kernel", None) is not None
            and threading.current_thread() is threading.main_thread())


def for_wait(instance: Any, run_id: uuid.UUID) -> WaitProgress | None:
    """A progress display for this wait, or None (no Jupyter kernel, or not its main thread)."""
    return WaitProgress(instance, run_id) if in_kernel_main_thread() else None


#: Each slice of a displayed wait (seconds): how often the line is redrawn at most.
SLICE = 1.0


def wait(run_id: Any, timeout: float | None = None, *, instance: Any = None, follow_runs: bool = True) -> Any:
    """Block until the run finishes: its result, or ``RunFailed`` / ``RunCancelled`` /
    ``DriftError`` / ``TimeoutError`` (``continuum_nb.api.wait``); in a Jupyter kernel, with a
    live progress line while it waits. A run that continued as new is followed to the end of its
    chain unless ``follow_runs=False``."""
    if not in_kernel_main_thread():
        return api.wait(run_id, timeout, instance=instance, follow_runs=follow_runs)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError(f"timeout must be None or a number of seconds, not {timeout!r}")
    if timeout is not None and not 0 <= timeout < float("inf"):
        raise ValueError(f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}")
    inst = resolve(instance)
    rid = uuid.UUID(api.get_run(run_id, instance=inst).id)   # checks the id and that the run exists
    progress = WaitProgress(inst, rid)
    deadline = None if timeout is None else time.monotonic() + timeout
    state: str | None = None
    try:
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                result = api.wait(rid, SLICE if remaining is None else min(SLICE, remaining), instance=inst,
                                  follow_runs=follow_runs)
            except TimeoutError:
                state = api.get_run(rid, instance=inst).state
                if remaining is not None and remaining <= SLICE:
                    raise TimeoutError(f"run {rid} is still {state} after {timeout}s") from None
                progress.update(state)
                continue
            state = "completed"
            return result
    except RunFailed:
        state = "failed"
        raise
    except RunCancelled:
        state = "cancelled"
        raise
    except DriftError:
        state = "drifted"
        raise
    except BaseException as exc:
        progress.finish(state, exc)
        raise
    finally:
        if state in ("completed", "failed", "cancelled", "drifted"):
            progress.finish(state)
