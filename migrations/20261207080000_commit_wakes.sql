-- continuum_nb: group commit. Wakes of several runs that are ready at the same moment on one
-- engine are committed by one call of continuum_commit_wakes: one round trip, one transaction,
-- one durable commit. Each wake is exactly one call of continuum_commit_wake (its fence on the
-- run's own lease token, its seq check, its rows and NOTIFYs), inside its own subtransaction:
-- a wake that is refused (a lost lease, a seq conflict, a value PostgreSQL refuses) is rolled
-- back alone and reported in its place, and the others still commit.
--
-- p_wakes: a JSON array with one element per wake, each the array of continuum_commit_wake's 27
-- arguments in order (those of migration 20261207070000), every one in its text form as a JSON
-- string (JSON null: SQL NULL), so a jsonb argument that is SQL NULL stays distinct from one
-- that is the JSON value null.
-- One row per wake, in order: out_pending and out_token as continuum_commit_wake returns them,
-- or out_sqlstate/out_message/out_detail when that wake was refused (NULL otherwise).
CREATE FUNCTION continuum_commit_wakes(
    p_wakes jsonb,
    OUT out_index int,
    OUT out_pending boolean,
    OUT out_token bigint,
    OUT out_sqlstate text,
    OUT out_message text,
    OUT out_detail text
) RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    w jsonb;
BEGIN
    FOR i IN 0 .. jsonb_array_length(p_wakes) - 1 LOOP
        w := p_wakes->i;
        out_index := i;
        out_pending := NULL;
        out_token := NULL;
        out_sqlstate := NULL;
        out_message := NULL;
        out_detail := NULL;
        BEGIN
            SELECT c.out_pending, c.out_token INTO out_pending, out_token
              FROM continuum_commit_wake(
                (w->>0)::uuid, (w->>1)::bigint, (w->>2)::jsonb, (w->>3)::bigint, (w->>4)::jsonb,
                (w->>5)::jsonb, (w->>6)::jsonb, (w->>7)::jsonb, (w->>8)::jsonb, (w->>9)::jsonb,
                (w->>10)::jsonb, (w->>11)::jsonb, (w->>12)::jsonb, (w->>13)::jsonb, (w->>14)::text,
                (w->>15)::jsonb, (w->>16)::jsonb, (w->>17)::timestamptz, (w->>18)::timestamptz,
                (w->>19)::boolean, (w->>20)::text, (w->>21)::bytea, (w->>22)::boolean,
                (w->>23)::float8, (w->>24)::jsonb, (w->>25)::jsonb, (w->>26)::jsonb) AS c;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS out_sqlstate = RETURNED_SQLSTATE, out_message = MESSAGE_TEXT,
                                    out_detail = PG_EXCEPTION_DETAIL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
