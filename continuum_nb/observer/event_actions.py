"""The observer's actions on one event: "state at this event" and "fork from here" (thin widgets).

Every decision (what is enabled, how the event number is read, the error line, the state's HTML)
is made by ``travel``; this module moves values between it, the widgets and the public API.
It runs on the kernel thread only, on a button click: ``cn.replay`` and ``cn.fork`` are called
here, never from the engine's threads.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as w

from .travel import TRAVEL_ACTIONS, error_line, parse_seq, picked_seq, state_html, travel_actions

__all__ = ["ApiTimeTravel", "EventActions", "TimeTravel"]


class TimeTravel(Protocol):
    def replay(self, run_id: str, upto: int) -> Any: ...
    def fork(self, run_id: str, at_seq: int) -> str: ...


class ApiTimeTravel:
    """``cn.replay`` and ``cn.fork`` on one instance (the public API, never SQL)."""

    def __init__(self, instance: Any) -> None:
        self._instance = instance

    def replay(self, run_id: str, upto: int) -> Any:
        from ..timetravel import replay

        return replay(run_id, upto, instance=self._instance)

    def fork(self, run_id: str, at_seq: int) -> str:
        from ..forks import fork

        return fork(run_id, at_seq, instance=self._instance).id


def _msg(text: str, kind: str) -> str:
    colour = {"info": "#1a7f37", "error": "#cf222e", "warn": "#9a6700"}[kind]
    return f"<span style='color:{colour}' data-kind='{kind}'>{html.escape(text)}</span>"


class EventActions(w.VBox):
    """An event number (typed, or the last event of a clicked timeline bar), the two buttons,
    and the state view (empty until asked). Results and errors go to ``message``, the
    observer's one-line action message; ``on_forked(run_id)`` selects a new fork."""

    def __init__(self, travel: TimeTravel | None, *, read_only: bool, message: w.HTML,
                 on_forked: Callable[[str], None]) -> None:
        self._travel = travel
        self.read_only = read_only
        self.message = message
        self._on_forked = on_forked
        self.run_id: str | None = None
        self.run_state: str | None = None
        self.last_seq: int | None = None
        self.seq = w.Text(description="event #", placeholder="#", continuous_update=False,
                          layout=w.Layout(width="150px"))
        self.buttons = {
            "state": w.Button(description=TRAVEL_ACTIONS["state"], icon="history",
                              tooltip="the workflow replayed up to this event: commands, next command, locals"),
            "fork": w.Button(description=TRAVEL_ACTIONS["fork"], icon="code-fork",
                             tooltip="a new run whose journal is the events up to this one"),
        }
        for name, button in self.buttons.items():
            button.layout.width = "170px"
            button.on_click(lambda _b, name=name: self.act(name))
        self.state_view = w.HTML()
        self.state_view.add_class("cn-state-box")   # scrolls inside its own small box
        super().__init__([w.HBox([self.seq, self.buttons["state"], self.buttons["fork"]]), self.state_view])
        self.add_class("cn-event-actions")
        self.update()

    def show_run(self, run_id: str | None, run_state: str | None, last_seq: int | None, *, same_run: bool) -> None:
        """The selected run (None: none). A new run starts at its last event, with no state shown."""
        self.run_id, self.run_state, self.last_seq = run_id, run_state, last_seq
        if not same_run:
            self.seq.value = "" if last_seq is None else str(last_seq)
            self.state_view.value = ""
        self.update()

    def update(self) -> None:
        for name, enabled in travel_actions(self.run_state if self.run_id else None, self.read_only,
                                            self._travel is not None).items():
            self.buttons[name].disabled = not enabled
        self.seq.disabled = self.buttons["state"].disabled

    def pick(self, seqs: Sequence[Any] | None) -> None:
        """A timeline click: the picked bar's last event becomes the event acted on."""
        seq = picked_seq(seqs)
        if seq is not None:
            self.seq.value = str(seq)

    def act(self, name: str) -> bool:
        """Run ``state`` or ``fork`` at the event in the field; True when it worked."""
        run_id = self.run_id
        if self._travel is None or run_id is None or not travel_actions(self.run_state, self.read_only)[name]:
            return False
        seq, problem = parse_seq(self.seq.value, self.last_seq)
        if seq is None:
            self.message.value = _msg(problem or "", "error")
            return False
        what = f"{TRAVEL_ACTIONS[name]} (#{seq})"
        # User code runs here (the replay drives the workflow; a stored cell is loaded): whatever
        # it raises, the observer shows one line and stays usable.
        try:
            if name == "state":
                state = self._travel.replay(run_id, seq)
            else:
                new_id = self._travel.fork(run_id, seq)
        except Exception as exc:
            self.message.value = _msg(error_line(what, exc), "error")
            return False
        if name == "state":
            self.state_view.value = state_html(state)
            self.message.value = _msg(f"state after event {seq} of {run_id[:8]}: {state.outcome}", "info")
        else:
            self._on_forked(new_id)   # selects it: the view now shows the fork
            self.message.value = _msg(f"forked {run_id[:8]} at event {seq}: new run {new_id[:8]} selected", "info")
        return True
