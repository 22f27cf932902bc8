-- continuum_nb: per-month aggregates of the journal kept for the ready-made analytics queries
-- (docs/analytics.md, "Monthly rollups"). A month that is over no longer receives events from
-- the engine (inserted_at is the inserting transaction's now()), so its counts can be computed
-- once and kept; a whole-journal query then reads those and counts only the months without one.
--
-- continuum_analytics_months.changes is bumped, in the writing transaction, by the triggers
-- below whenever events of a month change after the fact: a delete (prune), an update, a
-- truncate, or an insert into a month that had already ended when the insert ran. A rollup is
-- used only while its changes equals the month's (and its partition is still attached), so a
-- rollup never outlives the rows it counted.
-- closing_xmax: an xid assigned after the month ended (that of the transaction that noted it).
-- A transaction that inserted into the month before it ended has an older xid; the rollup is
-- filled only from a snapshot whose xmin is at least closing_xmax, so every such insert is
-- finished and seen.
CREATE TABLE continuum_analytics_months (
    month date NOT NULL,
    changes bigint DEFAULT 0 NOT NULL,
    closing_xmax bigint,
    CONSTRAINT continuum_analytics_months_pkey PRIMARY KEY (month)
);

-- One row per rolled-up month: the partition it counted (its oid: a partition dropped or
-- detached invalidates the rollup) and the month's changes when it was counted.
CREATE TABLE continuum_analytics_rollups (
    month date NOT NULL,
    partition_oid bigint NOT NULL,
    changes bigint NOT NULL,
    filled_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT continuum_analytics_rollups_pkey PRIMARY KEY (month)
);

-- The counts of a rolled-up month: events per event type (minute NULL) and events per UTC
-- minute (event_type NULL).
CREATE TABLE continuum_analytics_counts (
    month date NOT NULL,
    event_type text,
    minute timestamptz,
    n bigint NOT NULL
);
CREATE INDEX continuum_analytics_counts_month_idx ON continuum_analytics_counts (month);

-- Activity latency of a rolled-up month: activities scheduled in it per name (sched_month NULL),
-- and the outcomes journaled in it, paired with their activity_scheduled (in this month or an
-- earlier one: sched_month, whose changes the pairing saw are kept), per activity, outcome and
-- latency bucket (a logarithmic histogram, docs/analytics.md): count, sum of attempts, how many
-- took more than one, smallest and largest latency in seconds.
CREATE TABLE continuum_analytics_latency (
    month date NOT NULL,
    sched_month date,
    sched_changes bigint,
    activity text,
    outcome text,
    bucket integer,
    n bigint NOT NULL,
    attempts bigint,
    retried bigint,
    min_s double precision,
    max_s double precision
);
CREATE INDEX continuum_analytics_latency_month_idx ON continuum_analytics_latency (month);

-- The rows a statement changed, as a row trigger (cloned onto every partition, so a statement on
-- a partition itself is seen too): a delete (prune deletes the events of expired runs), an update
-- (continuum never updates an event; a hand-made fix is seen all the same) or a late insert
-- (into a month already over when the insert ran: never the engine's own inserts, whose
-- inserted_at is now(); the trigger's WHEN keeps the function off that path). A month is bumped
-- once per transaction (a prune batch or a bulk load of an old month bumps it once): the months
-- already bumped are noted in a transaction-local setting.
CREATE FUNCTION continuum_analytics_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    seen text := coalesce(current_setting('continuum.analytics_bumped', true), '');
    months date[] := '{}';
    m date;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        months := months || (date_trunc('month', OLD.inserted_at AT TIME ZONE 'UTC'))::date;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        months := months || (date_trunc('month', NEW.inserted_at AT TIME ZONE 'UTC'))::date;
    END IF;
    FOREACH m IN ARRAY months LOOP
        IF position(m::text IN seen) = 0 THEN
            INSERT INTO continuum_analytics_months AS t (month, changes) VALUES (m, 1)
            ON CONFLICT (month) DO UPDATE SET changes = t.changes + 1;
            seen := seen || m::text || ',';
            PERFORM set_config('continuum.analytics_bumped', seen, true);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- TRUNCATE of continuum_events: every rolled-up month changed.
CREATE FUNCTION continuum_analytics_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO continuum_analytics_months AS t (month, changes)
    SELECT month, 1 FROM continuum_analytics_rollups ORDER BY 1
    ON CONFLICT (month) DO UPDATE SET changes = t.changes + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER continuum_analytics_late_insert AFTER INSERT ON continuum_events
    FOR EACH ROW WHEN (NEW.inserted_at < (date_trunc('month', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))
    EXECUTE FUNCTION continuum_analytics_changed();
CREATE TRIGGER continuum_analytics_changed AFTER DELETE OR UPDATE ON continuum_events
    FOR EACH ROW EXECUTE FUNCTION continuum_analytics_changed();
CREATE TRIGGER continuum_analytics_truncated AFTER TRUNCATE ON continuum_events
    FOR EACH STATEMENT EXECUTE FUNCTION continuum_analytics_truncated();
