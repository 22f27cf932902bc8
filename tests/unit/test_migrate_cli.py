"""``continuum migrate`` / ``gen-migration`` / ``partitions`` argument handling that needs no
database: bad revisions, unreachable servers, bad months, generated output."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import pytest

from continuum_nb.cli import main
from continuum_nb.commands.gen_migration import _literal, alembic_revision, sql_script
from continuum_nb.store.migrate import ALIASES, available, print_sql, resolve_target
from continuum_nb.store.schema import create_statements, drop_statements, metadata

#: Nothing listens on port 1: connecting fails at once.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/continuum"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_revisions_resolve_by_alias_version_and_name() -> None:
    migs = available()
    assert resolve_target("v0.1") == ALIASES["v0.1"] == migs[0].version
    assert resolve_target(None) == resolve_target("head") == migs[-1].version
    assert resolve_target(migs[1].revision) == migs[1].version
    assert resolve_target(migs[1].version) == migs[1].version
    assert resolve_target("partition_continuum_events") == "20260601000000"
    assert resolve_target("v0.2") == "20260601000003"


@pytest.mark.parametrize("revision", ["v9", "2026", "20260601000000_nope", "; drop table x"])
def test_unknown_revision_is_one_line_and_touches_no_database(
    capsys: pytest.CaptureFixture[str], revision: str
) -> None:
    rc, out, err = cli(capsys, "migrate", "--to", revision, "--database-url", UNREACHABLE)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unknown revision" in lines[0] and "v0.1" in lines[0]
    assert "cannot connect" not in err  # refused before connecting


@pytest.mark.parametrize("extra", [[], ["--print"], ["--to", "v0.1"]])
def test_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    rc, out, err = cli(capsys, "migrate", *extra, "--database-url", UNREACHABLE)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to PostgreSQL" in lines[0]


def test_bad_url_scheme_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "migrate", "--database-url", "mysql://root@localhost/db")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "PostgreSQL" in err


@pytest.mark.parametrize("month", ["2026-13", "26-01", "x; drop table continuum_runs"])
def test_bad_month_is_refused_before_connecting(capsys: pytest.CaptureFixture[str], month: str) -> None:
    rc, out, err = cli(capsys, "partitions", "create", month, "--database-url", UNREACHABLE)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "invalid month" in err and "cannot connect" not in err


def test_partitions_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["partitions"])
    assert info.value.code == 2


def test_exit_code_from_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "continuum_nb", "partitions", "list", "--database-url", UNREACHABLE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot connect" in proc.stderr


def test_gen_migration_sql_has_every_table_index_and_the_version_rows(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "gen-migration")
    assert rc == 0 and out == sql_script()
    for table in metadata.sorted_tables:
        assert f"CREATE TABLE {table.name} (" in out
        for index in table.indexes:
            assert f" {index.name} ON {table.name} " in out
    assert "PARTITION BY RANGE (inserted_at)" in out
    assert "CREATE SEQUENCE continuum_lease_token_seq" in out
    for m in available():
        assert f"('{m.version}', '{m.name}')" in out
    assert out.index("BEGIN;") < out.index("CREATE TABLE") < out.rindex("COMMIT;")


def test_gen_migration_alembic_compiles(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "gen-migration", "--alembic", "--revision-id", "abc123", "--down-revision", "f00")
    assert rc == 0
    namespace: dict[str, Any] = {}
    exec(compile(out, "rev.py", "exec"), namespace)  # constants and two functions only
    assert namespace["revision"] == "abc123" and namespace["down_revision"] == "f00"
    assert callable(namespace["upgrade"]) and callable(namespace["downgrade"])
    assert any("continuum_events" in s for s in namespace["DOWNGRADE"])
    # A random id by default.
    assert alembic_revision() != alembic_revision()


def test_gen_migration_refuses_a_bad_revision_id(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "gen-migration", "--alembic", "--revision-id", 'x"""; import os')
    assert rc == 2 and out == "" and "--revision-id" in err and len(err.strip().splitlines()) == 1


def test_print_sql_of_nothing_says_so() -> None:
    assert print_sql([]).startswith("-- nothing to apply")
    text = print_sql(available()[:1])
    assert "BEGIN;" in text and "COMMIT;" in text and "20260502153302" in text


@pytest.mark.parametrize(
    "statement",
    [*create_statements(), *drop_statements(), 'SELECT \'a"""b\'', "SELECT 'x\\'", 'SELECT "q"', "E'\\n'"],
)
def test_alembic_literals_are_exact(statement: str) -> None:
    assert ast.literal_eval(_literal(statement)) == statement
