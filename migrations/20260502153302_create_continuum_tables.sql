-- Continuum v0.1 base schema (revision alias: v0.1).
-- The shape v0.1 had: unpartitioned continuum_events keyed by (run_id, seq), the durable signal
-- mailbox, timers, activity tasks and the lease-token sequence. No trace_context yet.
CREATE SEQUENCE IF NOT EXISTS continuum_lease_token_seq;

CREATE TABLE continuum_runs (
    id uuid PRIMARY KEY,
    workflow text NOT NULL,
    version_hash text NOT NULL,
    state text NOT NULL,
    input jsonb NOT NULL,
    result jsonb,
    error jsonb,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    lease_owner text,
    lease_token bigint,
    lease_expires_at timestamptz,
    next_wakeup_at timestamptz
) WITH (fillfactor = 70);

CREATE INDEX continuum_runs_dispatch_idx
    ON continuum_runs (next_wakeup_at NULLS LAST)
    WHERE state = 'suspended' AND lease_owner IS NULL;

CREATE INDEX continuum_runs_lease_idx
    ON continuum_runs (lease_expires_at)
    WHERE lease_owner IS NOT NULL;

CREATE TABLE continuum_events (
    run_id uuid NOT NULL,
    seq bigint NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE continuum_signals (
    id bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    name text NOT NULL,
    payload jsonb NOT NULL,
    delivered boolean NOT NULL DEFAULT false,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX continuum_signals_pending_idx
    ON continuum_signals (run_id, name)
    WHERE delivered = false;

CREATE TABLE continuum_timers (
    id uuid PRIMARY KEY,
    run_id uuid NOT NULL,
    fires_at timestamptz NOT NULL,
    fired boolean NOT NULL DEFAULT false
);

CREATE INDEX continuum_timers_due_idx
    ON continuum_timers (fires_at)
    WHERE fired = false;

CREATE TABLE continuum_activity_tasks (
    id uuid PRIMARY KEY,
    run_id uuid NOT NULL,
    seq bigint NOT NULL,
    mfa jsonb NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    state text NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    result jsonb,
    error jsonb
);

CREATE INDEX continuum_activity_tasks_pickup_idx
    ON continuum_activity_tasks (available_at)
    WHERE state = 'available';
