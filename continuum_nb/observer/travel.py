"""The observer's actions on one event of a run: "state at this event" (``cn.replay``) and
"fork from here" (``cn.fork``). Plain Python, no widgets, no database.

What is enabled, how an event number typed or picked is read, the one line an error becomes,
and the compact HTML of a replayed state are decided here; ``event_actions`` only moves these
values into widgets. The state view stays small whatever the run's size: one line per command
(the last ``MAX_COMMANDS`` of them), each local as a one-line repr cut at ``LOCAL_CHARS``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "LOCAL_CHARS",
    "MAX_COMMANDS",
    "TRAVEL_ACTIONS",
    "command_line",
    "error_line",
    "local_line",
    "parse_seq",
    "picked_seq",
    "state_html",
    "state_summary",
    "travel_actions",
]

#: Action name -> button label. The names are what ``EventActions.act`` takes.
TRAVEL_ACTIONS: dict[str, str] = {"state": "state at this event", "fork": "fork from here"}
#: Commands listed in the state view (the latest ones; the count of earlier ones is one line).
MAX_COMMANDS = 50
#: A local's repr, a command's payload, an error are cut to this many characters.
LOCAL_CHARS = 80
LINE_CHARS = 200


def travel_actions(run_state: str | None, read_only: bool, available: bool = True) -> dict[str, bool]:
    """Action -> enabled, for the selected run in ``run_state`` (None: no run selected).

    ``state`` only reads (``cn.replay`` writes nothing), so a read-only observer keeps it;
    ``fork`` starts a run, so it is an operator action and read-only turns it off.
    ``available`` is False when the observer has no instance to call them on."""
    selected = run_state is not None and available
    return {"state": selected, "fork": selected and not read_only}


def parse_seq(value: Any, last_seq: int | None) -> tuple[int | None, str | None]:
    """(event number, None) or (None, one-line problem) for what the event field holds."""
    text = str(value).strip().lstrip("#") if value is not None else ""
    if not text:
        return None, "type the number of an event (its # in the events list), or click a bar of the timeline"
    try:
        seq = int(text)
    except ValueError:
        return None, f"{text!r} is not an event number; type its # from the events list, e.g. 5"
    if seq < 0:
        return None, f"event {seq} does not exist; event numbers start at 0 (before the first event)"
    if last_seq is not None and seq > last_seq:
        return None, f"event {seq} is past the end of the run: its last event is #{last_seq}"
    return seq, None


def picked_seq(seqs: Sequence[Any] | None) -> int | None:
    """The event a timeline click points at: the last event of the picked bar (an activity's
    outcome, a wait's end), so its state includes what the bar shows."""
    if not seqs:
        return None
    return max(int(s) for s in seqs)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())   # one line, whatever the text held
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(what: str, exc: BaseException) -> str:
    """One line for an action that failed: never a traceback, never a multi-line message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _cut(f"{what} failed: {message}", LINE_CHARS)


def local_line(name: str, value: Any) -> str:
    """A local of the workflow's frame on one line: ``name = repr`` cut at ``LOCAL_CHARS``
    (``cn.replay`` keeps JSON values as they are and gives other values as their repr)."""
    return f"{name} = {_cut(repr(value), LOCAL_CHARS)}"


def _json_line(value: Any, limit: int = LINE_CHARS) -> str:
    return _cut(json.dumps(value, ensure_ascii=False, default=str), limit)


def command_line(command: Mapping[str, Any]) -> str:
    """One command of ``RunState.commands``: ``#3 activity_scheduled activity charge``."""
    return f"#{int(command['seq'])} {command['event_type']} {command['kind']} {_cut(str(command['target']), LOCAL_CHARS)}"


def state_summary(state: Any) -> str:
    """The state's first line: ``after event 4: suspended · 2 commands · next #5 activity_scheduled``."""
    parts = [f"after event {state.upto}: {state.outcome}", f"{len(state.commands)} command"
             + ("" if len(state.commands) == 1 else "s")]
    if state.next_command is not None:
        parts.append(f"next #{state.next_command['seq']} {state.next_command['event_type']}")
    return " · ".join(parts)


def state_html(state: Any) -> str:
    """A ``cn.replay`` answer (``RunState``) as a compact block: the summary, then one line per
    command (collapsed), the next command and event, the locals, the result or error."""
    e = html.escape
    out = [f'<div class="cn-state-view" data-outcome="{e(state.outcome)}" data-upto="{int(state.upto)}">',
           f'<div class="cn-state-summary"><b>{e(state_summary(state))}</b></div>']
    commands = list(state.commands)
    shown = commands[-MAX_COMMANDS:]
    lines = [f'<div class="cn-state-line" data-seq="{int(c["seq"])}">{e(command_line(c))}</div>' for c in shown]
    if len(commands) > len(shown):
        lines.insert(0, f'<div class="cn-state-line">… {len(commands) - len(shown):,} earlier commands</div>')
    out.append(f'<details class="cn-state-commands"><summary>commands so far ({len(commands):,})</summary>'
               f'{"".join(lines) or "<i>none</i>"}</details>')
    for label, item in (("next command", state.next_command), ("next event", state.next_event)):
        if item is not None:
            out.append(f'<div class="cn-state-line cn-state-{label.replace(" ", "-")}">{label}: '
                       f'#{int(item["seq"])} {e(str(item["event_type"]))} {e(_json_line(item.get("payload")))}</div>')
    local_lines = [f'<div class="cn-state-line cn-state-local" data-name="{e(str(k))}">{e(local_line(str(k), v))}</div>'
                   for k, v in state.locals.items()]
    out.append(f'<div class="cn-state-locals"><i>locals ({len(local_lines)})</i>{"".join(local_lines)}</div>')
    if state.outcome == "completed":
        out.append(f'<div class="cn-state-line">result: {e(_json_line(state.result))}</div>')
    if state.error is not None:
        message = state.error.get("message") if isinstance(state.error, dict) else state.error
        out.append(f'<div class="cn-state-line cn-obs-warn">error: {e(_cut(str(message), LINE_CHARS))}</div>')
    out.append("</div>")
    return "".join(out)
