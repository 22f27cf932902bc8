"""The SQL text of the analytics layer, without PostgreSQL: quoting, the COPY statements, and the
fallback views run in DuckDB over hand-made Arrow tables."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from continuum_nb import analytics
from continuum_nb.analytics.connection import pick_mode
from continuum_nb.analytics.fallback import arrow_table
from continuum_nb.errors import ConfigurationError
from continuum_nb.store import analytics_sql as q

EVENTS = next(v for v in q.VIEWS if v.name == "events")


@pytest.mark.parametrize("bad", ["", "a b", 'x"; DROP TABLE y; --', "1abc", "a.b", "x" * 64, "naïve"])
def test_quote_ident_refuses_anything_but_plain_names(bad: str) -> None:
    with pytest.raises(ValueError, match="plain SQL identifier"):
        q.quote_ident(bad)


def test_quote_ident_and_literal() -> None:
    assert q.quote_ident("public") == '"public"'
    assert q.quote_literal("host=x password=it's") == "'host=x password=it''s'"
    with pytest.raises(ValueError, match="NUL"):
        q.quote_literal("a\x00b")
    assert q.ATTACH("dbname=x").endswith("AS pg (TYPE postgres, READ_ONLY)")
    assert q.ATTACH("dbname=x", secret=True).endswith(f"(TYPE postgres, READ_ONLY, SECRET {q.SECRET_NAME})")
    assert q.CREATE_SECRET("it's").endswith("(TYPE postgres, PASSWORD 'it''s')")


def test_views_mirror_the_tables_and_cover_every_kind() -> None:
    assert [v.name for v in q.VIEWS] == list(analytics.VIEWS)
    assert all(v.table == "continuum_" + v.name for v in q.VIEWS)
    kinds = {k for v in q.VIEWS for _, k in v.columns}
    assert kinds == set(q.COLUMN_TYPES)


def test_copy_select_converts_what_csv_cannot_carry() -> None:
    text = q.copy_select(EVENTS, "journal")
    assert text.startswith('COPY (SELECT "run_id"::text AS "run_id", "seq" AS "seq"')
    assert 'FROM "journal"."continuum_events") TO STDOUT (FORMAT csv)' in text
    assert '(extract(epoch FROM "inserted_at") * 1000000)::bigint' in text
    runs = next(v for v in q.VIEWS if v.name == "runs")
    assert "encode(\"trace_context\", 'hex')" in q.copy_select(runs, "public")
    with pytest.raises(ValueError):
        q.copy_select(EVENTS, "public; DROP TABLE x")


def _csv_for_events() -> bytes:
    # as PostgreSQL writes it: NULL unquoted-empty, "" an empty string, JSON null as null
    return (
        b'0b7e1a2c-0000-4000-8000-000000000001,1,activity_scheduled,"{""activity"": ""charge""}",1772323200000000\n'
        b'0b7e1a2c-0000-4000-8000-000000000001,2,signal_received,"{""name"": ""a\\nb"", ""payload"": null}",1772323201500000\n'
        b'0b7e1a2c-0000-4000-8000-000000000002,1,side_effect,null,1772323202000001\n'
    )


def test_fallback_view_types_and_values() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register(q.raw_table_name(EVENTS), arrow_table(_csv_for_events(), EVENTS))
    con.execute(q.fallback_view(EVENTS))
    types = con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall()
    assert types == [(c, q.COLUMN_TYPES[k]) for c, k in EVENTS.columns]
    rows = con.execute(
        "SELECT seq, payload ->> 'name', payload IS NULL, strftime(inserted_at, '%Y-%m-%d %H:%M:%S.%f') "
        "FROM events ORDER BY run_id, seq"
    ).fetchall()
    assert rows == [
        (1, None, False, "2026-03-01 00:00:00.000000"),
        (2, "a\nb", False, "2026-03-01 00:00:01.500000"),
        (1, None, False, "2026-03-01 00:00:02.000001"),   # the JSON value null is not SQL NULL
    ]
    df = analytics.events_by_type_and_month(con)
    assert df.to_dict("records") == [
        {"month": "2026-03", "event_type": t, "events": 1}
        for t in ("activity_scheduled", "side_effect", "signal_received")
    ]


def test_empty_table_keeps_the_schema() -> None:
    table = arrow_table(b"", EVENTS)
    assert table.num_rows == 0
    assert table.schema.field("inserted_at").type == pa.timestamp("us", tz="UTC")


def test_mode_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTINUUM_ANALYTICS_MODE", raising=False)
    assert pick_mode(None) == "auto"
    assert pick_mode("copy") == "copy"
    monkeypatch.setenv("CONTINUUM_ANALYTICS_MODE", " Scanner ")
    assert pick_mode(None) == "scanner"
    monkeypatch.setenv("CONTINUUM_ANALYTICS_MODE", "turbo")
    with pytest.raises(ConfigurationError, match="CONTINUUM_ANALYTICS_MODE='turbo' is not a valid analytics mode"):
        pick_mode(None)
    with pytest.raises(ConfigurationError, match="mode='x'"):
        pick_mode("x")


def test_composing_queries_over_recorded_journals() -> None:
    """compensations(), patches() and first_outcomes() over the recorded composing journals."""
    import json
    from pathlib import Path

    here = Path(__file__).parent.parent / "replay"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE events (run_id UUID, seq BIGINT, event_type VARCHAR, payload JSON, "
                "inserted_at TIMESTAMP WITH TIME ZONE)")
    for i, name in enumerate(["composing_expedite_signal", "composing_expedite_timer", "composing_trip"]):
        for e in json.loads((here / f"{name}.json").read_text())["journal"]:
            con.execute("INSERT INTO events VALUES (?, ?, ?, ?, TIMESTAMPTZ '2026-03-01 09:00:00+00' + to_seconds(?))",
                        [f"00000000-0000-4000-8000-00000000000{i}", e["seq"], e["event_type"],
                         json.dumps(e["payload"]), e["seq"]])
    comp = analytics.compensations(con).to_dict("records")
    assert [(r["activity"], r["scheduled"], r["completed"], r["failed"], r["pending"]) for r in comp] == [
        ("replay.refund", 1, 0, 1, 0), ("replay.unship", 1, 1, 0, 0)]
    assert comp[0]["p50_s"] == 1.0  # scheduled at seq 9, failed at seq 10: one second later here
    patches = analytics.patches(con).to_dict("records")
    assert [(r["patch"], r["runs"], r["deprecated"]) for r in patches] == [("expedite-v2", 2, 0)]
    first = analytics.first_outcomes(con).to_dict("records")
    assert [(r["cancelled"], r["target"] if isinstance(r["target"], str) else None, r["count"]) for r in first] == [
        ("signal", "approve", 1), ("timer", None, 1)]  # (a timer has no target: NULL, NaN in pandas)
