-- continuum_nb: the group commit passes the children's parameters on.
--
-- Migration 20261207070000 gave continuum_commit_wake three parameters for child workflows
-- (p_children, p_await_children, p_cancel_children) and dropped the 24-parameter signature that
-- continuum_commit_wakes (20261207060000) calls. Same signature and behaviour as before; each
-- wake of a batch now carries continuum_commit_wake's 27 arguments.
CREATE OR REPLACE FUNCTION continuum_commit_wakes(
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
