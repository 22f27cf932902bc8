"""PostgresStore behaviour that only a real server shows: races, fencing, notifications, failures."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from continuum_nb.errors import DatabaseUnavailable, LeaseLost, MigrationError, PartitionError
from continuum_nb.store.base import (
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    Event,
    NewRun,
    NewTask,
    NewTimer,
    Notification,
    Wake,
)
from continuum_nb.store.migrate import migrate
from continuum_nb.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(db_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(db_url, pool_size=4, instance="itest")
    yield s
    s.close()


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_run(store: PostgresStore, *, owner: str | None = "e1", ttl: float = 30.0, workflow: str = "wf") -> tuple[uuid.UUID, int | None]:
    rid = uuid.uuid4()
    return rid, store.create_run(NewRun(rid, workflow, "v1", {}, now()), owner=owner, lease_ttl=ttl)


def wake(rid: uuid.UUID, token: int, first: int, n: int = 2, **kw: Any) -> Wake:
    return Wake(run_id=rid, lease_token=token, now=now(), state=kw.pop("state", "suspended"),
                events=[Event(first + i, "side_effect", {"i": first + i}) for i in range(n)], **kw)


def race(*fns: Callable[[], Any]) -> list[Any]:
    """Run the functions at the same moment in threads; each result or the exception raised."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def runner(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the race outcome is what the test checks
            out[i] = exc

    threads = [threading.Thread(target=runner, args=(i, f)) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def wait_until(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)  # polling a condition with a deadline, not standing in for synchronisation
    return pred()


# --- fencing ---------------------------------------------------------------------------------------

def test_two_tokens_racing_exactly_one_wins(store: PostgresStore) -> None:
    for _ in range(30):
        rid, old = new_run(store, ttl=0)
        taken = store.claim_run(rid, "e2", 30)
        assert taken is not None and taken.lease_token != old
        assert old is not None and taken.lease_token is not None
        stale = wake(rid, old, 1, new_tasks=[NewTask(uuid.uuid4(), 1, "a", {"args": [], "kwargs": {}}, now())])
        fresh = wake(rid, taken.lease_token, 1)
        results = race(lambda w=stale: store.commit_wake(w), lambda w=fresh: store.commit_wake(w))
        assert isinstance(results[0], LeaseLost), results
        assert not isinstance(results[1], Exception), results
        assert [e.seq for e in store.load_journal(rid)] == [1, 2]
        assert store.claim_tasks("x", ["a"], now() + timedelta(seconds=1), 30, 10) == []


def test_retried_commit_cannot_duplicate_seqs(store: PostgresStore) -> None:
    """A wake applied twice (e.g. retried after a lost acknowledgement) is refused the second time."""
    rid, token = new_run(store)
    assert token is not None
    w = wake(rid, token, 1)
    store.commit_wake(w)
    with pytest.raises(LeaseLost, match="journal ends at seq 2"):
        store.commit_wake(w)
    results = race(*[lambda: store.commit_wake(wake(rid, token, 3)) for _ in range(4)])
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, LeaseLost) for r in results if isinstance(r, Exception))
    with psycopg.connect(store._db.conninfo) as conn:
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT seq FROM continuum_events WHERE run_id = %s GROUP BY seq HAVING count(*) > 1) d",
            (rid,),
        ).fetchone()
    assert dup == (0,)
    assert [e.seq for e in store.load_journal(rid)] == [1, 2, 3, 4]


def test_seq_check_reads_the_run_rows_last_seq(store: PostgresStore, db_url: str) -> None:
    """The journal's end is the run row's last_seq, kept by every wake (not max(seq) over the
    partitions): events gone from the journal (a dropped month) do not move it back."""
    rid = uuid.uuid4()
    first = Wake(run_id=rid, lease_token=0, now=now(), state="suspended",
                 events=[Event(1, "side_effect", {"i": 1}), Event(2, "side_effect", {"i": 2})])
    token = store.create_run(NewRun(rid, "wf", "v1", {}, now()), owner="e1", lease_ttl=30.0, first_wake=first)
    assert token is not None

    def last_seq() -> int:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT last_seq FROM continuum_runs WHERE id = %s", (rid,)).fetchone()
            assert row is not None
            return int(row[0])

    assert last_seq() == 2
    store.commit_wake(wake(rid, token, 3))
    assert last_seq() == 4
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=now(), state="suspended"))  # no events
    assert last_seq() == 4
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM continuum_events WHERE run_id = %s", (rid,))
    with pytest.raises(LeaseLost, match="first seq is 1 but the journal ends at seq 4"):
        store.commit_wake(wake(rid, token, 1))
    store.commit_wake(wake(rid, token, 5))
    assert last_seq() == 6 and [e.seq for e in store.load_journal(rid)] == [5, 6]


def test_failure_late_in_a_wake_rolls_back_all_of_it(store: PostgresStore) -> None:
    rid, token = new_run(store)
    assert token is not None
    t = NewTask(uuid.uuid4(), 2, "a", {"args": [], "kwargs": {}}, now())
    store.commit_wake(wake(rid, token, 1, new_tasks=[t]))
    with pytest.raises(ValueError, match="duplicate key"):
        store.commit_wake(wake(rid, token, 3, new_tasks=[t], state="completed", release=True))
    assert [e.seq for e in store.load_journal(rid)] == [1, 2]
    run = store.get_run(rid)
    assert run is not None and run.state == "suspended" and run.lease_token == token


def test_a_value_that_cannot_be_sent_writes_nothing(store: PostgresStore) -> None:
    """A value that cannot be encoded fails before anything is sent: nothing is written, and the
    connection stays usable."""
    rid, token = new_run(store)
    assert token is not None
    timer = NewTimer(uuid.uuid4(), 1, now())
    # the timers are fine, the consumed signal's id cannot be encoded
    with pytest.raises(TypeError):
        store.commit_wake(wake(rid, token, 1, new_timers=[timer], consumed_signals={object(): 1}))  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.commit_wake(Wake(run_id=rid, lease_token=token, now=now(), state="suspended",
                               new_timers=[timer], events=[Event(1, "side_effect", {"x": object()})]))
    assert store.pending_timers(rid) == []
    assert store.load_journal(rid) == []
    run = store.get_run(rid)
    assert run is not None and run.state == "running" and run.lease_token == token
    store.commit_wake(wake(rid, token, 1, new_timers=[timer]))  # the connection is usable again
    assert store.pending_timers(rid) == [timer]


# --- claiming under concurrency ----------------------------------------------------------------------

def test_concurrent_claims_take_each_run_and_task_once(store: PostgresStore, db_url: str) -> None:
    other = PostgresStore(db_url, pool_size=2, instance="other")
    try:
        runs = [new_run(store, owner=None)[0] for _ in range(60)]
        holder, token = new_run(store)
        assert token is not None
        store.commit_wake(Wake(run_id=holder, lease_token=token, now=now(), state="suspended",
                               events=[Event(i + 1, "activity_scheduled", {}) for i in range(60)],
                               new_tasks=[NewTask(uuid.uuid4(), i + 1, "a", {"args": [i], "kwargs": {}}, now())
                                          for i in range(60)]))

        def drain(s: PostgresStore, owner: str, claim: Callable[..., list[Any]], names: list[str]) -> list[uuid.UUID]:
            got: list[uuid.UUID] = []
            while True:
                batch = claim(owner, names, now() + timedelta(seconds=1), 30, 7)
                if not batch:
                    return got
                got.extend(r.id for r in batch)

        a, b = race(lambda: drain(store, "A", store.claim_runs, ["wf"]), lambda: drain(other, "B", other.claim_runs, ["wf"]))
        assert sorted(a + b) == sorted(runs)
        ta, tb = race(lambda: drain(store, "A", store.claim_tasks, ["a"]), lambda: drain(other, "B", other.claim_tasks, ["a"]))
        assert len(ta) + len(tb) == 60 and len(set(ta) | set(tb)) == 60
    finally:
        other.close()


def test_signal_racing_a_suspending_wake_is_never_lost(store: PostgresStore) -> None:
    for i in range(40):
        rid, token = new_run(store)
        assert token is not None
        w = Wake(run_id=rid, lease_token=token, now=now(), state="suspended", release=True,
                 awaiting_signals=["go"], events=[Event(1, "signal_awaited", {"name": "go"})])
        result, _sig = race(lambda w=w: store.commit_wake(w),
                            lambda r=rid, i=i: store.send_signal(r, "go", i, now()))
        assert not isinstance(result, Exception), result
        run = store.get_run(rid)
        assert run is not None
        # either the wake saw the signal, or the signal came after it and made the run runnable
        assert result.signal_pending or run.next_wakeup_at is not None
        assert run.next_wakeup_at is not None
        assert rid in {r.id for r in store.claim_runs("e2", ["wf"], now(), 30, 100)}


# --- notifications ---------------------------------------------------------------------------------

def collect(listener: Any, pred: Callable[[list[Notification]], bool], timeout: float = 15.0) -> list[Notification]:
    got: list[Notification] = []
    deadline = time.monotonic() + timeout
    while not pred(got) and time.monotonic() < deadline:
        got.extend(listener.wait(min(0.5, max(0.0, deadline - time.monotonic()))))
    return got


def test_notify_is_transactional(store: PostgresStore) -> None:
    listener = store.listen([CHANNEL_TASKS, CHANNEL_WAKE])
    rid, token = new_run(store)
    assert token is not None
    with pytest.raises(LeaseLost):
        store.commit_wake(wake(rid, token + 99, 1, new_tasks=[NewTask(uuid.uuid4(), 2, "refused", {"args": [], "kwargs": {}}, now())]))
    sentinel, _ = new_run(store, owner=None)  # notifies CHANNEL_WAKE after the failed commit
    got = collect(listener, lambda g: Notification(CHANNEL_WAKE, str(sentinel)) in g)
    assert Notification(CHANNEL_WAKE, str(sentinel)) in got
    assert Notification(CHANNEL_TASKS, "refused") not in got
    listener.close()


def _terminate(admin_url: str, db: str, app_name: str | None = None, *, listeners: bool = False) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if listeners:
            sql = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   "WHERE datname = %s AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%%'")
            row = conn.execute(sql, (db,)).fetchone()
        else:
            sql = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name = %s")
            row = conn.execute(sql, (db, app_name)).fetchone()
    return int(row[0]) if row else 0


def test_listener_survives_a_killed_connection(store: PostgresStore, db_url: str, admin_url: str) -> None:
    listener = store.listen([CHANNEL_WAKE])
    db = conninfo_to_dict(db_url)["dbname"]
    assert _terminate(admin_url, str(db), listeners=True) >= 1
    assert isinstance(listener.wait(0.2), list)  # must not raise while the connection is gone
    rid, token = new_run(store)
    assert token is not None
    found: list[Notification] = []

    def received() -> bool:
        store.send_signal(rid, "ping", None, now())  # repeated until the re-LISTENed session hears one
        found.extend(listener.wait(0.3))
        return Notification(CHANNEL_WAKE, str(rid)) in found

    assert wait_until(received)
    assert listener.reconnects >= 1
    listener.close()
    assert listener.wait(0.01) == []


def test_pool_recovers_after_its_connections_are_killed(store: PostgresStore, db_url: str, admin_url: str) -> None:
    rid, token = new_run(store)
    assert token is not None
    assert store.get_run(rid) is not None
    db = str(conninfo_to_dict(db_url)["dbname"])
    assert _terminate(admin_url, db, "continuum_nb:itest") >= 1
    # reads retry once on a fresh connection
    assert store.get_run(rid) is not None
    _terminate(admin_url, db, "continuum_nb:itest")
    failures = 0
    for seq in (1, 3):
        for _attempt in range(5):
            try:
                store.commit_wake(wake(rid, token, seq))
                break
            except DatabaseUnavailable as exc:
                assert "\n" not in str(exc)
                failures += 1
    assert failures <= 4
    assert [e.seq for e in store.load_journal(rid)] == [1, 2, 3, 4]


def test_wake_statement_is_prepared_again_after_deallocate_all(db_url: str) -> None:
    """The wake's prepared statement lives per connection; a DEALLOCATE ALL (e.g. by a pooler
    or a host app) is noticed and the statement prepared again, with nothing lost."""
    one = PostgresStore(db_url, pool_size=1, instance="itest")
    try:
        rid, token = new_run(one)
        assert token is not None
        one.commit_wake(wake(rid, token, 1, trace_context=b"\x00\x01traceparent"))
        with one._db.pool.connection() as conn:  # noqa: SLF001 - the single pooled connection
            conn.execute("DEALLOCATE ALL")
        one.commit_wake(wake(rid, token, 3))
        assert [e.seq for e in one.load_journal(rid)] == [1, 2, 3, 4]
        run = one.get_run(rid)
        assert run is not None and run.trace_context == b"\x00\x01traceparent"  # bytea round trip
    finally:
        one.close()


def test_a_database_without_the_wake_function_says_to_migrate(empty_db_url: str) -> None:
    """Migrated only up to the version before the wake function (auto_migrate off, say): the
    first commit names the fix, and nothing is written."""
    migrate(empty_db_url, to="20260701000002")
    old = PostgresStore(empty_db_url, pool_size=1, instance="itest")
    try:
        rid = uuid.uuid4()
        first = Wake(run_id=rid, lease_token=0, now=now(), state="suspended", events=[Event(1, "side_effect", {})])
        with pytest.raises(MigrationError, match="run `continuum migrate`"):
            old.create_run(NewRun(rid, "wf", "v1", {}, now()), owner="e1", first_wake=first)
        # reading the columns of later migrations names the same fix
        with pytest.raises(MigrationError, match="run `continuum migrate`"):
            old.get_run(rid)
    finally:
        old.close()
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_runs").fetchone() == (0,)


def test_unreachable_database_is_a_one_line_error() -> None:
    s = PostgresStore("postgresql://postgres@127.0.0.1:9/nothing", pool_timeout=1.0, connect_timeout=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as info:
            s.get_run(uuid.uuid4())
        assert "\n" not in str(info.value) and "unavailable" in str(info.value)
        assert "127.0.0.1:9/nothing" in str(info.value) and "refused" in str(info.value)
        assert time.monotonic() - start < 15
        with pytest.raises(DatabaseUnavailable):
            s.listen([CHANNEL_WAKE])
    finally:
        s.close()


def test_missing_tables_name_the_fix(empty_db_url: str) -> None:
    s = PostgresStore(empty_db_url)
    try:
        with pytest.raises(MigrationError, match="continuum migrate"):
            s.get_run(uuid.uuid4())
    finally:
        s.close()


# --- partitions --------------------------------------------------------------------------------------

def test_missing_partition_names_the_command_and_writes_nothing(store: PostgresStore, db_url: str) -> None:
    rid, token = new_run(store)
    assert token is not None
    with psycopg.connect(db_url, autocommit=True) as conn:
        month = conn.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')").fetchone()[0]
        name = "continuum_events_y" + month.replace("-", "_m")
        conn.execute(f"DROP TABLE {name}")  # the test database is fresh: the partition is empty
    t = NewTask(uuid.uuid4(), 2, "a", {"args": [], "kwargs": {}}, now())
    with pytest.raises(PartitionError, match=f"continuum partitions create {month}") as info:
        store.commit_wake(wake(rid, token, 1, new_tasks=[t], state="completed"))
    assert month in str(info.value) and "\n" not in str(info.value)
    run = store.get_run(rid)
    assert run is not None and run.state == "running"
    assert store.claim_tasks("x", ["a"], now() + timedelta(seconds=1), 30, 10) == []
    first = Wake(run_id=uuid.uuid4(), lease_token=0, now=now(), state="suspended", events=[Event(1, "side_effect", {})])
    rid2 = uuid.uuid4()
    with pytest.raises(PartitionError):
        store.create_run(NewRun(rid2, "wf", "v1", {}, now()), owner="e1", first_wake=first)
    assert store.get_run(rid2) is None


# --- transports --------------------------------------------------------------------------------------

def test_unix_socket(db_url: str) -> None:
    params = conninfo_to_dict(db_url)
    if str(params.get("host")) != "127.0.0.1" or not os.path.exists(f"/var/run/postgresql/.s.PGSQL.{params.get('port', 5432)}"):
        pytest.skip("this server has no Unix socket in /var/run/postgresql")
    url = make_conninfo(db_url, host="/var/run/postgresql")
    s = PostgresStore(url)
    try:
        rid, token = new_run(s)
        assert token is not None
        s.commit_wake(wake(rid, token, 1))
        assert [e.seq for e in s.load_journal(rid)] == [1, 2]
        with psycopg.connect(url) as conn:
            assert conn.info.host.startswith("/")
    finally:
        s.close()


# --- a server restart (only on the session's own embedded server, which no one else uses) ----------

def test_store_and_listener_recover_after_a_server_restart(request: pytest.FixtureRequest, db_url: str) -> None:
    if request.node.callspec.params.get("pg_server") != "pg18":
        pytest.skip("restarts only the test session's private embedded server (pg18)")
    import tempfile
    from pathlib import Path

    from continuum_nb.store.embedded import EmbeddedPostgres
    from tests.servers import _PREFIX, _TEST_SETTINGS

    mine = [r for r in Path(tempfile.gettempdir()).glob(_PREFIX + "*")
            if (r / "owner.pid").is_file() and (r / "owner.pid").read_text().strip() == str(os.getpid())]
    assert len(mine) == 1, mine
    server = EmbeddedPostgres(mine[0], settings=_TEST_SETTINGS)
    store = PostgresStore(db_url, pool_size=2, pool_timeout=2.0, connect_timeout=2.0)
    try:
        rid, token = new_run(store)
        assert token is not None
        listener = store.listen([CHANNEL_WAKE])
        server.stop()
        try:
            with pytest.raises(DatabaseUnavailable) as info:
                store.get_run(rid)
            assert "\n" not in str(info.value)
            assert isinstance(listener.wait(0.2), list)  # no exception while the server is down
        finally:
            server.start()

        def back() -> bool:
            try:
                return store.get_run(rid) is not None
            except DatabaseUnavailable:
                return False

        assert wait_until(back, timeout=60)
        store.commit_wake(wake(rid, token, 1))
        assert [e.seq for e in store.load_journal(rid)] == [1, 2]
        heard: list[Notification] = []

        def received() -> bool:
            store.send_signal(rid, "ping", None, now())
            heard.extend(listener.wait(0.3))
            return Notification(CHANNEL_WAKE, str(rid)) in heard

        assert wait_until(received, timeout=60)
        assert listener.reconnects >= 1
        listener.close()
    finally:
        store.close()
