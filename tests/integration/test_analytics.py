"""DuckDB analytics over a synthetic journal written with SQL, checked against Python's own numbers.

The journal spans four past months (their partitions are created here). While generating it, the
test records what each ready-made query must report (latencies, waits, counts), so the expected
values never come from SQL.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import psycopg
import pytest

from continuum_nb import analytics
from continuum_nb.errors import ConfigurationError, DatabaseUnavailable, MigrationError
from continuum_nb.store.analytics_rollups import ALPHA

MONTHS = [(2026, 3), (2026, 4), (2026, 5), (2026, 6)]
UTC = timezone.utc
EARLY = datetime(1900, 1, 1, tzinfo=UTC)  # a window over everything: never read from the rollups


@dataclass
class Journal:
    runs: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)      # run_id, seq, type, payload, at
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    signals: list[tuple[Any, ...]] = field(default_factory=list)
    # what the queries must report
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    signal_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _build(seed: int = 5, n_runs: int = 48) -> Journal:
    rng = random.Random(seed)
    j = Journal()
    for i in range(n_runs):
        run_id = uuid.UUID(int=rng.getrandbits(128))
        year, month = MONTHS[i % len(MONTHS)]
        started = datetime(year, month, 1 + rng.randint(0, 25), tzinfo=UTC) + timedelta(
            seconds=rng.randint(0, 86_000), microseconds=rng.randint(0, 999_999)
        )
        clock = [started]
        seq = [0]

        def emit(event_type: str, payload: dict[str, Any], after: float, *, _run: uuid.UUID = run_id,
                 _clock: list[datetime] = clock, _seq: list[int] = seq) -> tuple[int, datetime]:
            _clock[0] += timedelta(seconds=after)
            _seq[0] += 1
            j.events.append((_run, _seq[0], event_type, json.dumps(payload), _clock[0]))
            return _seq[0], _clock[0]

        waiting = False
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(["charge", "ship", "notify"])
            s_seq, s_at = emit("activity_scheduled",
                               {"activity": name, "ordinal": 0, "args": [i], "kwargs": {},
                                "idempotency_key": None, "task_id": str(uuid.UUID(int=i))},
                               rng.uniform(0.001, 2))
            task = [uuid.UUID(int=rng.getrandbits(128)), run_id, s_seq, name,
                    json.dumps({"args": [i], "kwargs": {}}), 1, "available", s_at, None, None, None]
            if rng.random() < 0.1 and not waiting:    # still pending: the run waits on it
                j.outcomes[name]["scheduled"] += 1
                j.tasks.append(tuple(task))
                waiting = True
                break
            attempts = rng.choice([1, 1, 1, 2, 3])
            failed = attempts == 3 and rng.random() < 0.5
            latency = rng.uniform(0.01, 30)
            kind = "activity_failed" if failed else "activity_completed"
            body = ({"error": {"type": "builtins.ValueError", "message": "no", "traceback": "..."}} if failed
                    else {"result": {"ok": i}, "idempotency_hit": False})
            _, done_at = emit(kind, {"activity": name, "scheduled_seq": s_seq, "attempts": attempts, **body}, latency)
            j.latencies[name].append((done_at - s_at).total_seconds())
            j.attempts[name].append(attempts)
            j.outcomes[name]["scheduled"] += 1
            j.outcomes[name]["failed" if failed else "completed"] += 1
            task[5:] = [attempts, "failed" if failed else "completed", s_at, done_at,
                        None if failed else json.dumps(body["result"]),
                        json.dumps(body["error"]) if failed else None]
            j.tasks.append(tuple(task))
        if not waiting:
            t_seq, _ = emit("timer_started", {"ordinal": 0, "duration_s": 5.0, "fire_at": "2026-01-01T00:00:05+00:00"}, 0.5)
            emit("timer_fired", {"started_seq": t_seq, "fire_at": "2026-01-01T00:00:05+00:00"}, 5)
            emit("side_effect", {"kind": "random", "ordinal": 0, "value": rng.random()}, 0.01)
            roll = rng.random()
            counts = j.signal_counts["approve"]
            if roll < 0.5:                              # a normal wait
                a_seq, a_at = emit("signal_awaited", {"name": "approve", "ordinal": 0, "timeout_s": 3600.0}, 0.1)
                # before v0.2 journals carried no awaited_seq: then the awaited right before pairs
                ref = {"awaited_seq": a_seq} if roll < 0.4 else {}
                r_seq, r_at = emit("signal_received", {"name": "approve", "payload": {"by": "ana"}, **ref},
                                   rng.uniform(1, 5000))
                j.waits["approve"].append((r_at - a_at).total_seconds())
                counts.update(["awaited", "received"])
                j.signals.append((run_id, "approve", '{"by": "ana"}', True, r_seq, r_at))
            elif roll < 0.65:                           # already in the mailbox: no wait journaled
                r_seq, r_at = emit("signal_received",
                                   {"name": "approve", "payload": {}, "awaited_seq": None, "ordinal": 0}, 0.1)
                counts.update(["received", "immediate"])
                j.signals.append((run_id, "approve", "{}", True, r_seq, r_at))
            elif roll < 0.8:                            # timed out once, then answered
                t_seq, _ = emit("signal_awaited", {"name": "approve", "ordinal": 0, "timeout_s": 60.0}, 0.1)
                emit("timer_fired", {"started_seq": t_seq, "timeout_s": 60.0, "signal": "approve"}, 60)
                a_seq, a_at = emit("signal_awaited", {"name": "approve", "ordinal": 1, "timeout_s": 600.0}, 0.1)
                r_seq, r_at = emit("signal_received", {"name": "approve", "payload": None, "awaited_seq": a_seq},
                                   rng.uniform(1, 500))
                j.waits["approve"].append((r_at - a_at).total_seconds())
                counts.update(["awaited", "awaited", "received", "unanswered"])
                j.signals.append((run_id, "approve", "null", True, r_seq, r_at))
            elif roll < 0.9:                            # timed out, then found one in the mailbox
                t_seq, _ = emit("signal_awaited", {"name": "approve", "ordinal": 0, "timeout_s": 5.0}, 0.1)
                emit("timer_fired", {"started_seq": t_seq, "timeout_s": 5.0, "signal": "approve"}, 5)
                r_seq, r_at = emit("signal_received",
                                   {"name": "approve", "payload": 1, "awaited_seq": None, "ordinal": 1}, 30)
                counts.update(["awaited", "unanswered", "received", "immediate"])
                j.signals.append((run_id, "approve", "1", True, r_seq, r_at))
            else:                                       # still waiting for a review
                emit("signal_awaited", {"name": "review", "ordinal": 0, "timeout_s": None}, 0.1)
                j.signals.append((run_id, "other", '"early"', False, None, clock[0]))
                j.signal_counts["review"].update(["awaited", "unanswered"])
                waiting = True
        if waiting:
            state, completed_at = "suspended", None
        elif i == 7:
            state, completed_at = "cancelled", clock[0] + timedelta(seconds=1)
        else:
            state = "failed" if rng.random() < 0.2 else "completed"
            completed_at = clock[0] + timedelta(seconds=rng.uniform(0, 3))
        j.runs.append({
            "id": run_id, "workflow": ["order", "refund", "report"][i % 3], "version_hash": f"v{i % 2}",
            "state": state, "input": json.dumps({"i": i, "name": "café ✓"}),
            "result": json.dumps({"ok": True}) if state == "completed" else None,
            "error": json.dumps({"message": 'line one\nline "two", three'}) if state == "failed" else None,
            "trace_context": b"\x00\x01traceparent" if i % 5 == 0 else None,
            "started_at": started, "completed_at": completed_at,
            "lease_owner": "" if i == 3 else None,
        })
    return j


def _load(url: str, j: Journal) -> None:
    with psycopg.connect(url) as conn:
        for year, month in MONTHS:
            nxt = (year + month // 12, month % 12 + 1)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS continuum_events_y{year}_m{month:02d} PARTITION OF continuum_events "
                f"FOR VALUES FROM ('{year}-{month:02d}-01 00:00:00+00') TO ('{nxt[0]}-{nxt[1]:02d}-01 00:00:00+00')"
            )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, result, error, "
                "trace_context, started_at, completed_at, lease_owner) VALUES (%(id)s, %(workflow)s, "
                "%(version_hash)s, %(state)s, %(input)s, %(result)s, %(error)s, %(trace_context)s, "
                "%(started_at)s, %(completed_at)s, %(lease_owner)s)",
                j.runs,
            )
            cur.executemany(
                "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) "
                "VALUES (%s, %s, %s, %s, %s)", j.events,
            )
            cur.executemany(
                "INSERT INTO continuum_activity_tasks (id, run_id, seq, activity, mfa, attempt, state, "
                "scheduled_at, completed_at, result, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                j.tasks,
            )
            cur.executemany(
                "INSERT INTO continuum_signals (run_id, name, payload, delivered, delivered_seq, inserted_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)", j.signals,
            )


@pytest.fixture
def journal(db_url: str) -> Iterator[tuple[str, Journal]]:
    j = _build()
    _load(db_url, j)
    yield db_url, j
    analytics.close_shared()


@pytest.fixture(params=["scanner", "copy"])
def con(request: pytest.FixtureRequest, journal: tuple[str, Journal]) -> Iterator[duckdb.DuckDBPyConnection]:
    c = analytics.connect(database_url=journal[0], mode=request.param)
    assert analytics.mode_of(c) == request.param
    yield c
    c.close()


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))   # linear interpolation, as DuckDB's quantile_cont


# --- the views --------------------------------------------------------------------------------

def test_views_exist_with_json_columns(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert set(analytics.VIEWS) <= views
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'events'").fetchall())
    assert types == {"run_id": "UUID", "seq": "BIGINT", "event_type": "VARCHAR", "payload": "JSON",
                     "inserted_at": "TIMESTAMP WITH TIME ZONE"}
    counts = {v: con.execute(f"SELECT count(*) FROM {v}").fetchall()[0][0] for v in analytics.VIEWS}  # noqa: S608
    assert counts == {"runs": len(j.runs), "events": len(j.events), "activity_tasks": len(j.tasks),
                      "signals": len(j.signals)}
    names = con.execute("SELECT payload ->> 'name' FROM events WHERE event_type = 'signal_awaited' ORDER BY 1").fetchall()
    assert sorted(n for (n,) in names) == sorted(
        json.loads(p)["name"] for _, _, t, p, _ in j.events if t == "signal_awaited")
    row = con.execute("SELECT input ->> 'name', trace_context FROM runs WHERE trace_context IS NOT NULL LIMIT 1").fetchone()
    assert row == ("café ✓", b"\x00\x01traceparent")
    err = con.execute("SELECT error ->> 'message' FROM runs WHERE state = 'failed' LIMIT 1").fetchone()
    assert err == ('line one\nline "two", three',)
    assert con.execute("SELECT count(*) FROM runs WHERE lease_owner = ''").fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM runs WHERE lease_owner IS NULL").fetchone() == (len(j.runs) - 1,)
    delivered = con.execute("SELECT count(*) FROM signals WHERE delivered AND delivered_seq IS NOT NULL").fetchone()
    assert delivered == (sum(s[3] for s in j.signals),)
    assert con.execute("SELECT payload FROM signals WHERE NOT delivered LIMIT 1").fetchone() == ('"early"',)


def test_fallback_gives_identical_views_and_answers(journal: tuple[str, Journal]) -> None:
    url, _ = journal
    scan = analytics.connect(database_url=url, mode="scanner")
    copy = analytics.connect(database_url=url, mode="copy")
    for view, key in (("runs", "id"), ("events", "run_id, seq"), ("activity_tasks", "id"), ("signals", "id")):
        q = f"SELECT * FROM {view} ORDER BY {key}"  # noqa: S608
        pd.testing.assert_frame_equal(scan.execute(q).to_arrow_table().to_pandas(),
                                      copy.execute(q).to_arrow_table().to_pandas())
        describe = f"SELECT column_name, column_type FROM (DESCRIBE {view})"  # noqa: S608
        assert scan.execute(describe).fetchall() == copy.execute(describe).fetchall()
    for query in (analytics.events_by_type_and_month, analytics.run_durations,
                  analytics.signal_wait_times, analytics.throughput_per_minute):
        pd.testing.assert_frame_equal(query(scan), query(copy))
    # Over the whole journal the scanner's latency percentiles come from the monthly rollups'
    # histograms (within ALPHA); with a window both paths compute them exactly.
    pct = ["p50_s", "p95_s"]
    got, exact = analytics.activity_latency(scan), analytics.activity_latency(copy)
    pd.testing.assert_frame_equal(got.drop(columns=pct), exact.drop(columns=pct))
    pd.testing.assert_frame_equal(got[pct], exact[pct], rtol=ALPHA)
    pd.testing.assert_frame_equal(analytics.activity_latency(scan, since=EARLY), analytics.activity_latency(copy, since=EARLY))


# --- the ready-made queries ---------------------------------------------------------------------

def test_events_by_type_and_month(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    expected = Counter((at.strftime("%Y-%m"), t) for _, _, t, _, at in j.events)
    df = analytics.events_by_type_and_month(con)
    got = {(r.month, r.event_type): r.events for r in df.itertuples()}
    assert got == dict(expected)
    assert list(df["month"]) == sorted(df["month"])
    assert set(df["month"]) == {f"{y}-{m:02d}" for y, m in MONTHS}


def test_run_durations(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    for states in (("completed",), ("completed", "failed", "cancelled")):
        by_wf: dict[str, list[float]] = defaultdict(list)
        for r in j.runs:
            if r["state"] in states:
                by_wf[r["workflow"]].append((r["completed_at"] - r["started_at"]).total_seconds())
        df = analytics.run_durations(con, states=states).set_index("workflow")
        assert sorted(df.index) == sorted(by_wf)
        for wf, values in by_wf.items():
            assert df.loc[wf, "runs"] == len(values)
            for col, q in (("p50_s", 50), ("p95_s", 95), ("p99_s", 99)):
                assert df.loc[wf, col] == pytest.approx(_p(values, q), rel=1e-9)
            assert df.loc[wf, "max_s"] == pytest.approx(max(values))
            assert df.loc[wf, "mean_s"] == pytest.approx(sum(values) / len(values))


def test_activity_latency(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    df = analytics.activity_latency(con).set_index("activity")
    exact = analytics.activity_latency(con, since=EARLY).set_index("activity")
    assert sorted(df.index) == sorted(j.outcomes)
    for name, outcome in j.outcomes.items():
        row = df.loc[name]
        assert row["count"] == outcome["scheduled"]
        assert row["completed"] == outcome["completed"]
        assert row["failed"] == outcome["failed"]
        assert row["pending"] == outcome["scheduled"] - outcome["completed"] - outcome["failed"]
        # whole journal: from the monthly rollups' histograms on the scanner (within ALPHA)
        assert row["p50_s"] == pytest.approx(_p(j.latencies[name], 50), rel=ALPHA)
        assert row["p95_s"] == pytest.approx(_p(j.latencies[name], 95), rel=ALPHA)
        windowed = exact.loc[name]  # a window is never read from the rollups: exact
        assert windowed["p50_s"] == pytest.approx(_p(j.latencies[name], 50), rel=1e-9)
        assert windowed["p95_s"] == pytest.approx(_p(j.latencies[name], 95), rel=1e-9)
        tries = j.attempts[name]
        assert row["retry_rate"] == pytest.approx(sum(a > 1 for a in tries) / len(tries))
        assert row["mean_attempts"] == pytest.approx(sum(tries) / len(tries))
    assert df["pending"].sum() > 0 and df["failed"].sum() > 0 and (df["retry_rate"] > 0).all()


def test_signal_wait_times(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    df = analytics.signal_wait_times(con).set_index("name")
    assert sorted(df.index) == sorted(j.signal_counts)
    for name, counts in j.signal_counts.items():
        row = df.loc[name]
        for col in ("awaited", "received", "immediate", "unanswered"):
            assert row[col] == counts[col], (name, col)
        if j.waits[name]:
            assert row["p50_s"] == pytest.approx(_p(j.waits[name], 50), rel=1e-9)
            assert row["p95_s"] == pytest.approx(_p(j.waits[name], 95), rel=1e-9)
            assert row["max_s"] == pytest.approx(max(j.waits[name]))
        else:
            assert pd.isna(row["p50_s"])
    assert df.loc["approve", "immediate"] > 0 and df.loc["approve", "unanswered"] > 0
    assert df.loc["review", "received"] == 0 and pd.isna(df.loc["review", "p50_s"])


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def test_throughput_per_minute(con: duckdb.DuckDBPyConnection, journal: tuple[str, Journal]) -> None:
    _, j = journal
    runs = Counter(_minute(r["completed_at"]) for r in j.runs if r["state"] == "completed")
    events = Counter(_minute(at) for *_, at in j.events)
    df = analytics.throughput_per_minute(con)
    first, last = min([*runs, *events]), max([*runs, *events])
    assert len(df) == int((last - first).total_seconds() // 60) + 1      # every minute, gaps as 0
    busy = df[(df["completed_runs"] > 0) | (df["events"] > 0)]
    got = {m.to_pydatetime(): (r, e) for m, r, e in busy.itertuples(index=False)}
    assert got == {m: (runs[m], events[m]) for m in set(runs) | set(events)}
    assert df["events"].sum() == len(j.events)

    # a window [since, until): only the first month
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    window = analytics.throughput_per_minute(con, since=since, until=until)
    assert window["events"].sum() == sum(1 for *_, at in j.events if since <= at < until)
    assert window["minute"].min() >= pd.Timestamp(since) and window["minute"].max() < pd.Timestamp(until)


# --- safety, fallback selection, errors ---------------------------------------------------------

def test_attached_database_is_read_only(journal: tuple[str, Journal]) -> None:
    url, j = journal
    con = analytics.connect(database_url=url, mode="scanner")
    for stmt in ("DELETE FROM pg.public.continuum_events",
                 "UPDATE pg.public.continuum_runs SET state = 'failed'",
                 "CREATE TABLE pg.public.intruder (x INTEGER)"):
        with pytest.raises(duckdb.Error, match="(?i)read.only"):
            con.execute(stmt)
    with pytest.raises(duckdb.Error, match="(?i)read.only"):
        analytics.sql("DELETE FROM pg.public.continuum_runs", database_url=url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_events").fetchone() == (len(j.events),)
        assert conn.execute("SELECT count(*) FROM continuum_runs WHERE state = 'failed'").fetchone() == (
            sum(r["state"] == "failed" for r in j.runs),)
        assert conn.execute("SELECT to_regclass('intruder')").fetchone() == (None,)


def test_sql_returns_a_dataframe_and_sees_new_rows(journal: tuple[str, Journal]) -> None:
    url, j = journal
    df = analytics.sql("SELECT state, count(*) AS n FROM runs GROUP BY state ORDER BY state", database_url=url)
    assert dict(zip(df["state"], df["n"], strict=True)) == dict(Counter(r["state"] for r in j.runs))
    with psycopg.connect(url) as conn:      # the scanner reads live: a new run shows up at once
        conn.execute("INSERT INTO continuum_runs (id, workflow, version_hash, state, input) "
                     "VALUES (gen_random_uuid(), 'late', 'v', 'running', '{}')")
    again = analytics.sql("SELECT count(*) AS n FROM runs WHERE workflow = 'late'", database_url=url)
    assert again["n"].tolist() == [1]
    with pytest.raises(ConfigurationError, match="empty"):
        analytics.sql("  ", database_url=url)


def test_env_var_forces_the_fallback(journal: tuple[str, Journal], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_ANALYTICS_MODE", "copy")
    con = analytics.connect(database_url=journal[0])
    assert analytics.mode_of(con) == "copy"
    assert con.execute("SELECT count(*) FROM events").fetchone() == (len(journal[1].events),)


def test_missing_extension_falls_back_with_a_warning(journal: tuple[str, Journal],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb_extension_postgres_scanner", None)   # "not installed"
    with pytest.warns(RuntimeWarning, match="postgres-scanner is not installed.*COPY"):
        con = analytics.connect(database_url=journal[0])
    assert analytics.mode_of(con) == "copy"
    assert analytics.run_durations(con)["runs"].sum() == sum(r["state"] == "completed" for r in journal[1].runs)
    from continuum_nb.analytics import ScannerUnavailable
    with pytest.raises(ScannerUnavailable):
        analytics.connect(database_url=journal[0], mode="scanner")


def test_progress_bar_on_fallback_load(journal: tuple[str, Journal], capsys: pytest.CaptureFixture[str]) -> None:
    analytics.connect(database_url=journal[0], mode="copy", progress=True).close()
    assert "loading events" in capsys.readouterr().err
    analytics.connect(database_url=journal[0], mode="copy").close()   # small tables: no bar
    assert "loading" not in capsys.readouterr().err


def test_empty_journal(db_url: str) -> None:
    for mode in ("scanner", "copy"):
        con = analytics.connect(database_url=db_url, mode=mode)
        assert analytics.events_by_type_and_month(con).empty
        assert analytics.run_durations(con).empty
        assert analytics.throughput_per_minute(con).empty
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_bad_input_is_refused(db_url: str, empty_db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid analytics mode"):
        analytics.connect(database_url=db_url, mode="fast")
    with pytest.raises(ConfigurationError, match="not both"):
        analytics.connect("default", database_url=db_url)
    with pytest.raises(MigrationError, match="continuum migrate"):
        analytics.connect(database_url=empty_db_url)
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        analytics.connect(database_url="postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(ConfigurationError, match="run states"):
        analytics.run_durations(database_url=db_url, states=["done"])


def test_plot_functions_draw_each_frame(journal: tuple[str, Journal]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    con = analytics.connect(database_url=journal[0])
    months = analytics.events_by_type_and_month(con)
    ax = analytics.plot_events_by_type_and_month(months)
    assert len(ax.patches) == months["month"].nunique() * months["event_type"].nunique()   # stacked bars
    durations = analytics.run_durations(con)
    ax = analytics.plot_run_durations(durations)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(durations["workflow"])
    assert len(ax.patches) == 3 * len(durations)
    latency = analytics.activity_latency(con)
    fig, (a1, a2) = plt.subplots(1, 2)
    assert analytics.plot_activity_latency(latency, ax=a1) is a1      # draws on the given axes
    assert sum("retries" in t.get_text() for t in a1.texts) == len(latency)
    waits = analytics.signal_wait_times(con)
    assert len(analytics.plot_signal_wait_times(waits, ax=a2).patches) == 2 * len(waits)
    ax = analytics.plot_throughput_per_minute(analytics.throughput_per_minute(con))
    assert [line.get_label() for line in ax.get_lines()] == ["events"]
    empty = analytics.plot_run_durations(durations.iloc[0:0])
    assert [t.get_text() for t in empty.texts] == ["no data"]
    plt.close("all")


def test_instance_resolves_like_the_rest_of_the_api(journal: tuple[str, Journal]) -> None:
    import continuum_nb as cn
    from continuum_nb.errors import InstanceNotRegistered

    url, j = journal
    inst = cn.Instance(name="analytics_reports", database_url=url, run_engine=False)
    try:
        for ref in ("analytics_reports", inst):
            con = analytics.connect(ref)
            assert con.execute("SELECT count(*) FROM events").fetchone() == (len(j.events),)
            con.close()
        df = analytics.sql("SELECT count(*) AS n FROM runs", instance="analytics_reports")
        assert df["n"].tolist() == [len(j.runs)]
        assert analytics.run_durations(instance=inst)["runs"].sum() == sum(r["state"] == "completed" for r in j.runs)
    finally:
        inst.close()
    with pytest.raises(InstanceNotRegistered, match="analytics_reports"):
        analytics.connect("analytics_reports")


def test_password_stays_out_of_the_attach_string(journal: tuple[str, Journal]) -> None:
    url, j = journal
    with_password = psycopg.conninfo.make_conninfo(url, password="hunter2'x")   # ignored by trust auth
    con = analytics.connect(database_url=with_password, mode="scanner")
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (len(j.runs),)
    shown = " ".join(str(v) for row in con.execute("SELECT * FROM duckdb_databases()").fetchall() for v in row)
    shown += " ".join(str(v) for row in con.execute("SELECT * FROM duckdb_secrets()").fetchall() for v in row)
    assert "hunter2" not in shown and "dbname=" in shown


def test_a_fresh_database_is_migrated_through_an_instance(empty_db_url: str) -> None:
    import continuum_nb as cn

    with pytest.raises(MigrationError):                     # an explicit URL is never migrated
        analytics.connect(database_url=empty_db_url)
    inst = cn.Instance(name="analytics_fresh", database_url=empty_db_url, run_engine=False)
    try:
        con = analytics.connect(inst)                       # like any API call: migrated on first use
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        con.close()
    finally:
        inst.close()


def test_a_window_gives_the_same_answers_on_both_paths(journal: tuple[str, Journal]) -> None:
    url, j = journal
    since, until = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    scan = analytics.connect(database_url=url, mode="scanner")
    copy = analytics.connect(database_url=url, mode="copy")
    assert scan.execute("SELECT schema FROM _continuum_scanner").fetchone() == ("public",)  # PostgreSQL's part
    for query in (analytics.events_by_type_and_month, analytics.run_durations, analytics.activity_latency,
                  analytics.signal_wait_times, analytics.throughput_per_minute, analytics.compensations,
                  analytics.patches, analytics.first_outcomes):
        pd.testing.assert_frame_equal(query(scan, since=since, until=until), query(copy, since=since, until=until))
    df = analytics.events_by_type_and_month(scan, since=since, until=until)
    assert set(df["month"]) == {"2026-04", "2026-05"}
    assert df["events"].sum() == sum(since <= at < until for *_, at in j.events)
    with pytest.raises(ConfigurationError, match="not before until"):
        analytics.activity_latency(scan, since=until, until=since)
