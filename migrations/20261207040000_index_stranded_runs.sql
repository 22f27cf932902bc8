-- continuum_nb: claims look for two kinds of runs (store/postgres/sql.py CLAIM_RUNS): runs due by
-- now, through continuum_runs_runnable_idx, and 'running' runs with no wake time whose lease
-- lapsed (an engine died during a wake). The second kind is rare, but without an index of its own
-- PostgreSQL found it through continuum_runs_runnable_idx's NULL entries: every run that waits
-- only for a signal, read on every claim (90 ms per claim with 100,000 runs waiting). This index
-- holds only the runs being driven, so it stays tiny whatever the number of waiting runs.
CREATE INDEX continuum_runs_stranded_idx
    ON continuum_runs (workflow)
    WHERE state = 'running' AND next_wakeup_at IS NULL;
