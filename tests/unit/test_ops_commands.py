"""``continuum worker`` / ``health`` / ``doctor`` without a database: bad input is one line and
exit 2, a module that cannot be imported says whether it is missing or raised, the worker's log
lines, the doctor's clock and connection verdicts, ``cn.health`` as a callable module."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.commands import doctor, worker
from continuum_nb.errors import ConfigurationError

#: Nothing here may reach a database: a closed port makes any attempt fail loudly.
NOWHERE = "postgresql://nobody@127.0.0.1:1/nothing"


def _continuum(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd or "."), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "continuum_nb", *args], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL, cwd=cwd)


def _one_line(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    (tmp_path / "raises_at_import.py").write_text("x = 1\nraise RuntimeError('no config file')\n")
    (tmp_path / "needs_a_dependency.py").write_text("import no_such_dependency_abc\n")
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(3)\n")
    return tmp_path


def test_worker_import_of_a_missing_module_is_one_line(modules: Path) -> None:
    proc = _continuum("worker", "--database-url", NOWHERE, "--import", "no_such_pkg.flows", cwd=modules)
    _one_line(proc, 2, "continuum worker: error: --import no_such_pkg.flows: no module named 'no_such_pkg'",
              "PYTHONPATH")


@pytest.mark.parametrize(("module", "said"), [
    ("raises_at_import", "importing it raised RuntimeError: no config file at "),
    ("needs_a_dependency", "importing it raised ModuleNotFoundError: No module named 'no_such_dependency_abc'"),
    ("exits_at_import", "importing it raised SystemExit: 3"),
])
def test_worker_import_of_a_module_that_raises_is_one_line(modules: Path, module: str, said: str) -> None:
    line = _one_line(_continuum("worker", "--database-url", NOWHERE, "--import", module, cwd=modules), 2, said)
    assert "no module named" not in line
    if module == "raises_at_import":
        assert line.endswith("raises_at_import.py:2")


def test_import_helper_tells_missing_from_raising(modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(modules))
    with pytest.raises(ConfigurationError, match="no module named 'zz_missing'"):
        worker._import("zz_missing")
    with pytest.raises(ConfigurationError, match="raised ModuleNotFoundError"):
        worker._import("needs_a_dependency")


@pytest.mark.parametrize(("args", "said"), [
    (("worker", "--drain-timeout", "soon"), "--drain-timeout must be a number of seconds from 0 to 86400, not 'soon'"),
    (("worker", "--drain-timeout", "-1"), "--drain-timeout must be"),
    (("worker", "--drain-timeout", "nan"), "--drain-timeout must be"),
    (("health", "--slack", "-5"), "continuum health: error: --slack must be a finite number of seconds >= 0"),
    (("health", "--lease-ttl", "0"), "continuum health: error: lease_ttl must be"),
    (("doctor", "--max-skew", "0"), "continuum doctor: error: --max-skew must be a finite number of seconds > 0"),
    (("health", "--database-url", "mysql://x@y/z"), "unsupported database URL scheme 'mysql'"),
    (("doctor", "--database-url", "mysql://x@y/z"), "unsupported database URL scheme 'mysql'"),
    (("health", "--database-url", NOWHERE), "cannot connect to PostgreSQL"),
    (("doctor", "--database-url", NOWHERE), "cannot connect to PostgreSQL"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], said: str) -> None:
    proc = _continuum(*args, *(() if "--database-url" in args else ("--database-url", NOWHERE)))
    _one_line(proc, 2, said)


def test_worker_quiet_and_verbose_exclude_each_other() -> None:
    proc = _continuum("worker", "--quiet", "--verbose", "--database-url", NOWHERE)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


@pytest.mark.parametrize("command", ["worker", "health", "doctor"])
def test_help_has_an_example(command: str) -> None:
    proc = _continuum(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout and f"continuum {command}" in proc.stdout.split("examples:")[1]
    assert "exit status" in proc.stdout


def test_worker_logs_claims_ends_and_lost_leases(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="continuum_nb.worker")
    handler_id = worker._log_runs("wk-test")
    try:
        meta = {"instance": "wk-test", "run_id": "r1", "workflow": "order", "lease_token": 7}
        telemetry.emit(("continuum", "run", "claimed"), {"system_time": 1}, {**meta, "resumed": True})
        telemetry.emit(("continuum", "run", "completed"), {"duration": 12_500_000}, meta)
        telemetry.emit(("continuum", "run", "failed"), {"duration": 1_000_000},
                       {**meta, "error": {"type": "builtins.ValueError", "message": "bad\nsecond line"}})
        telemetry.emit(("continuum", "lease", "lost"), {}, meta)
        telemetry.emit(("continuum", "run", "completed"), {"duration": 1}, {**meta, "instance": "another"})
        telemetry.emit(("continuum", "run", "suspended"), {"duration": 1}, meta)
    finally:
        telemetry.detach(handler_id)
    got = [(r.levelname, r.getMessage(), r.fields["event"]) for r in caplog.records  # type: ignore[attr-defined]
           if r.name == "continuum_nb.worker"]
    assert got == [
        ("INFO", "run r1 (order) claimed, lease 7, resumed", "run.claimed"),
        ("INFO", "run r1 (order) completed in 12 ms", "run.completed"),
        ("ERROR", "run r1 (order) failed in 1 ms: builtins.ValueError: bad", "run.failed"),
        ("WARNING", "run r1 (order) lost its lease (stale token 7; another engine holds it now)", "lease.lost"),
    ]


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("continuum_nb.worker", logging.INFO, __file__, 1, "run %s claimed", ("r1",), None)
    record.fields = {"event": "run.claimed", "run_id": "r1", "lease_token": 3}
    line = worker._JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "run r1 claimed" and data["event"] == "run.claimed" and data["lease_token"] == 3
    assert data["level"] == "info" and data["ts"].endswith("Z")


def test_doctor_local_clock_verdicts() -> None:
    now = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)
    t = now.timestamp()
    assert doctor._local_clock(now, t - 0.01, t + 0.01, 1.0).level == "ok"
    ahead = doctor._local_clock(now + timedelta(seconds=5), t - 0.01, t + 0.01, 1.0)
    assert ahead.level == "finding" and "5.000s ahead of this machine's" in ahead.text and "NTP" in ahead.text
    # a slow round trip widens the bound instead of reporting a skew it cannot see
    assert doctor._local_clock(now + timedelta(seconds=1.5), t - 1, t + 1, 1.0).level == "ok"


def test_doctor_connection_verdicts() -> None:
    class Conn:
        def __init__(self, n: int) -> None:
            self.rows = [(None, "continuum_nb:default", "app", n)]

        def execute(self, *_: object) -> Conn:
            return self

        def fetchall(self) -> list[tuple[object, ...]]:
            return self.rows

    facts = SimpleNamespace(max_connections=100, reserved=3)
    assert doctor._connections(Conn(10), facts).level == "ok"
    busy = doctor._connections(Conn(80), facts)
    assert busy.level == "finding" and "80 client connection(s)" in busy.text and "max_connections 100" in busy.text
    assert str(busy).startswith("FINDING  connections: ")


def test_health_is_callable_even_after_its_module_was_imported() -> None:
    import continuum_nb.health  # noqa: F401 - sets the module as the attribute

    assert callable(cn.health)


def test_health_of_a_memory_store_instance_says_it_needs_postgresql() -> None:
    from continuum_nb.store.memory import MemoryStore

    inst = cn.Instance("health-mem", store=MemoryStore(), run_engine=False)
    try:
        with pytest.raises(ConfigurationError, match="cn.health\\(\\) reads PostgreSQL.*MemoryStore"):
            cn.health(inst)
    finally:
        inst.close()
