-- continuum_nb: links between runs. A child workflow (cn.child / cn.start_child) names its
-- parent; a run started by continue-as-new names the run it continues; every run of one chain
-- (and a parent's children) shares a correlation_id. All three columns are nullable without a
-- default, so adding them rewrites nothing, and v0.2 rows keep NULL (a run of its own). The
-- partial indexes find a parent's children (its end, cancel propagation), a run's successor
-- (wait/signal/cancel follow a chain) and a chain's runs, and cost nothing for plain runs.
ALTER TABLE continuum_runs ADD COLUMN parent_run_id uuid;
ALTER TABLE continuum_runs ADD COLUMN correlation_id uuid;
ALTER TABLE continuum_runs ADD COLUMN continued_from_run_id uuid;
CREATE INDEX continuum_runs_parent_idx ON continuum_runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
CREATE INDEX continuum_runs_continued_from_idx ON continuum_runs (continued_from_run_id)
    WHERE continued_from_run_id IS NOT NULL;
CREATE INDEX continuum_runs_correlation_idx ON continuum_runs (correlation_id)
    WHERE correlation_id IS NOT NULL;
