"""The SQL of ``PostgresStore``: static, parameterised statements (prepared once per connection).

Every statement is a constant, so psycopg prepares it on first use (``prepare_threshold=0``) and
the hot path never builds or compiles SQL. Arrays go through ``unnest`` so a wake with any number
of events or tasks is still one statement per kind.
"""

from __future__ import annotations

RUN_COLS = (
    "id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, "
    "lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, "
    "parent_run_id, correlation_id, continued_from_run_id"
)
TASK_COLS = (
    "id, run_id, seq, activity, mfa, attempt, state, available_at, lease_owner, lease_token, "
    "lease_expires_at, idempotency_key, result, error"
)

BEGIN = "BEGIN"
COMMIT = "COMMIT"

# --- runs ---------------------------------------------------------------------------------------

INSERT_RUN_UNLEASED = """
WITH ins AS (
    INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                                retention_until, next_wakeup_at, attributes, retention)
    VALUES (%(id)s, %(workflow)s, %(version)s, 'suspended', %(input)s::jsonb, %(trace)s, %(started)s,
            %(retention_until)s, %(started)s, %(attributes)s::jsonb, %(retention)s::interval)
    RETURNING id)
SELECT pg_notify('continuum_wake', ins.id::text) FROM ins
"""

INSERT_RUN_LEASED = """
INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                            retention_until, lease_owner, lease_token, lease_expires_at, attributes, retention)
VALUES (%(id)s, %(workflow)s, %(version)s, 'running', %(input)s::jsonb, %(trace)s, %(started)s,
        %(retention_until)s, %(owner)s, nextval('continuum_lease_token_seq'),
        now() + make_interval(secs => %(ttl)s::float8), %(attributes)s::jsonb, %(retention)s::interval)
RETURNING lease_token
"""

GET_RUN = "SELECT id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id FROM continuum_runs WHERE id = %(id)s"

RUN_STATE = "SELECT state, lease_token FROM continuum_runs WHERE id = %(id)s"

# list_runs: each filter adds a fixed fragment (values stay parameters), so every combination is
# still a constant statement, prepared once.
_LIST_BASE = "SELECT id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id FROM continuum_runs WHERE true"
_LIST_ORDER = " ORDER BY started_at DESC, id DESC LIMIT %(limit)s"


_LIST_FILTERS = (
    ("state", " AND state = %(state)s"),
    ("workflow", " AND workflow = %(workflow)s"),
    ("started_after", " AND started_at >= %(started_after)s"),
    ("started_before", " AND started_at < %(started_before)s"),
    # implies attributes IS NOT NULL: the partial GIN index continuum_runs_attributes_idx serves it
    ("attributes", " AND attributes @> %(attributes)s::jsonb"),
    ("before", " AND (started_at, id) < (%(before_at)s, %(before_id)s)"),
)


def list_runs_sql(*filters: str) -> str:
    """The statement for these filters (names of ``_LIST_FILTERS``), one fixed fragment each."""
    unknown = set(filters) - {name for name, _ in _LIST_FILTERS}
    if unknown:
        raise ValueError(f"unknown filters {sorted(unknown)}")
    return _LIST_BASE + "".join(frag for name, frag in _LIST_FILTERS if name in filters) + _LIST_ORDER


LOAD_JOURNAL = """
SELECT seq, event_type, payload, inserted_at FROM continuum_events
 WHERE run_id = %(run)s AND seq > %(after)s ORDER BY seq
"""

# The journals of runs just claimed, in one statement (one snapshot): runs still leased with the
# token, whose journal is short (last_seq, on the run row) and small (its payloads as JSON text).
LOAD_JOURNALS = """
SELECT id, seq, event_type, payload, inserted_at FROM (
    SELECT r.id, e.seq, e.event_type, e.payload, e.inserted_at,
           sum(octet_length(e.payload::text)) OVER (PARTITION BY r.id) AS bytes
      FROM unnest(%(ids)s::uuid[], %(tokens)s::bigint[]) AS l(id, token)
      JOIN continuum_runs AS r ON r.id = l.id AND r.lease_token = l.token AND r.last_seq <= %(max)s
      LEFT JOIN continuum_events AS e ON e.run_id = r.id) AS j
 WHERE bytes IS NULL OR bytes <= %(max_bytes)s ORDER BY id, seq
"""

# --- one wake: one call of continuum_commit_wake (migration 20260701000003) ---------------------

#: A wake: of a held run, fenced by its lease token, or of a new run inserted by the same call
#: (libpq placeholders: it is prepared and executed on the connection directly, the hot path).
#: Parameters in the function's order (``wake.wake_args`` builds them), each cast, so the
#: call resolves to the one function whatever form the values arrive in (all are sent as text).
#: Returns (signal_pending, lease_token).
COMMIT_WAKE = """SELECT out_pending, out_token FROM continuum_commit_wake(
    $1::uuid, $2::bigint, $3::jsonb, $4::bigint, $5::jsonb, $6::jsonb, $7::jsonb, $8::jsonb,
    $9::jsonb, $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb, $14::jsonb, $15::text, $16::jsonb,
    $17::jsonb, $18::timestamptz, $19::timestamptz, $20::boolean, $21::text, $22::bytea,
    $23::boolean, $24::float8, $25::jsonb, $26::jsonb, $27::jsonb)"""
#: Its prepared statement's name on every pooled connection (versioned with the statement).
COMMIT_WAKE_NAME = b"continuum_commit_wake_v2"

# Wakes of several runs in one transaction (migration 20261208000000: each argument as its JSON
# value; 20261207080000's text form stays for older clients): a row per wake, in order.
COMMIT_WAKES_JSON = """SELECT out_pending, out_token, out_sqlstate, out_message, out_detail
  FROM continuum_commit_wakes_json($1::jsonb) ORDER BY out_index"""
COMMIT_WAKES_JSON_NAME = b"continuum_commit_wakes_json_v1"

#: SQLSTATE raised by continuum_commit_wake when the fence refuses or the journal does not end
#: where the wake expects.
WAKE_REFUSED = "CNW01"

# The journal's end as the wake's seq check sees it (migration 20261207010000): the run row's
# last_seq, a key probe, not max(seq) over every partition.
LAST_SEQ = "SELECT last_seq FROM continuum_runs WHERE id = %(run)s"

MARK_DRIFTED = """
WITH upd AS (
    UPDATE continuum_runs
       SET state = 'drifted', error = %(error)s::jsonb, next_wakeup_at = NULL,
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(run)s AND lease_token = %(token)s
    RETURNING id)
SELECT pg_notify('continuum_run_done', upd.id::text) FROM upd
"""

CANCEL_RUN = """
WITH upd AS (
    UPDATE continuum_runs
       SET state = 'cancelled', completed_at = %(now)s, next_wakeup_at = NULL,
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
           retention_until = CASE WHEN retention IS NOT NULL THEN %(now)s + retention ELSE retention_until END
     WHERE id = %(run)s AND state IN ('running', 'suspended', 'drifted')
    RETURNING id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id
), tasks AS (
    UPDATE continuum_activity_tasks
       SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE run_id = (SELECT id FROM upd) AND state IN ('available', 'leased')
), timers AS (
    UPDATE continuum_timers SET fired = true WHERE run_id = (SELECT id FROM upd) AND NOT fired
)
SELECT upd.*, pg_notify('continuum_run_done', upd.id::text) FROM upd
"""

#: After CANCEL_RUN, in its transaction (migration 20261207070000): the run's children that
#: follow their parent's cancel, and theirs, are cancelled; its parent, if any, is woken.
CANCEL_TREE = "SELECT continuum_cancel_tree(ARRAY[%(run)s::uuid], %(now)s, NULL)"

#: How many ancestors a run has (its parent_run_id chain; a cycle cannot arise: a child's id is new).
RUN_DEPTH = """
WITH RECURSIVE up(id, parent, depth) AS (
    SELECT id, parent_run_id, 0 FROM continuum_runs WHERE id = %(run)s
    UNION ALL
    SELECT r.id, r.parent_run_id, up.depth + 1 FROM continuum_runs AS r JOIN up ON r.id = up.parent
     WHERE up.depth < 1000)
SELECT max(depth) FROM up
"""

RESUME_RUN = """
WITH upd AS (
    UPDATE continuum_runs
       SET state = 'running', error = NULL, next_wakeup_at = %(now)s,
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE id = %(run)s AND state = 'drifted'
    RETURNING id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id)
SELECT upd.*, pg_notify('continuum_wake', upd.id::text) FROM upd
"""

# --- claiming and leases -------------------------------------------------------------------------

# Claims read two index ranges per workflow instead of one OR over the table: the runs due by now
# (continuum_runs_runnable_idx, (workflow, next_wakeup_at), scanned in order and stopped at the
# limit) and the 'running' runs without a wake time (a wake whose engine died; few). One OR of
# both made PostgreSQL read every run suspended on a signal (next_wakeup_at IS NULL) and sort every
# due run on each claim: 600 ms with 100,000 runs waiting on signals, against < 1 ms this way.
CLAIM_RUNS = """
WITH due AS (
    SELECT d.id, d.next_wakeup_at
      FROM unnest(%(workflows)s::text[]) AS w(name)
     CROSS JOIN LATERAL (
        SELECT id, next_wakeup_at FROM continuum_runs
         WHERE workflow = w.name AND state IN ('running', 'suspended') AND next_wakeup_at <= %(now)s
           AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= now())
         ORDER BY next_wakeup_at
         LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED) AS d),
stranded AS (
    SELECT s.id, s.next_wakeup_at
      FROM unnest(%(workflows)s::text[]) AS w(name)
     CROSS JOIN LATERAL (
        SELECT id, next_wakeup_at FROM continuum_runs
         WHERE workflow = w.name AND state = 'running' AND next_wakeup_at IS NULL
           AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= now())
         LIMIT %(limit)s
         FOR UPDATE SKIP LOCKED) AS s),
c AS (
    SELECT id FROM (SELECT id, next_wakeup_at FROM stranded
                    UNION ALL SELECT id, next_wakeup_at FROM due) AS both_kinds
     ORDER BY next_wakeup_at NULLS FIRST
     LIMIT %(limit)s)
UPDATE continuum_runs AS r
   SET lease_owner = %(owner)s, lease_token = nextval('continuum_lease_token_seq'),
       lease_expires_at = now() + make_interval(secs => %(ttl)s::float8)
  FROM c WHERE r.id = c.id
RETURNING r.id, r.workflow, r.version_hash, r.state, r.input, r.result, r.error, r.trace_context, r.started_at, r.completed_at, r.lease_owner, r.lease_token, r.lease_expires_at, r.next_wakeup_at, r.retention_until, r.attributes, r.retention, r.parent_run_id, r.correlation_id, r.continued_from_run_id
"""

CLAIM_RUN = """
UPDATE continuum_runs
   SET lease_owner = %(owner)s, lease_token = nextval('continuum_lease_token_seq'),
       lease_expires_at = now() + make_interval(secs => %(ttl)s::float8)
 WHERE id = %(run)s AND state IN ('running', 'suspended', 'drifted')
   AND (lease_owner IS NULL OR lease_owner = %(owner)s OR lease_expires_at IS NULL
        OR lease_expires_at <= now())
RETURNING id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id
"""

RENEW_RUNS = """
UPDATE continuum_runs AS r SET lease_expires_at = now() + make_interval(secs => %(ttl)s::float8)
  FROM unnest(%(ids)s::uuid[], %(tokens)s::bigint[]) AS u(id, token)
 WHERE r.id = u.id AND r.lease_token = u.token AND r.lease_owner = %(owner)s
RETURNING r.id
"""

# Tasks are keyed (run_id, id); the caller knows only the id, so this goes through the small
# partial index of leased tasks (continuum_activity_tasks_lease_idx) rather than the primary key.
RENEW_TASKS = """
UPDATE continuum_activity_tasks AS t SET lease_expires_at = now() + make_interval(secs => %(ttl)s::float8)
  FROM unnest(%(ids)s::uuid[], %(tokens)s::bigint[]) AS u(id, token)
 WHERE t.state = 'leased' AND t.id = u.id AND t.lease_token = u.token
RETURNING t.id
"""

# Of the runs an engine holds, those overdue: a NOTIFY that should have woken them was lost
# (primary-key probes, one per held run).
OVERDUE_RUNS = """
SELECT id FROM continuum_runs
 WHERE id = ANY(%(ids)s::uuid[]) AND state = 'suspended' AND next_wakeup_at <= %(cutoff)s
"""

RELEASE_RUN = """
UPDATE continuum_runs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
 WHERE id = %(run)s AND lease_token = %(token)s
"""

# Per workflow, the first entry of continuum_runs_runnable_idx (workflow, next_wakeup_at): a
# single min() over all workflows would walk every suspended run of the other workflows.
NEXT_WAKEUP = """
SELECT min(first.next_wakeup_at)
  FROM unnest(%(workflows)s::text[]) AS w(name)
 CROSS JOIN LATERAL (
    SELECT next_wakeup_at FROM continuum_runs
     WHERE workflow = w.name AND state = 'suspended' AND lease_owner IS NULL AND next_wakeup_at IS NOT NULL
     ORDER BY next_wakeup_at LIMIT 1) AS first
"""

RECOVER_RUNS = """
UPDATE continuum_runs SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
 WHERE lease_owner IS NOT NULL AND (lease_expires_at IS NULL OR lease_expires_at <= now())
"""

RECOVER_TASKS = """
WITH upd AS (
    UPDATE continuum_activity_tasks
       SET state = 'available', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE state = 'leased' AND (lease_expires_at IS NULL OR lease_expires_at <= now())
    RETURNING activity)
SELECT count(*), (SELECT count(pg_notify('continuum_tasks', a.activity))
                    FROM (SELECT DISTINCT activity FROM upd) AS a)
  FROM upd
"""

# --- activity tasks ------------------------------------------------------------------------------

CLAIM_TASKS = """
WITH c AS (
    SELECT run_id, id FROM continuum_activity_tasks
     WHERE state = 'available' AND activity = ANY(%(activities)s::text[]) AND available_at <= %(now)s
     ORDER BY available_at
     LIMIT %(limit)s
     FOR UPDATE SKIP LOCKED)
UPDATE continuum_activity_tasks AS t
   SET state = 'leased', lease_owner = %(owner)s, lease_token = nextval('continuum_lease_token_seq'),
       lease_expires_at = now() + make_interval(secs => %(ttl)s::float8)
  FROM c WHERE t.run_id = c.run_id AND t.id = c.id
RETURNING t.id, t.run_id, t.seq, t.activity, t.mfa, t.attempt, t.state, t.available_at, t.lease_owner, t.lease_token, t.lease_expires_at, t.idempotency_key, t.result, t.error
"""

TASK_OUTCOMES = """
SELECT id, run_id, seq, activity, mfa, attempt, state, available_at, lease_owner, lease_token, lease_expires_at, idempotency_key, result, error FROM continuum_activity_tasks
 WHERE run_id = %(run)s AND seq = ANY(%(seqs)s::bigint[]) AND state IN ('completed', 'failed')
"""

OPEN_TASKS = """
SELECT id, run_id, seq, activity, mfa, attempt, state, available_at, lease_owner, lease_token, lease_expires_at, idempotency_key, result, error FROM continuum_activity_tasks
 WHERE run_id = %(run)s AND state IN ('available', 'leased')
"""

# cn.fork: the new run, its copied events, the tasks and timers its prefix left open, NOTIFY;
# one statement, so one transaction (store/forks.py).
INSERT_FORK = """
WITH run AS (
    INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, next_wakeup_at,
                                attributes, retention, forked_from_run_id, forked_at_seq, last_seq)
    VALUES (%(id)s, %(workflow)s, %(version)s, 'suspended', %(input)s::jsonb, %(started)s, %(started)s,
            %(attributes)s::jsonb, %(retention)s::interval, %(from)s, %(at)s, %(last_seq)s)
    RETURNING id
), ev AS (
    INSERT INTO continuum_events (run_id, seq, event_type, payload)
    SELECT run.id, (e->>0)::bigint, e->>1, e->2 FROM run, jsonb_array_elements(%(events)s::jsonb) e
    RETURNING 1
), tk AS (
    INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, activity, state, available_at, idempotency_key)
    SELECT (t->>0)::uuid, run.id, (t->>1)::bigint, t->2, t->>3, 'available', (t->>4)::timestamptz, t->>5
      FROM run, jsonb_array_elements(%(tasks)s::jsonb) t
    RETURNING activity
), tm AS (
    INSERT INTO continuum_timers (id, run_id, seq, fires_at)
    SELECT (x->>0)::uuid, run.id, (x->>1)::bigint, (x->>2)::timestamptz
      FROM run, jsonb_array_elements(%(timers)s::jsonb) x
    RETURNING 1
)
SELECT pg_notify('continuum_wake', run.id::text), (SELECT count(*) FROM ev), (SELECT count(*) FROM tm),
       (SELECT count(pg_notify('continuum_tasks', a)) FROM (SELECT DISTINCT activity AS a FROM tk) d)
  FROM run
"""

FORK_ORIGIN = "SELECT forked_from_run_id, forked_at_seq FROM continuum_runs WHERE id = %(id)s"

FORKS_OF = """
SELECT id, forked_at_seq FROM continuum_runs WHERE forked_from_run_id = %(id)s ORDER BY started_at, id
"""

# Tests only (cn.testing): the run's lease lapses now, as if its engine had stopped renewing it.
EXPIRE_RUN_LEASE = """
UPDATE continuum_runs SET lease_expires_at = now() - interval '1 millisecond'
 WHERE id = %(run)s AND lease_owner IS NOT NULL
"""

# One statement: the task row (fenced by its lease token), the idempotency row, the run made
# runnable, NOTIFY. If the task lease is lost, ``t`` is empty and nothing else happens.
COMPLETE_TASK = """
WITH t AS (
    UPDATE continuum_activity_tasks
       SET state = %(state)s::text, result = %(result)s::jsonb, error = %(error)s::jsonb,
           completed_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE run_id = %(run)s AND id = %(id)s AND lease_token = %(token)s AND state = 'leased'
    RETURNING run_id, seq
), res AS (
    INSERT INTO continuum_activity_results (activity_module, idempotency_key, run_id, seq, result)
    SELECT %(module)s::text, %(key)s::text, t.run_id, %(rseq)s::bigint, %(result_nn)s::jsonb
      FROM t WHERE %(module)s::text IS NOT NULL
    ON CONFLICT (activity_module, idempotency_key) DO NOTHING
), r AS (
    UPDATE continuum_runs
       SET next_wakeup_at = LEAST(coalesce(next_wakeup_at, %(now)s), %(now)s)
     WHERE id = (SELECT run_id FROM t) AND state IN ('running', 'suspended')
)
SELECT pg_notify('continuum_wake', t.run_id::text) FROM t
"""

RETRY_TASK = """
WITH t AS (
    UPDATE continuum_activity_tasks
       SET attempt = attempt + 1, state = 'available', available_at = %(available)s,
           error = %(error)s::jsonb, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
     WHERE run_id = %(run)s AND id = %(id)s AND lease_token = %(token)s AND state = 'leased'
    RETURNING activity)
SELECT pg_notify('continuum_tasks', t.activity) FROM t
"""

GET_ACTIVITY_RESULT = """
SELECT result FROM continuum_activity_results WHERE activity_module = %(module)s AND idempotency_key = %(key)s
"""

# --- signals and timers --------------------------------------------------------------------------

# The run row is locked first (UPDATE), then the signal inserted: a wake that holds the row lock
# either sees this signal in its re-check or is followed by this next_wakeup_at.
SEND_SIGNAL = """
WITH r AS (
    UPDATE continuum_runs
       SET next_wakeup_at = LEAST(coalesce(next_wakeup_at, %(now)s), %(now)s)
     WHERE id = %(run)s AND state IN ('running', 'suspended', 'drifted')
    RETURNING id
), s AS (
    INSERT INTO continuum_signals (run_id, name, payload)
    SELECT r.id, %(name)s, %(payload)s::jsonb FROM r
    RETURNING id
)
SELECT s.id, pg_notify('continuum_wake', %(run_text)s) FROM s
"""

PENDING_SIGNALS = """
SELECT id, run_id, name, payload, inserted_at FROM continuum_signals
 WHERE run_id = %(run)s AND NOT delivered ORDER BY id
"""
PENDING_SIGNALS_NAMED = """
SELECT id, run_id, name, payload, inserted_at FROM continuum_signals
 WHERE run_id = %(run)s AND NOT delivered AND name = ANY(%(names)s::text[]) ORDER BY id
"""

PENDING_TIMERS = """
SELECT id, seq, fires_at FROM continuum_timers WHERE run_id = %(run)s AND NOT fired ORDER BY fires_at, seq
"""

# --- snapshots and versions ----------------------------------------------------------------------

LOAD_SNAPSHOT = """
SELECT run_id, through_seq, version_hash, payload, size_bytes FROM continuum_snapshots
 WHERE run_id = %(run)s ORDER BY through_seq DESC LIMIT 1
"""

SAVE_SNAPSHOT = """
INSERT INTO continuum_snapshots (run_id, through_seq, version_hash, payload, size_bytes)
SELECT %(run)s, %(seq)s, %(version)s, %(payload)s::jsonb, %(size)s
 WHERE EXISTS (SELECT 1 FROM continuum_runs WHERE id = %(run)s AND lease_token = %(token)s)
ON CONFLICT (run_id, through_seq) DO NOTHING
RETURNING id
"""

SAVE_VERSION = """
INSERT INTO continuum_workflow_versions (name, version_hash, source, origin)
VALUES (%(name)s, %(version)s, %(source)s, %(origin)s)
ON CONFLICT (name, version_hash) DO NOTHING
"""

GET_VERSION = """
SELECT source, origin FROM continuum_workflow_versions WHERE name = %(name)s AND version_hash = %(version)s
"""

LATEST_VERSION = """
SELECT version_hash, source, origin FROM continuum_workflow_versions
 WHERE name = %(name)s ORDER BY created_at DESC, ctid DESC LIMIT 1
"""

STORED_NAMES = "SELECT DISTINCT name FROM continuum_workflow_versions WHERE origin = 'cell' ORDER BY name"

RUNS_ON_OTHER_VERSIONS = """
SELECT id, workflow, version_hash, state, input, result, error, trace_context, started_at, completed_at, lease_owner, lease_token, lease_expires_at, next_wakeup_at, retention_until, attributes, retention, parent_run_id, correlation_id, continued_from_run_id FROM continuum_runs
 WHERE workflow = %(name)s AND version_hash <> %(version)s AND state IN ('running', 'suspended', 'drifted')
 ORDER BY started_at, id
"""
