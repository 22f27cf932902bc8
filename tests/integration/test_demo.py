"""``continuum demo`` runs a real workflow and prints its timeline."""

from __future__ import annotations

import subprocess
import sys

import psycopg


def test_demo_runs_a_workflow_and_prints_its_timeline(db_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "continuum_nb", "demo", "--database-url", db_url],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for event_type in ("side_effect", "activity_scheduled", "activity_completed", "signal_awaited",
                       "signal_received", "timer_started", "timer_fired"):
        assert event_type in out
    assert "demo.reserve_stock -> " in out and "after 2 attempt(s)" in out  # failed once, then succeeded
    assert "(state: completed)" in out
    with psycopg.connect(db_url) as conn:
        state, result = conn.execute(
            "SELECT state, result FROM continuum_runs WHERE workflow = 'demo_order'"
        ).fetchone()
        types = [r[0] for r in conn.execute(
            "SELECT event_type FROM continuum_events e JOIN continuum_runs r ON r.id = e.run_id "
            "WHERE r.workflow = 'demo_order' ORDER BY seq")]
    assert state == "completed" and result["stock"]["attempt"] == 2
    assert types.count("activity_completed") == 2 and "signal_received" in types
