-- continuum_nb: the v0.1 dispatch index is not used by this engine (claims walk
-- continuum_runs_runnable_idx). Every index on continuum_runs is written on each non-HOT update of
-- a run row, i.e. on most wakes: one fewer index is less WAL per commit.
DROP INDEX IF EXISTS continuum_runs_dispatch_idx;
