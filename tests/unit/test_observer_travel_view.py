"""The view-model of the observer's actions on an event (``observer/travel.py``): what is
enabled, how an event number is read, the one-line error, and a state view that stays compact."""

from __future__ import annotations

import html
import re

import pytest

from continuum_nb.observer.travel import (
    LINE_CHARS,
    LOCAL_CHARS,
    MAX_COMMANDS,
    error_line,
    local_line,
    parse_seq,
    picked_seq,
    state_html,
    state_summary,
    travel_actions,
)
from continuum_nb.timetravel import RunState


@pytest.mark.parametrize("state,read_only,available,expected", [
    (None, False, True, {"state": False, "fork": False}),
    ("completed", False, True, {"state": True, "fork": True}),
    ("failed", True, True, {"state": True, "fork": False}),     # read-only: look, never fork
    ("running", False, False, {"state": False, "fork": False}),  # no instance to call them on
])
def test_which_actions_are_enabled(state: str | None, read_only: bool, available: bool,
                                   expected: dict[str, bool]) -> None:
    assert travel_actions(state, read_only, available) == expected


@pytest.mark.parametrize("typed,last,expected", [
    ("4", 6, (4, None)), ("#4", 6, (4, None)), (" 0 ", 6, (0, None)), (6, 6, (6, None)), ("9", None, (9, None)),
])
def test_an_event_number_is_read(typed: object, last: int | None, expected: tuple[int, None]) -> None:
    assert parse_seq(typed, last) == expected


@pytest.mark.parametrize("typed,last,problem", [
    ("", 6, "type the number of an event"),
    ("four", 6, "'four' is not an event number"),
    ("-1", 6, "event -1 does not exist"),
    ("7", 6, "event 7 is past the end of the run: its last event is #6"),
])
def test_a_bad_event_number_is_one_line(typed: str, last: int, problem: str) -> None:
    seq, message = parse_seq(typed, last)
    assert seq is None and message is not None and problem in message and "\n" not in message


def test_a_timeline_pick_points_at_the_bars_last_event() -> None:
    assert picked_seq(["3", 4, "1"]) == 4
    assert picked_seq([]) is None and picked_seq(None) is None


def test_an_error_is_one_short_line() -> None:
    assert error_line("fork from here (#3)", ValueError("refused\nbecause")) == "fork from here (#3) failed: refused"
    assert error_line("x", KeyError()) == "x failed: KeyError"
    long = error_line("x", RuntimeError("y" * 1000))
    assert len(long) == LINE_CHARS and long.endswith("…")


def test_the_state_view_stays_compact_for_a_long_run() -> None:
    state = RunState("r", "wf", 800, "suspended")
    state.commands = [{"seq": i, "event_type": "activity_scheduled", "kind": "activity", "target": "step"}
                      for i in range(1, 800, 2)]
    state.locals = {"big": "x" * 100_000, "n": 3}
    state.next_command = {"seq": 801, "event_type": "activity_scheduled", "payload": {"args": ["y" * 5000]}}
    shown = state_html(state)
    lines = re.findall(r'class="cn-state-line" data-seq="(\d+)"', shown)
    assert len(lines) == MAX_COMMANDS and int(lines[-1]) == 799          # the latest ones
    assert "350 earlier commands" in shown and '<details class="cn-state-commands">' in shown   # collapsed
    big = re.search(r'data-name="big">([^<]*)</div>', shown)
    assert big is not None and html.unescape(big.group(1)) == local_line("big", "x" * 100_000)
    assert len(local_line("big", "x" * 100_000)) == len("big = ") + LOCAL_CHARS
    assert len(shown) < 20_000
    assert state_summary(state) == "after event 800: suspended · 400 commands · next #801 activity_scheduled"


def test_the_state_view_escapes_what_it_shows() -> None:
    state = RunState("r", "wf", 2, "failed", error={"message": "<script>x</script>"})
    state.locals = {"s": "<b>"}
    shown = state_html(state)
    assert "<script>" not in shown and "<b>'" not in shown and "&lt;script&gt;" in shown
