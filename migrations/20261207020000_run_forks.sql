-- continuum_nb: forks. A run forked from another (cn.fork) starts with a copy of the first N
-- events of the original's journal; it names its origin here. Both columns are nullable
-- without a default, so adding them rewrites nothing; the partial index finds the forks of a
-- run (the other direction of the link) and costs nothing for runs that are not forks.
ALTER TABLE continuum_runs ADD COLUMN forked_from_run_id uuid;
ALTER TABLE continuum_runs ADD COLUMN forked_at_seq bigint;
CREATE INDEX continuum_runs_forked_from_idx ON continuum_runs (forked_from_run_id)
    WHERE forked_from_run_id IS NOT NULL;
