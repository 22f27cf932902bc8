"""Idempotent starts and signals from several real processes on one database: exactly one run
per key, exactly one delivery per signal key, and no workflow code run by a start that lost.

Four processes (two with engines: the first-wake path; two pure clients: the unleased insert)
start the same ten keys fifty times each, released at once; then each sends the same keyed
signals. The parent checks the database and what every caller was told.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, random, sys, threading
import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef

bodies = []

async def ingress_race(key: str):
    bodies.append(key)  # counts first wakes (and replays) in this process
    return await cn.signal("go")

url, with_engine, seed = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
inst = cn.Instance(f"race{seed}", database_url=url, run_engine=with_engine, auto_migrate=False,
                   poll_interval=0.2)
wf = WorkflowDef(ingress_race, name="ingress_race")
inst.registry.register(wf)
inst.start_engine()
cn.runs(instance=inst)  # connected
print("ready", flush=True)
sys.stdin.readline()
keys = [f"day-{i % 10}" for i in range(50)]
random.Random(seed).shuffle(keys)
got = [[k, *(lambda r: (r.id, r.existing))(cn.start(wf, {"key": k}, idempotency_key=k, instance=inst))]
       for k in keys]
print(json.dumps({"starts": got}), flush=True)
sys.stdin.readline()
print(json.dumps({"bodies": len(bodies)}), flush=True)
sys.stdin.readline()
ids = sorted({rid for _, rid, _ in got})
said = [cn.signal(rid, "go", {"from": seed}, idempotency_key="approve-1", instance=inst) for rid in ids for _ in range(3)]
print(json.dumps({"signals": said}), flush=True)
sys.stdin.readline()
inst.close()
'''


def _child(db_url: str, engine: bool, seed: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, "1" if engine else "0", str(seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"child exited ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
    return line


def _say(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()


def _read_all(procs: list[subprocess.Popen[str]], field: str) -> list[Any]:
    return [json.loads(_line(p))[field] for p in procs]


def test_four_processes_start_ten_keys_fifty_times_each(db_url: str) -> None:
    procs = [_child(db_url, engine, seed) for seed, engine in enumerate((True, True, False, False))]
    try:
        assert [_line(p).strip() for p in procs] == ["ready"] * 4
        _say(procs)  # go: everyone starts at once
        starts = _read_all(procs, "starts")
        with psycopg.connect(db_url) as conn:
            runs = dict(conn.execute("SELECT key, run_id::text FROM continuum_ingress_keys").fetchall())
            assert conn.execute("SELECT count(*) FROM continuum_runs").fetchone() == (10,)
        assert sorted(runs) == [f"day-{i}" for i in range(10)]
        told = [(k, rid, existing) for one in starts for k, rid, existing in one]
        assert len(told) == 200
        assert all(runs[k] == rid for k, rid, _ in told), "a caller got a run that is not its key's"
        assert sum(not existing for _, _, existing in told) == 10, "each run is new to exactly one caller"

        # every run reaches its first wake (client-inserted ones are claimed by the engines)
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(db_url) as conn:
                row = conn.execute("SELECT count(DISTINCT run_id) FROM continuum_events").fetchone()
            if row == (10,) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row == (10,)
        _say(procs)
        bodies = _read_all(procs, "bodies")
        # each run's first wake ran once, in one process (a run waiting for a signal is not woken
        # again before one arrives); the starts that lost the race ran no workflow code
        assert sum(bodies) == 10, bodies
        assert bodies[2:] == [0, 0]  # the clients run no workflow code at all

        _say(procs)  # keyed signals: 4 processes x 3 times each, to every run
        said = [s for one in _read_all(procs, "signals") for s in one]
        assert len(said) == 120 and said.count("delivered") == 10
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM continuum_signals").fetchone() == (10,)
            assert conn.execute("SELECT count(*) FROM continuum_signal_keys").fetchone() == (10,)
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM continuum_runs WHERE state = 'completed'").fetchone() != (10,):
                assert time.monotonic() < deadline, "the runs did not complete"
                time.sleep(0.2)

        _say(procs)
        for p in procs:
            assert p.wait(30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
