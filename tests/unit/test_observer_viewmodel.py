"""The observer's view-model, without a browser, a kernel or a database."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from continuum_nb.observer import static
from continuum_nb.observer.viewmodel import (
    RunsPager,
    allowed_actions,
    decode_trace_id,
    parse_json_input,
    row_view,
    signal_name_error,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _row(i: int, t: datetime) -> SimpleNamespace:
    return SimpleNamespace(id=uuid.UUID(int=i), started_at=t, workflow="wf", version_hash="v" * 40,
                           state="completed", completed_at=None, lease_owner=None)


def _ev(seq: int, kind: str, secs: float, **payload: object) -> dict[str, object]:
    return {"seq": seq, "event_type": kind, "payload": payload, "inserted_at": T0 + timedelta(seconds=secs)}


# --- paging ---------------------------------------------------------------------------------------


def test_pager_walks_forward_and_back_with_keyset_cursors() -> None:
    rows = [_row(i, T0 - timedelta(seconds=i)) for i in range(7)]
    p = RunsPager(page_size=3)
    assert p.query()["after"] is None and p.query()["limit"] == 4
    p.accept(rows[0:4])
    assert p.has_next and [r.id for r in p.rows] == [r.id for r in rows[0:3]]
    assert not p.has_prev
    assert p.next_page()
    assert p.query()["after"] == (rows[2].started_at, rows[2].id)
    p.accept(rows[3:7])
    assert p.next_page()
    p.accept(rows[6:7])
    assert not p.has_next and p.page == 2 and not p.next_page()
    assert p.prev_page() and p.query()["after"] == (rows[2].started_at, rows[2].id)
    assert p.prev_page() and p.query()["after"] is None
    assert not p.prev_page()


def test_pager_empty_page_past_the_first_steps_back() -> None:
    p = RunsPager(page_size=2)
    p.accept([_row(1, T0), _row(2, T0), _row(3, T0)])
    assert p.next_page() and p.page == 1
    p.accept([])
    assert p.page == 0 and p.rows == []


def test_changing_filters_restarts_paging_and_validates_state() -> None:
    p = RunsPager(page_size=1)
    p.accept([_row(1, T0), _row(2, T0)])
    p.next_page()
    p.set_filters(state="suspended", workflow="order", search="  3fa8 ")
    q = p.query()
    assert (q["state"], q["workflow"], q["search"], q["after"]) == ("suspended", "order", "3fa8", None)
    p.set_filters(state=None, workflow="", search="   ")
    assert (p.query()["state"], p.query()["workflow"], p.query()["search"]) == (None, None, None)
    with pytest.raises(ValueError, match="unknown state 'done'"):
        p.set_filters(state="done")
    p.set_filters(attributes=" customer=acme , tier=2,vip=true ")
    assert p.query()["attributes"] == {"customer": "acme", "tier": 2, "vip": True}
    with pytest.raises(ValueError, match="is not KEY=VALUE"):
        p.set_filters(attributes="customer")
    p.set_filters(attributes="")
    assert p.query()["attributes"] is None
    with pytest.raises(ValueError, match="page_size"):
        RunsPager(page_size=0)


def test_row_view_formats_for_display() -> None:
    r = _row(5, T0)
    r.completed_at = T0 + timedelta(seconds=90)
    v = row_view(r, now=T0 + timedelta(hours=1))
    assert v["duration"] == "90.0 s" and v["version"] == "v" * 12
    assert v["short_id"] == str(uuid.UUID(int=5))[:8] and v["started"] == "2026-11-25 12:00:00"
    r.completed_at = None
    assert row_view(r, now=T0 + timedelta(hours=3))["duration"] == "3.0 h"
    assert row_view(r, now=T0 + timedelta(seconds=0.9996))["duration"] == "1.0 s"
    assert row_view(r, now=T0 + timedelta(seconds=0.042))["duration"] == "42 ms"


# --- actions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "enabled"),
    [
        ("running", {"signal", "cancel", "upgrade"}),
        ("suspended", {"signal", "cancel", "upgrade"}),
        ("drifted", {"signal", "cancel", "resume", "upgrade"}),
        ("completed", set()),
        ("failed", set()),
        ("cancelled", set()),
        (None, set()),
    ],
)
def test_actions_follow_state(state: str | None, enabled: set[str]) -> None:
    got = allowed_actions(state, read_only=False)
    assert {a for a, on in got.items() if on} == enabled
    assert not any(allowed_actions(state, read_only=True).values())


# --- JSON input ------------------------------------------------------------------------------------


def test_json_input_validation() -> None:
    assert parse_json_input('{"by": "ana", "n": [1, 2.5, null]}').value == {"by": "ana", "n": [1, 2.5, None]}
    assert parse_json_input("   ") .ok and parse_json_input("").value is None
    bad = parse_json_input('{"by": ana}')
    assert not bad.ok and bad.value is None
    assert "line 1, column 8" in (bad.error or "")
    nan = parse_json_input("NaN")
    assert not nan.ok and "NaN is not JSON" in (nan.error or "")
    assert not parse_json_input("{'single': 'quotes'}").ok


def test_signal_names() -> None:
    assert signal_name_error("approve") is None
    assert "type the signal name" in (signal_name_error("  ") or "")
    assert "is not a signal name" in (signal_name_error("no spaces") or "")


# --- trace id ----------------------------------------------------------------------------------------


def test_trace_id_is_decoded_from_traceparent_bytes() -> None:
    tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert decode_trace_id(tp) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert decode_trace_id(memoryview(tp + b"\nrojo=00f067aa0ba902b7")) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert decode_trace_id(b'{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}') == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert decode_trace_id(bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert decode_trace_id(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    assert decode_trace_id(b"garbage") is None and decode_trace_id(None) is None


# --- static HTML --------------------------------------------------------------------------------------


def test_static_html_escapes_and_shows_everything() -> None:
    run = {"id": uuid.UUID(int=1), "workflow": "<b>wf</b>", "state": "suspended", "version_hash": "abc",
           "input": {"x": "<script>"}, "started_at": T0, "lease_owner": "node-1", "lease_token": 7,
           "trace_context": b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    out = static.detail_html(run, [_ev(1, "signal_awaited", 1, name="approve")],
                             signals=[{"id": 1, "name": "approve", "payload": {"by": "ana"}}])
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;wf" in out
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in out and "signal_awaited" in out and "node-1" in out
    rows = [row_view(_row(1, T0), T0)]
    table = static.runs_table_html(rows, caption="runs")
    assert table.count("<tr>") == 2 and "cn-obs-state-completed" in table
    assert "no runs match" in static.runs_table_html([])


def test_viewmodel_does_not_import_widgets() -> None:
    import subprocess

    code = ("import sys, continuum_nb.observer.viewmodel, continuum_nb.observer.static; "
            "bad = sorted(m for m in ('ipywidgets', 'anywidget', 'IPython') if m in sys.modules); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- live-refresh bridge ---------------------------------------------------------------------------


def test_bridge_delivers_engine_thread_events_on_the_loop_thread_and_detaches() -> None:
    import asyncio
    import threading

    from continuum_nb import telemetry
    from continuum_nb.observer.bridge import LiveBridge

    calls: list[tuple[set[str], bool, int]] = []

    async def main() -> None:
        got = asyncio.Event()

        def on_change(ids: set[str], poll: bool) -> None:
            calls.append((ids, poll, threading.get_ident()))
            got.set()

        bridge = LiveBridge(on_change, instance="billing", interval=0.01, poll_every=3600)
        assert bridge.start()
        assert any(h.startswith("continuum_nb.observer.") for h in telemetry.handlers())

        def engine_thread() -> None:
            meta = {"run_id": "r1", "workflow": "wf", "instance": "billing"}
            telemetry.emit(("continuum", "run", "completed"), {}, meta)
            telemetry.emit(("continuum", "run", "completed"), {}, {**meta, "run_id": "other", "instance": "x"})

        t = threading.Thread(target=engine_thread)
        t.start()
        t.join()
        await asyncio.wait_for(got.wait(), timeout=10)
        bridge.stop()
        assert not any(h.startswith("continuum_nb.observer.") for h in telemetry.handlers())
        telemetry.emit(("continuum", "run", "completed"), {}, {"run_id": "late", "instance": "billing"})
        assert bridge.drain() == set()   # detached: nothing is queued any more

    asyncio.run(main())
    loop_thread = threading.get_ident()
    assert calls[0][:2] == ({"r1"}, False)   # only this instance's run, not a poll
    assert calls[0][2] == loop_thread          # called on the loop's thread, not the emitter's


def test_bridge_without_a_running_loop_does_nothing() -> None:
    from continuum_nb import telemetry
    from continuum_nb.observer.bridge import LiveBridge

    before = telemetry.handlers()
    bridge = LiveBridge(lambda ids, poll: None)
    assert bridge.start() is False and telemetry.handlers() == before
    bridge.stop()
