"""continuum_nb vs DBOS Transact 3.4.0 vs pgbench's ceiling, on the same PostgreSQL server.

    python benchmarks/compare_dbos.py --admin-url postgresql://postgres@/postgres?host=/var/run/postgresql \
        --dbos-python /path/to/venv-with-dbos/bin/python [--workflows 300] [--steps 3] [--rounds 3] \
        [--concurrency 1 8 32 128] [--signals 100]

Creates fresh databases, runs benchmarks/throughput.py (continuum_nb) and
benchmarks/_dbos_workload.py (DBOS, in its own venv: pip install -r benchmarks/requirements.txt)
with 1, 8, 32 and 128 in flight (``--concurrency``), each scenario with its commits, WAL flushes,
client CPU and server (backend) CPU per workflow; then a signal sent from another process to a
waiting run, until the run resumed and committed (benchmarks/signal_latency.py: ``cn.signal``
against ``cn.signal`` awaited, the run released while it waits as by default, then held; DBOS:
``DBOS.send`` against ``DBOS.recv``; ``--signals``, 0 skips it); then pgbench single-row INSERTs with 1, 8 and 32 clients. Prints every result as one JSON
line, then a summary line with the ratios, the medians and issue 20's targets (``targets``: each
with its value and whether it is met).

With ``--rounds R`` (default 3) both engines run R times, alternating which goes first, each
round on fresh databases: a shared machine's speed drifts by tens of percent within a minute, so a
single back-to-back pair can be off either way. The summary gives each round's ratio (the two
engines of a round ran next to each other) and their median; the rate at C in flight against one
after another (``*_c32_over_c1``) is also taken within each round, then the median.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent


def fresh_db(admin: str) -> tuple[str, str]:
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # generated name, never user input
    return name, psycopg.conninfo.make_conninfo(admin, dbname=name)


def as_url(conninfo: str, scheme: str = "postgresql") -> str:
    """A URL form of a conninfo (DBOS takes URLs only)."""
    from urllib.parse import quote

    d = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(d.get("user", "postgres")))
    host = str(d.get("host", ""))
    port = f":{d['port']}" if d.get("port") else ""
    if host.startswith("/"):
        return f"{scheme}://{user}@{port and 'localhost' + port}/{d['dbname']}?host={host}"
    return f"{scheme}://{user}@{host}{port}/{d['dbname']}"


def drop_db(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_json(cmd: list[str]) -> list[dict]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed: {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def pgbench(admin: str, clients: int, seconds: int) -> dict:
    name, url = fresh_db(admin)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, v int)")
        script = HERE / "_pgbench_insert.sql"
        script.write_text("INSERT INTO t (v) VALUES (1);\n")
        params = psycopg.conninfo.conninfo_to_dict(url)
        cmd = ["pgbench", "-n", "-f", str(script), "-c", str(clients), "-j", str(min(clients, 2)),
               "-T", str(seconds), "-d", name, "-U", str(params.get("user", "postgres"))]
        if params.get("host"):
            cmd += ["-h", str(params["host"])]
        if params.get("port"):
            cmd += ["-p", str(params["port"])]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
        script.unlink(missing_ok=True)
        tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
        return {"scenario": f"pgbench single-row INSERT, {clients} client(s)", "engine": "pgbench",
                "concurrency": clients, "tps": round(tps, 1)}
    finally:
        drop_db(admin, name)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _rows(results: list[dict], engine: str, c: int) -> list[dict]:
    return [r for r in results if r["engine"].startswith(engine) and r.get("concurrency") == c
            and "workflows_per_s" in r]


def summarize(results: list[dict], rounds: int, concurrency: list[int], pgbench_rows: list[dict]) -> dict:
    """Medians over the rounds; every ratio is taken within a round (runs made next to each other)."""
    summary: dict = {"scenario": "summary", "rounds": rounds}
    by_round = {rnd: [r for r in results if r.get("round") == rnd] for rnd in range(1, rounds + 1)}
    for c in concurrency:
        ratios = []
        for rows in by_round.values():
            ours, theirs = _rows(rows, "continuum_nb", c), _rows(rows, "dbos", c)
            if ours and theirs:
                ratios.append(round(ours[0]["workflows_per_s"] / theirs[0]["workflows_per_s"], 2))
        summary[f"speedup_vs_dbos_c{c}"] = _median(ratios)
        summary[f"speedup_vs_dbos_c{c}_rounds"] = ratios
        for engine in ("continuum_nb", "dbos"):
            rows = _rows(results, engine, c)
            summary[f"{engine}_c{c}_workflows_per_s_median"] = _median([r["workflows_per_s"] for r in rows])
            for key in ("commits_per_workflow", "engine_commits_per_workflow", "wal_syncs_per_workflow",
                        "client_cpu_ms_per_workflow", "server_cpu_ms_per_workflow", "machine_cpu_busy_pct"):
                values = [r[key] for r in rows if r.get(key) is not None]
                if values:
                    summary[f"{engine}_c{c}_{key}_median"] = _median(values)
            if c != 1 and 1 in concurrency:
                # the rate at c in flight against one after another, the same engine in the same round
                within = []
                for rows_r in by_round.values():
                    at_c, at_1 = _rows(rows_r, engine, c), _rows(rows_r, engine, 1)
                    if at_c and at_1:
                        within.append(round(at_c[0]["workflows_per_s"] / at_1[0]["workflows_per_s"], 2))
                summary[f"{engine}_c{c}_over_c1"] = _median(within)
                summary[f"{engine}_c{c}_over_c1_rounds"] = within
    for engine, held in (("continuum_nb", False), ("continuum_nb_held", True), ("dbos", False)):
        sig = [r for r in results if r["engine"].startswith(engine.removesuffix("_held")) and "signals" in r
               and (r.get("run_released_while_waiting") is False) == held]
        if sig:
            summary[f"{engine}_signal_p50_ms_median"] = _median([r["lat_ms"]["p50"] for r in sig])
            summary[f"{engine}_signal_p95_ms_median"] = _median([r["lat_ms"]["p95"] for r in sig])
            summary[f"{engine}_signal_p50_ms_rounds"] = [r["lat_ms"]["p50"] for r in sig]
    for row in pgbench_rows:
        summary[f"pgbench_c{row['concurrency']}_tps"] = row["tps"]
    return summary


def targets(s: dict) -> dict:
    """Issue 20's targets beside the figures (None where a scenario was not run)."""
    def check(value: float | None, op: str, bound: float) -> dict:
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        return {"value": value, "target": f"{op} {bound:g}", "met": met}

    commits = [s.get(f"continuum_nb_c{c}_engine_commits_per_workflow_median") for c in (1, 8, 32, 128)]
    known = [x for x in commits if x is not None]
    return {
        "speedup_vs_dbos_c8": check(s.get("speedup_vs_dbos_c8"), ">=", 8),
        "speedup_vs_dbos_c1": check(s.get("speedup_vs_dbos_c1"), ">=", 5),
        "continuum_nb_c32_over_c1": check(s.get("continuum_nb_c32_over_c1"), ">=", 3),
        "continuum_nb_c32_engine_commits_per_workflow": check(commits[2], "<=", 2),
        "continuum_nb_engine_commits_fall_with_concurrency": {
            "value": commits, "met": None if len(known) < 2 else all(a > b for a, b in zip(known, known[1:], strict=False))},
        "continuum_nb_c32_client_cpu_ms_per_workflow": check(
            s.get("continuum_nb_c32_client_cpu_ms_per_workflow_median"), "<=", 0.6),
        "continuum_nb_c1_engine_commits_per_workflow_is_steps_plus_1": {
            "value": commits[0], "met": None if commits[0] is None else commits[0] == s.get("steps", 3) + 1},
        "continuum_nb_signal_p50_ms": check(s.get("continuum_nb_signal_p50_ms_median"), "<=", 5),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--admin-url", required=True)
    p.add_argument("--dbos-python", required=True)
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128],
                   help="workflows in flight, one scenario each (both engines)")
    p.add_argument("--signals", type=int, default=100,
                   help="signals sent from another process per engine and round (0: no signal scenario)")
    p.add_argument("--pgbench-seconds", type=int, default=10)
    p.add_argument("--pgbench-clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    results: list[dict] = []
    for rnd in range(1, args.rounds + 1):
        order = ("continuum_nb", "dbos") if rnd % 2 else ("dbos", "continuum_nb")
        for engine in order:
            for row in run_engine_again(engine, args):
                row = dict(row, round=rnd)
                print(json.dumps(row), flush=True)
                results.append(row)
    pgbench_rows = []
    for clients in args.pgbench_clients:
        row = pgbench(args.admin_url, clients, args.pgbench_seconds)
        print(json.dumps(row), flush=True)
        pgbench_rows.append(row)
    summary = summarize(results, args.rounds, args.concurrency, pgbench_rows)
    summary["steps"] = args.steps
    summary["targets"] = targets(summary)
    print(json.dumps(summary), flush=True)
    return 0


def run_engine_again(engine: str, args: argparse.Namespace, attempts: int = 3) -> list[dict]:
    """``run_engine``, run again from the start on a fresh database when it fails: on a shared
    server another user's restart of PostgreSQL ends a run half-way (said on stderr)."""
    for attempt in range(1, attempts + 1):
        try:
            return run_engine(engine, args)
        except (RuntimeError, psycopg.OperationalError, subprocess.CalledProcessError) as exc:
            if attempt == attempts:
                raise
            print(f"{engine}: attempt {attempt} failed, run again: {str(exc)[-300:]}", file=sys.stderr, flush=True)
            time.sleep(10)  # a restarting server accepts connections again after a few seconds
    raise AssertionError("unreachable")


def run_engine(engine: str, args: argparse.Namespace) -> list[dict]:
    """One engine's rows (each concurrency, then the signal) on a fresh database, dropped afterwards."""
    name, url = fresh_db(args.admin_url)
    try:
        if engine == "continuum_nb":
            subprocess.run([sys.executable, "-m", "continuum_nb", "migrate", "--database-url", url],
                           check=True, capture_output=True)
            cmd = [sys.executable, str(HERE / "throughput.py"), "--database-url", url]
        else:
            cmd = [args.dbos_python, str(HERE / "_dbos_workload.py"), "--database-url", as_url(url),
                   "--signals", str(args.signals)]
        cmd += ["--workflows", str(args.workflows), "--steps", str(args.steps),
                "--concurrency", *[str(c) for c in args.concurrency]]
        rows = run_json(cmd)
        if engine == "continuum_nb" and args.signals > 0:
            # as a run waits by default (its lease given back), then held by the engine, as
            # DBOS holds a workflow blocked in recv
            for held in ([], ["--held"]):
                rows += run_json([sys.executable, str(HERE / "signal_latency.py"), "--database-url", url,
                                  "--signals", str(args.signals), *held])
        return rows
    finally:
        drop_db(args.admin_url, name)


if __name__ == "__main__":
    sys.exit(main())
