"""URL normalisation, masking and resolution (no server needed, except the unreachable one)."""

from __future__ import annotations

import socket

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from continuum_nb.errors import ConfigurationError, DatabaseUnavailable
from continuum_nb.store.database import (
    check_connection,
    conninfo,
    describe,
    resolve_url,
    sqlalchemy_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://ana@db.example:6543/orders", {"user": "ana", "host": "db.example", "port": "6543", "dbname": "orders"}),
        ("postgres://ana@db.example/orders", {"user": "ana", "host": "db.example", "dbname": "orders"}),
        ("postgresql+psycopg://ana:pw@db/orders", {"user": "ana", "password": "pw", "host": "db", "dbname": "orders"}),
        ("postgresql+psycopg2://ana@db/orders", {"user": "ana", "host": "db", "dbname": "orders"}),
        ("POSTGRESQL://ana@db/orders", {"user": "ana", "host": "db", "dbname": "orders"}),
        ("postgresql://ana@/orders?host=/var/run/postgresql", {"user": "ana", "host": "/var/run/postgresql", "dbname": "orders"}),
        ("postgresql://postgres@/continuum?host=/tmp/a%20b/run", {"user": "postgres", "host": "/tmp/a b/run", "dbname": "continuum"}),
        ("  postgresql://ana@db/orders  ", {"user": "ana", "host": "db", "dbname": "orders"}),
    ],
)
def test_urls_normalise_to_what_libpq_reads(url: str, expected: dict[str, str]) -> None:
    info = conninfo(url)
    assert info.startswith("postgresql://")
    assert conninfo_to_dict(info) == expected


def test_keyword_strings_pass_through_unchanged() -> None:
    text = "host=/tmp/sock dbname=orders user=ana"
    assert conninfo(text) == text


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mysql://root@db/orders", "unsupported database URL scheme 'mysql'"),
        ("sqlite:///tmp/x.db", "unsupported database URL scheme 'sqlite'"),
        ("db.example:5432/orders", "is not a PostgreSQL URL"),
        ("host=db dbname='unterminated", "not a valid connection string"),
        ("nosuchkey=1", "not a valid connection string"),
    ],
)
def test_bad_urls_get_a_one_line_error_naming_the_accepted_forms(bad: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        conninfo(bad)
    msg = str(info.value)
    assert fragment in msg and "postgresql://user@host:port/dbname" in msg
    assert "\n" not in msg


def test_password_is_masked_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        conninfo("host=db password=s3cret nosuchkey=1")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("postgresql://ana:s3cret@db:5432/orders", "s3cret"),
        ("postgresql://ana:s3cret@/orders?host=/sock", "s3cret"),
        ("postgresql://ana@db/orders?password=s3cret&sslmode=require", "s3cret"),
        ("host=db password=s3cret dbname=orders", "s3cret"),
        ("host=db password = 's3 cret' dbname=orders", "s3 cret"),
    ],
)
def test_describe_masks_passwords(raw: str, secret: str) -> None:
    shown = describe(raw)
    assert secret not in shown and "***" in shown
    assert "db" in shown or "/sock" in shown


def test_describe_leaves_urls_without_password_alone() -> None:
    assert describe("postgresql://ana@db:5432/orders") == "postgresql://ana@db:5432/orders"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://ana@db:6543/orders", "postgresql+psycopg://ana@db:6543/orders"),
        ("postgresql+psycopg://ana@/orders?host=/sock", "postgresql+psycopg://ana@/orders?host=/sock"),
    ],
)
def test_sqlalchemy_url(url: str, expected: str) -> None:
    assert sqlalchemy_url(url) == expected


def test_sqlalchemy_url_from_keywords_round_trips() -> None:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url("host='/tmp/my sock' dbname=orders user=ana port=6000"))
    assert url.drivername == "postgresql+psycopg"
    assert url.database == "orders"
    assert dict(url.query) == {"host": "/tmp/my sock", "user": "ana", "port": "6000"}


def test_resolve_url_prefers_explicit_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_DATABASE_URL", "postgres://env@db/e")
    assert resolve_url("postgres://explicit@db/x") == "postgresql://explicit@db/x"
    assert resolve_url(None) == "postgresql://env@db/e"
    monkeypatch.setenv("CONTINUUM_DATABASE_URL", "mysql://env@db/e")
    with pytest.raises(ConfigurationError, match="mysql"):
        resolve_url(None)


def test_resolve_url_without_configuration_names_the_embedded_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("CONTINUUM_DATABASE_URL", raising=False)
    monkeypatch.setenv("CONTINUUM_EMBEDDED_DIR", str(tmp_path))
    info = resolve_url(None, start_embedded=False)
    assert conninfo_to_dict(info) == {"user": "postgres", "host": f"{tmp_path}/run", "dbname": "continuum"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_connection_on_an_unreachable_server_is_one_clear_line() -> None:
    url = f"postgresql://ana:s3cret@127.0.0.1:{_closed_port()}/orders"
    with pytest.raises(DatabaseUnavailable) as info:
        check_connection(url, timeout=2)
    msg = str(info.value)
    assert msg.startswith("cannot connect to postgresql://ana:***@127.0.0.1:")
    assert "is PostgreSQL running?" in msg and "s3cret" not in msg and "\n" not in msg
    assert isinstance(info.value.__context__, psycopg.Error)
