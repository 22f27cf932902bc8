-- continuum_nb: what the Python engine adds on top of the v0.2 shape.

-- Stored workflow versions. origin = 'cell' (a %%workflow cell: an engine may load the source)
-- or 'module' (an importable module: only engines that import it run it).
CREATE TABLE continuum_workflow_versions (
    name text NOT NULL,
    version_hash text NOT NULL,
    source text NOT NULL,
    origin text NOT NULL DEFAULT 'cell' CHECK (origin IN ('cell', 'module')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version_hash)
);
CREATE INDEX continuum_workflow_versions_latest_idx ON continuum_workflow_versions (name, created_at DESC);

-- Opt-in retention (drop-old keeps every month holding an event of a run without it).
ALTER TABLE continuum_runs ADD COLUMN IF NOT EXISTS retention_until timestamptz;

-- Every run state, including cancelled and drifted.
ALTER TABLE continuum_runs ADD CONSTRAINT continuum_runs_state_check
    CHECK (state IN ('running', 'suspended', 'completed', 'failed', 'cancelled', 'drifted'));

CREATE INDEX continuum_runs_runnable_idx
    ON continuum_runs (workflow, next_wakeup_at)
    WHERE state IN ('running', 'suspended');
CREATE INDEX continuum_runs_state_started_idx ON continuum_runs (state, started_at DESC, id);
CREATE INDEX continuum_runs_workflow_started_idx ON continuum_runs (workflow, started_at DESC, id);
CREATE INDEX continuum_runs_started_idx ON continuum_runs (started_at DESC, id);
CREATE INDEX continuum_runs_retention_idx ON continuum_runs (retention_until) WHERE retention_until IS NOT NULL;

-- Keys led by run_id, so the tables can be co-located by run_id on a distributed PostgreSQL.
ALTER TABLE continuum_signals DROP CONSTRAINT continuum_signals_pkey;
ALTER TABLE continuum_signals ADD PRIMARY KEY (run_id, id);
ALTER TABLE continuum_signals ADD COLUMN delivered_seq bigint;
DROP INDEX continuum_signals_pending_idx;
CREATE INDEX continuum_signals_pending_idx ON continuum_signals (run_id, name, id) WHERE delivered = false;

ALTER TABLE continuum_timers DROP CONSTRAINT continuum_timers_pkey;
ALTER TABLE continuum_timers ADD PRIMARY KEY (run_id, id);
ALTER TABLE continuum_timers ADD COLUMN seq bigint;

ALTER TABLE continuum_activity_tasks DROP CONSTRAINT continuum_activity_tasks_pkey;
ALTER TABLE continuum_activity_tasks ADD PRIMARY KEY (run_id, id);
ALTER TABLE continuum_activity_tasks ADD COLUMN activity text;
-- v0.1 rows name their activity in mfa: {"activity": ...} as continuum_nb writes it, else the
-- Elixir {"module": ..., "function": ...} form.
UPDATE continuum_activity_tasks
   SET activity = COALESCE(mfa ->> 'activity',
                           NULLIF(concat_ws('.', mfa ->> 'module', mfa ->> 'function'), ''),
                           'unknown')
 WHERE activity IS NULL;
ALTER TABLE continuum_activity_tasks ALTER COLUMN activity SET NOT NULL;
ALTER TABLE continuum_activity_tasks ADD COLUMN idempotency_key text;
ALTER TABLE continuum_activity_tasks ADD COLUMN lease_token bigint;
ALTER TABLE continuum_activity_tasks ADD COLUMN completed_at timestamptz;
ALTER TABLE continuum_activity_tasks ADD CONSTRAINT continuum_activity_tasks_state_check
    CHECK (state IN ('available', 'leased', 'completed', 'failed', 'cancelled'));
CREATE UNIQUE INDEX continuum_activity_tasks_run_seq_idx ON continuum_activity_tasks (run_id, seq);
CREATE INDEX continuum_activity_tasks_lease_idx
    ON continuum_activity_tasks (lease_expires_at) WHERE state = 'leased';

ALTER TABLE continuum_snapshots DROP CONSTRAINT continuum_snapshots_pkey;
ALTER TABLE continuum_snapshots ADD PRIMARY KEY (run_id, id);
ALTER TABLE continuum_snapshots ADD COLUMN size_bytes integer NOT NULL DEFAULT 0;

-- Analytics and the observer read events by time and type.
CREATE INDEX continuum_events_type_time_idx ON continuum_events (event_type, inserted_at);
