"""Tables people read: `%continuum runs` and the observer's partitions list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from continuum_nb.notebook import display as views
from continuum_nb.notebook import formats

RUN = "3f2b8c1e-0000-4000-8000-000000000001"
T0 = dt.datetime(2026, 11, 25, 16, 0, 0, 123456, tzinfo=dt.timezone.utc)
CET = dt.timezone(dt.timedelta(hours=1), "CET")


@dataclass
class Info:
    id: str
    workflow: str
    version_hash: str
    state: str
    started_at: dt.datetime
    completed_at: dt.datetime | None
    next_wakeup_at: dt.datetime | None
    lease_owner: str | None


def _runs() -> list[Info]:
    return [Info(RUN, "order", "ab" * 32, "completed", T0, T0 + dt.timedelta(seconds=4.25), None, None),
            Info(RUN.replace("1", "2"), "order", "cd" * 32, "suspended", T0, None, T0 + dt.timedelta(hours=1), "node-1")]


def test_runs_table_reads_short_ids_seconds_one_zone_and_empty_cells() -> None:
    t = views.RunsTable(_runs(), zone=dt.timezone.utc, now=T0 + dt.timedelta(seconds=90))
    text = repr(t)
    lines = text.splitlines()
    assert lines[0] == "2 runs · times in UTC"
    assert lines[2].split()[:5] == ["3f2b8c1e", "order", "abababababab", "completed", "2026-11-25"]
    assert "16:00:00" in lines[2] and "4.2 s" in lines[2]
    assert "90.0 s so far" in lines[3] and "17:00:00" in lines[3] and "node-1" in lines[3]
    for bad in ("None", "NaT", "nan", "+00:00", ".123"):
        assert bad not in text, bad
    assert all(len(line) < 140 for line in lines)      # one line per run, no wrapped UUIDs
    page = t._repr_html_()
    assert f"title='{RUN}'" in page and f"<code>3f2b8c1e<span style='font-size:0'>{RUN[8:]}</span></code>" in page
    assert "None" not in page and "NaT" not in page and page.count("times in UTC") == 1


def test_runs_table_keeps_full_values_for_code_and_states_a_local_zone() -> None:
    t = views.RunsTable(_runs(), zone=CET, now=T0)
    assert t.caption() == "2 runs · times in CET (UTC+01:00)"
    assert t.display_rows()[0]["started"] == "2026-11-25 17:00:00"
    assert list(t.index) == [RUN, RUN.replace("1", "2")]            # the DataFrame of full values
    assert t.loc[RUN, "version"] == "abababababab" and t.frame.loc[RUN, "started_at"] == T0
    assert len(t) == 2 and "(no runs)" in repr(views.RunsTable([]))


def test_formats() -> None:
    assert formats.human_size(49152) == "48.0 kB" and formats.human_size(12) == "12 bytes"
    assert formats.human_size(None) == "" and formats.when(None, dt.timezone.utc) == ""
    assert formats.when(float("nan"), dt.timezone.utc) == ""
    assert formats.duration(0.004) == "4 ms" and formats.duration(7260) == "2.0 h" and formats.duration(None) == ""
    assert formats.short_id(RUN) == "3f2b8c1e"


def test_partitions_read_like_the_command_line() -> None:
    from continuum_nb.observer.viewmodel import partition_view
    from continuum_nb.store.partitions import PartitionInfo

    part = PartitionInfo("continuum_events_y2026_m12", dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc),
                         dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc), 12345, 49152)
    assert partition_view(part) == {"partition": "continuum_events_y2026_m12", "months": "2026-12 → 2027-01",
                                    "rows": "12,345", "size": "48.0 kB"}
    default = PartitionInfo("continuum_events_default", None, None, 0, 8192)
    assert partition_view(default)["months"].startswith("DEFAULT") and partition_view(default)["size"] == "8.0 kB"
