-- continuum_nb: child workflows (cn.child / cn.start_child).
--
-- A parent's wake inserts the child runs it starts (runnable, unleased, parent_run_id and
-- correlation_id from migration 20261207050000) in its own transaction; a child's final commit
-- makes its parent runnable in the same transaction; cancelling a run cancels the children that
-- follow their parent's cancel (on_parent_cancel = 'cancel'), and theirs.
--
-- on_parent_cancel: 'cancel' or 'abandon' for a child, NULL for a run of its own. Nullable
-- without a default: adding it rewrites nothing, and v0.2 rows keep NULL.
ALTER TABLE continuum_runs ADD COLUMN on_parent_cancel text;

-- Cancel the active runs among p_roots and, under every run cancelled, the active children that
-- follow their parent's cancel; then wake the parents of the roots (all but p_quiet: the run
-- whose own wake cancels its losing children). One statement per level of the tree.
CREATE FUNCTION continuum_cancel_tree(p_roots uuid[], p_now timestamptz, p_quiet uuid)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_level uuid[] := p_roots;
    v_done uuid[] := '{}';
    v_n bigint;
BEGIN
    WHILE cardinality(v_level) > 0 LOOP
        v_done := v_done || v_level;
        WITH upd AS (
            UPDATE continuum_runs
               SET state = 'cancelled', completed_at = p_now, next_wakeup_at = NULL,
                   lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                   retention_until = CASE WHEN retention IS NOT NULL THEN p_now + retention ELSE retention_until END
             WHERE id = ANY (v_level) AND state IN ('running', 'suspended', 'drifted')
            RETURNING id
        ), tasks AS (
            UPDATE continuum_activity_tasks
               SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             WHERE run_id IN (SELECT id FROM upd) AND state IN ('available', 'leased')
        ), timers AS (
            UPDATE continuum_timers SET fired = true WHERE run_id IN (SELECT id FROM upd) AND NOT fired
        )
        SELECT count(pg_notify('continuum_run_done', upd.id::text)) INTO v_n FROM upd;
        v_level := ARRAY(SELECT id FROM continuum_runs
                          WHERE parent_run_id = ANY (v_level) AND on_parent_cancel = 'cancel'
                            AND state IN ('running', 'suspended', 'drifted') AND NOT (id = ANY (v_done)));
    END LOOP;
    WITH woken AS (
        UPDATE continuum_runs AS p SET next_wakeup_at = p_now
          FROM continuum_runs AS c
         WHERE c.id = ANY (p_roots) AND p.id = c.parent_run_id AND p.id IS DISTINCT FROM p_quiet
           AND NOT (p.id = ANY (v_done)) AND p.state IN ('running', 'suspended')
        RETURNING p.id)
    SELECT count(pg_notify('continuum_wake', woken.id::text)) INTO v_n FROM woken;
END
$$;

-- The wake function gains the children's three parameters (a new signature: the old one is
-- dropped). A wake without children passes NULL for each and runs no statement more: the
-- parent is read with the row the fence locks, and only a child's final commit wakes it.
DROP FUNCTION continuum_commit_wake(uuid, bigint, jsonb, bigint, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb,
                                    jsonb, jsonb, jsonb, jsonb, text, jsonb, jsonb, timestamptz,
                                    timestamptz, boolean, text, bytea, boolean, float8);
CREATE FUNCTION continuum_commit_wake(
    p_run uuid,
    p_token bigint,
    p_new_run jsonb,          -- NULL, or {workflow, version, input, trace (hex), started, retention, owner,
                              --           attributes, retention_s}
    p_last bigint,            -- the journal must end here (NULL: no events in this wake)
    p_events jsonb,           -- [[seq, event_type, payload], ...]
    p_tasks jsonb,            -- [[id, seq, mfa, activity, attempt, available_at, idempotency_key, lease_to_self], ...]
    p_outcomes jsonb,         -- [[task id, state, result, error], ...] or NULL
    p_results jsonb,          -- [[activity, idempotency_key, seq, result], ...] or NULL
    p_new_timers jsonb,       -- [[id, seq, fires_at], ...] or NULL
    p_fired_timers jsonb,     -- [id, ...] or NULL
    p_signals jsonb,          -- [[signal id, delivered_seq], ...] or NULL
    p_cancelled jsonb,        -- [task id, ...] or NULL
    p_names jsonb,            -- signal names the run now awaits
    p_awaited jsonb,          -- activity seqs the run now awaits
    p_state text,
    p_result jsonb,
    p_error jsonb,
    p_now timestamptz,
    p_next timestamptz,
    p_finished boolean,
    p_version text,
    p_trace bytea,
    p_release boolean,
    p_ttl float8,
    p_children jsonb,         -- [[id, workflow, version, input, started, correlation, on_parent_cancel,
                              --   retention_s], ...] or NULL: child runs this wake starts
    p_await_children jsonb,   -- [child id, ...] or NULL: the children the run now awaits
    p_cancel_children jsonb,  -- [child id, ...] or NULL: children to cancel (cn.first's losers)
    OUT out_pending boolean,  -- a signal or outcome the run awaits is already there: wake it again
    OUT out_token bigint      -- the run's lease token (new for a new run)
)
LANGUAGE plpgsql VOLATILE AS $$
-- Every SQL statement here costs an executor start-up (10-30 us): decisions that need no table
-- are plain PL/pgSQL expressions, and kinds of rows a wake does not have run no statement.
DECLARE
    v_owner text;
    v_token bigint;
    v_last bigint := 0;      -- the journal's last seq before this wake (the run row's last_seq)
    v_new_last bigint;       -- and after it
    v_pending boolean := false;
    v_next timestamptz;
    v_state text;            -- the run row before this wake (NULL: a new run)
    v_bare boolean;          -- it has neither result nor error
    v_cur_next timestamptz;
    v_version text;
    v_untraced boolean;
    v_renew boolean;         -- its lease is past half its TTL: push the expiry
    v_parent uuid;           -- the run's parent (a child run), else NULL
    i int;
BEGIN
    -- The journal must end exactly at p_last: a wake applied twice, or by two threads with the
    -- same token, cannot duplicate a seq. The run row keeps the last seq (last_seq, written by
    -- this function only, under the row lock the fence takes), so the check is a key probe on
    -- the locked row, not max(seq) over every partition of continuum_events.
    v_new_last := CASE WHEN jsonb_array_length(p_events) > 0 THEN (p_events->-1->>0)::bigint END;
    IF p_new_run IS NOT NULL THEN
        IF p_last IS NOT NULL AND p_last <> 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'CNW01',
                MESSAGE = 'continuum: the journal of run ' || p_run || ' ends at seq 0, not ' || p_last;
        END IF;
        -- Inserted as this wake leaves it, but leased: the journal is written under this
        -- engine's lease; releasing it (or a pending signal or outcome) is an update below.
        -- retention_s: the run's retention (seconds), applied when it ends; 'retention' (an
        -- explicit retention_until, from clients before 20261201000000) is still honoured.
        INSERT INTO continuum_runs (id, workflow, version_hash, state, input, result, error, trace_context,
                                    started_at, completed_at, retention_until, next_wakeup_at,
                                    lease_owner, lease_token, lease_expires_at, attributes, retention, last_seq)
        VALUES (p_run, p_new_run->>'workflow', coalesce(p_version, p_new_run->>'version'), p_state,
                p_new_run->'input', p_result, p_error,
                coalesce(decode(p_new_run->>'trace', 'hex'), p_trace), (p_new_run->>'started')::timestamptz,
                CASE WHEN p_finished THEN p_now END,
                CASE WHEN p_finished AND p_new_run->>'retention_s' IS NOT NULL
                     THEN p_now + make_interval(secs => (p_new_run->>'retention_s')::float8)
                     ELSE (p_new_run->>'retention')::timestamptz END,
                p_next,
                p_new_run->>'owner', nextval('continuum_lease_token_seq'), now() + make_interval(secs => p_ttl),
                nullif(nullif(p_new_run->'attributes', 'null'::jsonb), '{}'::jsonb),
                make_interval(secs => (p_new_run->>'retention_s')::float8),
                coalesce(v_new_last, 0))
        RETURNING p_new_run->>'owner', lease_token INTO v_owner, v_token;
    ELSE
        SELECT lease_owner, lease_token, state, result IS NULL AND error IS NULL, next_wakeup_at,
               version_hash, trace_context IS NULL,
               lease_expires_at IS NULL OR lease_expires_at < now() + make_interval(secs => p_ttl / 2),
               last_seq, parent_run_id
          INTO v_owner, v_token, v_state, v_bare, v_cur_next, v_version, v_untraced, v_renew, v_last, v_parent
          FROM continuum_runs
         WHERE id = p_run AND lease_token = p_token FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'CNW01',
                MESSAGE = 'continuum: run ' || p_run || ' is not leased with token ' || coalesce(p_token::text, 'NULL');
        END IF;
        IF p_last IS NOT NULL AND v_last <> p_last THEN
            RAISE EXCEPTION USING ERRCODE = 'CNW01',
                MESSAGE = 'continuum: the journal of run ' || p_run || ' ends at seq ' || v_last || ', not ' || p_last;
        END IF;
    END IF;
    v_new_last := coalesce(v_new_last, v_last);

    -- Rows are looked up by key (one statement per row, or "= ANY (array)"), so each is an index
    -- probe however many rows the run already has (a join could scan all of them).
    IF p_new_timers IS NOT NULL THEN
        INSERT INTO continuum_timers (id, run_id, seq, fires_at)
        SELECT (u.v->>0)::uuid, p_run, (u.v->>1)::bigint, (u.v->>2)::timestamptz
          FROM jsonb_array_elements(p_new_timers) AS u(v);
    END IF;
    IF p_fired_timers IS NOT NULL THEN
        UPDATE continuum_timers SET fired = true
         WHERE run_id = p_run
           AND id = ANY (ARRAY(SELECT u.v::uuid FROM jsonb_array_elements_text(p_fired_timers) AS u(v)));
    END IF;
    IF p_signals IS NOT NULL THEN
        FOR i IN 0 .. jsonb_array_length(p_signals) - 1 LOOP
            UPDATE continuum_signals SET delivered = true, delivered_seq = (p_signals->i->>1)::bigint
             WHERE run_id = p_run AND id = (p_signals->i->>0)::bigint;
        END LOOP;
    END IF;
    IF p_results IS NOT NULL THEN
        INSERT INTO continuum_activity_results (activity_module, idempotency_key, run_id, seq, result)
        SELECT u.v->>0, u.v->>1, p_run, (u.v->>2)::bigint, u.v->3
          FROM jsonb_array_elements(p_results) AS u(v)
        ON CONFLICT (activity_module, idempotency_key) DO NOTHING;
    END IF;
    -- Children: inserted runnable and unleased (an id that exists is a start already
    -- committed: never a second child); cn.first's losing children cancelled with theirs.
    IF p_children IS NOT NULL THEN
        WITH ins AS (
            INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, next_wakeup_at,
                                        retention, parent_run_id, correlation_id, on_parent_cancel)
            SELECT (u.v->>0)::uuid, u.v->>1, u.v->>2, 'suspended', u.v->3, (u.v->>4)::timestamptz, p_now,
                   make_interval(secs => (u.v->>7)::float8), p_run, (u.v->>5)::uuid, u.v->>6
              FROM jsonb_array_elements(p_children) AS u(v)
            ON CONFLICT (id) DO NOTHING
            RETURNING id)
        SELECT count(pg_notify('continuum_wake', ins.id::text)) INTO i FROM ins;
    END IF;
    IF p_cancel_children IS NOT NULL THEN
        PERFORM continuum_cancel_tree(
            ARRAY(SELECT u.v::uuid FROM jsonb_array_elements_text(p_cancel_children) AS u(v)), p_now, p_run);
    END IF;
    IF p_cancelled IS NOT NULL THEN
        UPDATE continuum_activity_tasks
           SET state = 'cancelled', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE run_id = p_run AND state IN ('available', 'leased')
           AND id = ANY (ARRAY(SELECT u.v::uuid FROM jsonb_array_elements_text(p_cancelled) AS u(v)));
    END IF;

    -- The activity outcomes, the journal and the new tasks in one statement. The outcomes'
    -- tasks are found by key (an index probe each, however many tasks the run has).
    WITH oc AS (
        UPDATE continuum_activity_tasks AS t
           SET state = o.v->>1, result = nullif(o.v->2, 'null'::jsonb), error = nullif(o.v->3, 'null'::jsonb),
               completed_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
          FROM jsonb_array_elements(coalesce(p_outcomes, '[]'::jsonb)) AS o(v)
         WHERE t.run_id = p_run
           AND t.id = ANY (ARRAY(SELECT (x->>0)::uuid FROM jsonb_array_elements(coalesce(p_outcomes, '[]'::jsonb)) AS x))
           AND t.id = (o.v->>0)::uuid
    ), ev AS (
        INSERT INTO continuum_events (run_id, seq, event_type, payload)
        SELECT p_run, (e.v->>0)::bigint, e.v->>1, e.v->2
          FROM jsonb_array_elements(p_events) AS e(v)
    )
    INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, activity, attempt, state, available_at,
                                          idempotency_key, lease_owner, lease_token, lease_expires_at)
    SELECT (u.v->>0)::uuid, p_run, (u.v->>1)::bigint, u.v->2, u.v->>3, (u.v->>4)::int,
           CASE WHEN (u.v->>7)::boolean THEN 'leased' ELSE 'available' END,
           (u.v->>5)::timestamptz, u.v->>6,
           CASE WHEN (u.v->>7)::boolean THEN v_owner END,
           CASE WHEN (u.v->>7)::boolean THEN v_token END,
           CASE WHEN (u.v->>7)::boolean THEN now() + make_interval(secs => p_ttl) END
      FROM jsonb_array_elements(p_tasks) AS u(v);

    -- A signal or an outcome the run now awaits that is already there: probes into the
    -- (run_id, name) / (run_id, seq) indexes, only for the lists that are not empty.
    IF p_names <> '[]'::jsonb THEN
        v_pending := EXISTS (SELECT 1 FROM continuum_signals
                              WHERE run_id = p_run AND NOT delivered
                                AND name = ANY (ARRAY(SELECT jsonb_array_elements_text(p_names))));
    END IF;
    IF NOT v_pending AND p_awaited <> '[]'::jsonb THEN
        v_pending := EXISTS (SELECT 1 FROM continuum_activity_tasks
                              WHERE run_id = p_run AND state IN ('completed', 'failed')
                                AND seq = ANY (ARRAY(SELECT jsonb_array_elements_text(p_awaited)::bigint)));
    END IF;
    IF NOT v_pending AND p_await_children IS NOT NULL THEN
        v_pending := EXISTS (SELECT 1 FROM continuum_runs
                              WHERE id = ANY (ARRAY(SELECT jsonb_array_elements_text(p_await_children)::uuid))
                                AND state IN ('completed', 'failed', 'cancelled'));
    END IF;
    v_next := CASE WHEN v_pending THEN p_now ELSE p_next END;

    IF p_new_run IS NOT NULL THEN
        IF v_pending OR p_release OR p_finished THEN
            UPDATE continuum_runs
               SET next_wakeup_at = v_next,
                   lease_owner = CASE WHEN p_release OR p_finished THEN NULL ELSE lease_owner END,
                   lease_token = CASE WHEN p_release OR p_finished THEN NULL ELSE lease_token END,
                   lease_expires_at = CASE WHEN p_release OR p_finished THEN NULL ELSE lease_expires_at END
             WHERE id = p_run;
        END IF;
    -- A step that changes nothing in the run row but its last seq (suspended on an activity
    -- before and after) writes a new version of it in place (HOT: last_seq is in no index); a
    -- step without events writes none at all (the fence's row lock is held either way).
    ELSIF v_new_last <> v_last OR p_finished OR p_release OR NOT v_bare OR p_result IS NOT NULL OR p_error IS NOT NULL
          OR v_state IS DISTINCT FROM p_state OR v_cur_next IS DISTINCT FROM v_next
          OR (p_version IS NOT NULL AND p_version IS DISTINCT FROM v_version)
          OR (v_untraced AND p_trace IS NOT NULL) OR v_renew THEN
        UPDATE continuum_runs AS r
           SET state = p_state, result = p_result, error = p_error, last_seq = v_new_last,
               next_wakeup_at = v_next,
               completed_at = CASE WHEN p_finished THEN p_now ELSE r.completed_at END,
               -- retention runs from the end (a row without a retention keeps its retention_until)
               retention_until = CASE WHEN p_finished AND r.retention IS NOT NULL THEN p_now + r.retention
                                      ELSE r.retention_until END,
               version_hash = coalesce(p_version, r.version_hash),
               trace_context = coalesce(r.trace_context, p_trace),
               -- a finished run holds no lease (nor does a released one)
               lease_owner = CASE WHEN p_release OR p_finished THEN NULL ELSE r.lease_owner END,
               lease_token = CASE WHEN p_release OR p_finished THEN NULL ELSE r.lease_token END,
               -- The heartbeat renews leases; a wake pushes the expiry only when it is past half
               -- the TTL. Leaving it unchanged keeps most wakes free of changes to indexed
               -- columns, so PostgreSQL can update the run row in place (HOT).
               lease_expires_at = CASE WHEN p_release OR p_finished THEN NULL
                                       WHEN v_renew THEN now() + make_interval(secs => p_ttl)
                                       ELSE r.lease_expires_at END
         WHERE r.id = p_run;
    END IF;

    IF p_finished OR p_state = 'drifted' THEN
        PERFORM pg_notify('continuum_run_done', p_run::text);
        -- A child's end wakes its parent, in this transaction; the parent journals the outcome.
        -- Always an update (never skipped because the parent looks due already): a wake of the
        -- parent in progress holds its row, and this must wait for it, or that wake, which did
        -- not see this child end, would clear the wakeup after this check.
        IF p_finished AND v_parent IS NOT NULL THEN
            UPDATE continuum_runs SET next_wakeup_at = least(coalesce(next_wakeup_at, p_now), p_now)
             WHERE id = v_parent AND state IN ('running', 'suspended');
            PERFORM pg_notify('continuum_wake', v_parent::text);
        END IF;
    ELSIF p_release AND v_next <= p_now THEN
        PERFORM pg_notify('continuum_wake', p_run::text);
    END IF;
    IF jsonb_path_exists(p_tasks, '$[*][7] ? (@ == false)') THEN  -- a task not leased to itself
        PERFORM pg_notify('continuum_tasks', a.activity)
           FROM (SELECT DISTINCT u.v->>3 AS activity FROM jsonb_array_elements(p_tasks) AS u(v)
                  WHERE NOT (u.v->>7)::boolean) AS a;
    END IF;
    out_pending := v_pending;
    out_token := v_token;
END
$$;
