-- v0.2: side table for activity idempotency keys. A stored result is returned without running the
-- activity body again, in any run.
CREATE TABLE continuum_activity_results (
    activity_module text NOT NULL,
    idempotency_key text NOT NULL,
    run_id uuid NOT NULL,
    seq bigint NOT NULL,
    result jsonb NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (activity_module, idempotency_key)
);
