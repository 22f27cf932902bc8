"""continuum_nb vs DBOS Transact 3.4.0 vs pgbench's ceiling, on the same PostgreSQL server.

    python benchmarks/compare_dbos.py --admin-url postgresql://postgres@/postgres?host=/var/run/postgresql \
        --dbos-python /path/to/venv-with-dbos/bin/python [--workflows 300] [--steps 3] [--rounds 3]

Creates fresh databases, runs benchmarks/throughput.py (continuum_nb) and
benchmarks/_dbos_workload.py (DBOS, in its own venv: pip install -r benchmarks/requirements.txt)
with 1 and 8 in flight, then pgbench single-row INSERTs with 1 and 8 clients; prints every result
as one JSON line, then a summary line with the ratios.

With ``--rounds R`` (default 3) both engines run R times, alternating which goes first, each
round on fresh databases: a shared machine's speed drifts by tens of percent within a minute, so a
single back-to-back pair can be off either way. The summary gives each round's ratio (the two
engines of a round ran next to each other) and their median.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--admin-url", required=True)
    p.add_argument("--dbos-python", required=True)
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--pgbench-seconds", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    results: list[dict] = []
    ratios: dict[int, list[float]] = {1: [], 8: []}
    for rnd in range(1, args.rounds + 1):
        order = ("continuum_nb", "dbos") if rnd % 2 else ("dbos", "continuum_nb")
        rows = [dict(row, round=rnd) for engine in order for row in run_engine(engine, args)]
        for row in rows:
            print(json.dumps(row), flush=True)
        results += rows
        for c in ratios:
            ours = next(r for r in rows if r["engine"] == "continuum_nb" and r["concurrency"] == c)
            theirs = next(r for r in rows if r["engine"].startswith("dbos") and r["concurrency"] == c)
            ratios[c].append(round(ours["workflows_per_s"] / theirs["workflows_per_s"], 2))
    for clients in (1, 8):
        row = pgbench(args.admin_url, clients, args.pgbench_seconds)
        print(json.dumps(row), flush=True)
        results.append(row)
    summary: dict = {"scenario": "summary", "rounds": args.rounds}
    for c, values in ratios.items():
        summary[f"speedup_vs_dbos_c{c}"] = statistics.median(values)
        summary[f"speedup_vs_dbos_c{c}_rounds"] = values
        for engine in ("continuum_nb", "dbos"):
            wfs = [r["workflows_per_s"] for r in results
                   if r.get("concurrency") == c and r["engine"].startswith(engine) and "workflows_per_s" in r]
            summary[f"{engine}_c{c}_workflows_per_s_median"] = statistics.median(wfs)
    print(json.dumps(summary), flush=True)
    return 0


def run_engine(engine: str, args: argparse.Namespace) -> list[dict]:
    """One engine's rows (1 and 8 in flight) on a fresh database, dropped afterwards."""
    name, url = fresh_db(args.admin_url)
    try:
        if engine == "continuum_nb":
            subprocess.run([sys.executable, "-m", "continuum_nb", "migrate", "--database-url", url],
                           check=True, capture_output=True)
            cmd = [sys.executable, str(HERE / "throughput.py"), "--database-url", url]
        else:
            cmd = [args.dbos_python, str(HERE / "_dbos_workload.py"), "--database-url", as_url(url)]
        cmd += ["--workflows", str(args.workflows), "--steps", str(args.steps), "--concurrency", "1", "8"]
        return run_json(cmd)
    finally:
        drop_db(args.admin_url, name)


if __name__ == "__main__":
    sys.exit(main())
