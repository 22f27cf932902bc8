"""CPU of the PostgreSQL backends serving one database, and of the whole machine, from /proc.

Shared by benchmarks/throughput.py and benchmarks/_dbos_workload.py (which runs in DBOS's own
venv: this module imports nothing of continuum_nb). The server runs on this machine, so its
backends' CPU can be read beside the client's: what one workflow costs on each side says which
of them a 2-core machine runs out of first.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg


def process_cpu(pids: list[int], *, children: bool = False) -> dict[int, float]:
    """utime + stime of each process still alive, in seconds (with ``children``: plus its
    reaped children's, cutime + cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    last = 15 if children else 13
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = sum(int(f) for f in fields[11:last]) / tick
    return out


def backend_pids(conninfo: str) -> list[int]:
    """Server processes serving this database (the engine's pooled connections among them)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()]


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


class ServerCpu:
    """The backends' CPU between ``start()`` and ``stop()``: the backends alive at either read
    (a connection opened in between and closed before the end is missed: the engines' pools
    keep theirs open)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._before: dict[int, float] = {}
        self._machine0 = (0, 0)

    def start(self) -> None:
        self._before = process_cpu(backend_pids(self.conninfo))
        self._machine0 = machine_jiffies()

    def stop(self) -> tuple[float, float]:
        """(seconds of backend CPU, share of the machine's CPU busy in %) since ``start()``."""
        pids = set(backend_pids(self.conninfo)) | set(self._before)
        now = process_cpu(sorted(pids))
        busy1, total1 = machine_jiffies()
        seconds = sum(now[p] - self._before.get(p, 0.0) for p in now)
        busy = 100.0 * (busy1 - self._machine0[0]) / max(1, total1 - self._machine0[1])
        return seconds, busy
