-- v0.2: continuum_events becomes PARTITION BY RANGE (inserted_at), monthly partitions named
-- continuum_events_yYYYY_mMM. The primary key widens to (run_id, seq, inserted_at) because a
-- partitioned table's keys must contain the partition key; (run_id, seq) stays unique per run
-- because the engine locks the continuum_runs row before it assigns seq.
--
-- Unlike upstream, this creates a partition for every month that legacy rows fall in (not just
-- the current month and the next three), so it succeeds on a database with years of history.
ALTER TABLE continuum_events RENAME TO continuum_events_legacy;
ALTER TABLE continuum_events_legacy RENAME CONSTRAINT continuum_events_pkey TO continuum_events_legacy_pkey;
-- PostgreSQL 18 catalogs NOT NULL as named constraints (continuum_events_<col>_not_null); move
-- them out of the way too, so the new table gets the same names a fresh install gives it.
DO $$
DECLARE
    c name;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'continuum_events_legacy'::regclass AND contype = 'n'
                AND conname LIKE 'continuum\_events\_%'
    LOOP
        EXECUTE format('ALTER TABLE continuum_events_legacy RENAME CONSTRAINT %I TO %I',
                       c, 'continuum_events_legacy_' || substr(c, length('continuum_events_') + 1));
    END LOOP;
END
$$;

CREATE TABLE continuum_events (
    run_id uuid NOT NULL,
    seq bigint NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq, inserted_at)
) PARTITION BY RANGE (inserted_at);

DO $$
DECLARE
    m date;
    first_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', inserted_at AT TIME ZONE 'UTC')::date
          FROM continuum_events_legacy
        UNION
        SELECT (first_month + make_interval(months => k))::date FROM generate_series(0, 3) AS k
        ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF continuum_events FOR VALUES FROM (%L) TO (%L)',
            'continuum_events_y' || to_char(m, 'YYYY') || '_m' || to_char(m, 'MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char((m + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$;

INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at)
SELECT run_id, seq, event_type, payload, inserted_at FROM continuum_events_legacy;

DROP TABLE continuum_events_legacy;
