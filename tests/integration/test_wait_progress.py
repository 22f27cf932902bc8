"""`cn.wait` and `%continuum wait` in a real Jupyter kernel show a live line (state, events so
far, what the run waits on) that ends with how the run ended; in a script they stay quiet."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]

WORKFLOW = '''%%workflow
import continuum_nb as cn


@cn.activity
def progress_step(i: int) -> int:
    return i


async def progress_flow(n: int) -> dict:
    for i in range(n):
        await progress_step(i)
        await cn.timer(cn.seconds(0.5))
    return {"n": n}
'''


def _execute(kc: Any, code: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``code``; every iopub message of it until the kernel is idle again."""
    msg_id = kc.execute(code)
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


def _lines(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["data"].get("text/plain", "") for m in msgs
            if m["msg_type"] in ("display_data", "update_display_data")
            and "continuum-wait" in m["content"]["data"].get("text/html", "")]


def _errors(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["ename"] + ": " + m["content"]["evalue"] for m in msgs if m["msg_type"] == "error"]


def test_wait_in_a_kernel_shows_live_progress_and_ends_with_the_result(db_url: str, tmp_path: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "CONTINUUM_DATABASE_URL": db_url, "PYTHONPATH": str(REPO),
           "IPYTHONDIR": str(tmp_path / "ipython")}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        for code in ("%load_ext continuum_nb", WORKFLOW):
            assert not _errors(msgs := _execute(kc, code)), _errors(msgs)
        msgs = _execute(kc, 'import continuum_nb as cn\nrun = cn.start("progress_flow", {"n": 5})\n'
                            'cn.wait(run.id, timeout=90)')
        assert not _errors(msgs), _errors(msgs)
        lines = _lines(msgs)
        live = [line for line in lines if "so far" in line]
        assert live, lines
        assert any("waiting on timer" in line or "waiting on activity" in line for line in live), live
        assert lines[-1].startswith("run ") and " · completed · " in lines[-1], lines
        assert [m for m in msgs if m["msg_type"] == "update_display_data"], "the line is redrawn, not repeated"
        assert len([m for m in msgs if m["msg_type"] == "display_data"]) == 1
        result = [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"]
        assert result == ["{'n': 5}"]

        msgs = _execute(kc, 'run = cn.start("progress_flow", {"n": 3})\n%continuum wait $run.id --timeout 90')
        assert not _errors(msgs), _errors(msgs)
        assert " · completed · " in _lines(msgs)[-1]

        # a wait that times out says so, and raises as before
        msgs = _execute(kc, 'run = cn.start("progress_flow", {"n": 20})\ncn.wait(run.id, timeout=2.5)')
        assert _errors(msgs) and _errors(msgs)[0].startswith("TimeoutError: run "), _errors(msgs)
        assert "when the wait timed out" in _lines(msgs)[-1]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_wait_in_a_script_is_quiet(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent('''
        import continuum_nb as cn

        @cn.activity
        def quiet_step(i: int) -> int:
            return i

        @cn.workflow
        async def quiet_flow(n: int) -> dict:
            for i in range(n):
                await quiet_step(i)
                await cn.timer(cn.seconds(0.5))
            return {"n": n}

        if __name__ == "__main__":
            print(cn.wait(cn.start(quiet_flow, {"n": 3}).id, timeout=60))
            cn.instance().stop()
    '''))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CONTINUUM_DATABASE_URL": db_url, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "{'n': 3}\n" and "so far" not in proc.stderr
