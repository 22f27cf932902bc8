-- continuum_nb: `continuum partitions drop-old --execute` deletes the idempotency results of
-- expired runs by run_id; without this index that is a full scan of the table.
CREATE INDEX continuum_activity_results_run_idx ON continuum_activity_results (run_id);
