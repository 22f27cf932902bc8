-- continuum_nb: group commit, every argument as its JSON value. continuum_commit_wakes
-- (20261207080000) takes each wake's 27 arguments as JSON strings holding their text form, so a
-- jsonb argument travels as JSON text inside a JSON string: the client escapes it, and the
-- server parses it twice (the batch, then each argument again). Here each argument is the JSON
-- value itself: jsonb arguments are taken as they are (JSON null: SQL NULL; the client never
-- sends a JSON null for a value that is present), the others from their JSON text (->>): uuid
-- and timestamptz as strings, bigint and float8 as numbers, boolean as true/false, bytea as a
-- string in its hex form ('\x...').
-- Otherwise as continuum_commit_wakes, which stays for clients of 20261207080000: each wake is
-- one call of continuum_commit_wake in its own subtransaction (a refused wake is rolled back
-- alone and reported in its row), one row per wake, in order.
CREATE FUNCTION continuum_commit_wakes_json(
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
                (w->>0)::uuid, (w->>1)::bigint, nullif(w->2, 'null'), (w->>3)::bigint, w->4,
                w->5, nullif(w->6, 'null'), nullif(w->7, 'null'), nullif(w->8, 'null'),
                nullif(w->9, 'null'), nullif(w->10, 'null'), nullif(w->11, 'null'), w->12, w->13,
                w->>14, nullif(w->15, 'null'), nullif(w->16, 'null'), (w->>17)::timestamptz,
                (w->>18)::timestamptz, (w->>19)::boolean, w->>20, (w->>21)::bytea, (w->>22)::boolean,
                (w->>23)::float8, nullif(w->24, 'null'), nullif(w->25, 'null'), nullif(w->26, 'null')) AS c;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS out_sqlstate = RETURNED_SQLSTATE, out_message = MESSAGE_TEXT,
                                    out_detail = PG_EXCEPTION_DETAIL;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- continuum_commit_wakes (20261207080000) for clients that still send the text form: each wake's
-- jsonb arguments parsed from their text (the JSON string's content), the others passed on as
-- they are (->> reads a string's content and a number's or a boolean's text alike), then the
-- same calls as above. One loop serves both forms.
CREATE OR REPLACE FUNCTION continuum_commit_wakes(
    p_wakes jsonb,
    OUT out_index int,
    OUT out_pending boolean,
    OUT out_token bigint,
    OUT out_sqlstate text,
    OUT out_message text,
    OUT out_detail text
) RETURNS SETOF record
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM continuum_commit_wakes_json((
        SELECT coalesce(jsonb_agg((
            SELECT jsonb_agg(CASE WHEN a.n - 1 IN (2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 24, 25, 26)
                                   AND jsonb_typeof(a.v) = 'string'
                                  THEN (a.v #>> '{}')::jsonb ELSE a.v END ORDER BY a.n)
              FROM jsonb_array_elements(w.v) WITH ORDINALITY AS a(v, n)) ORDER BY w.n), '[]'::jsonb)
          FROM jsonb_array_elements(p_wakes) WITH ORDINALITY AS w(v, n)))
$$;
