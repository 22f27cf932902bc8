-- v0.2: opt-in history compaction. A snapshot holds the compacted journal prefix through_seq.
CREATE TABLE continuum_snapshots (
    id bigserial PRIMARY KEY,
    run_id uuid NOT NULL,
    through_seq bigint NOT NULL,
    version_hash text NOT NULL,
    payload jsonb NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX continuum_snapshots_run_seq_idx ON continuum_snapshots (run_id, through_seq);
CREATE INDEX continuum_snapshots_latest_idx ON continuum_snapshots (run_id, through_seq DESC);
