"""Partition months and names: validation, naming, bounds, the missing-partition message."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from continuum_nb.errors import PartitionError
from continuum_nb.partitions import next_month, partition_error_message
from continuum_nb.store.partitions import (
    PartitionInfo,
    add_months,
    format_month,
    month_of,
    parse_month,
    partition_name,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-01", date(2026, 1, 1)), ("2026-12", date(2026, 12, 1)), ("1999-07", date(1999, 7, 1))],
)
def test_parse_month_accepts_yyyy_mm(text: str, expected: date) -> None:
    assert parse_month(text) == expected
    assert format_month(parse_month(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "2026-13",
        "2026-00",
        "26-01",
        "2026-1",
        "2026/01",
        "2026-01-01",
        " 2026-01",
        "2026-01\n",
        "x; drop table continuum_runs",
        "2026-01'; DROP TABLE continuum_events; --",
        "",
        "0999-01",
        "２０２６-01",  # non-ASCII digits
    ],
)
def test_parse_month_refuses_everything_else(text: str) -> None:
    with pytest.raises(PartitionError) as info:
        parse_month(text)
    message = str(info.value)
    assert "YYYY-MM" in message and "\n" not in message


def test_partition_name_and_month_arithmetic() -> None:
    assert partition_name(date(2026, 3, 1)) == "continuum_events_y2026_m03"
    assert add_months(date(2026, 11, 1), 1) == date(2026, 12, 1)
    assert add_months(date(2026, 11, 1), 2) == date(2027, 1, 1)
    assert add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
    assert add_months(date(2026, 1, 1), -25) == date(2023, 12, 1)


def test_month_of_uses_the_utc_month() -> None:
    # 23:30 on 31 Jan in UTC-5 is already February in UTC.
    local = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert month_of(local) == date(2026, 2, 1)
    assert month_of(date(2026, 5, 17)) == date(2026, 5, 1)
    assert month_of("2026-05") == date(2026, 5, 1)
    with pytest.raises(PartitionError):
        month_of("2026-5")


def test_next_month_rolls_over_the_year() -> None:
    assert next_month(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)) == date(2027, 1, 1)
    assert next_month(datetime(2026, 6, 1, tzinfo=timezone.utc)) == date(2026, 7, 1)


def test_partition_error_message_names_the_command() -> None:
    msg = partition_error_message(datetime(2027, 3, 9, 8, 0, tzinfo=timezone.utc))
    assert "`continuum partitions create 2027-03`" in msg
    assert "continuum_events_y2027_m03" in msg and "\n" not in msg
    assert "2027-04" in partition_error_message("2027-04")


def test_partition_info_month_only_for_monthly_names() -> None:
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert PartitionInfo("continuum_events_y2026_m03", start, start, 0, 0).month == date(2026, 3, 1)
    assert PartitionInfo("continuum_events_default", None, None, 0, 0).month is None
