-- Statement history and regressions from pitstop.query_snapshots: each snapshot holds
-- pg_stat_statements' cumulative counters (and the latency histogram), so what happened
-- between two snapshots is their difference; a counter that went down was reset in between,
-- and the later value alone is the window's.

-- Per role that ran the statement, one row per snapshot after the first: the calls, times and
-- percentiles of the window that snapshot closes.
CREATE FUNCTION query_history(queryid bigint)
RETURNS TABLE (captured_at timestamptz, role text, calls bigint, total_ms float8, mean_ms float8,
               p50_ms float8, p95_ms float8, p99_ms float8, rows bigint, shared_blks_read bigint, query text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT q.captured_at, q.userid, q.calls, q.total_exec_time_ms, q.rows, q.shared_blks_read, q.query, q.latency,
               q.stats_reset, lag(q.stats_reset) OVER w AS prev_reset,
               lag(q.calls) OVER w AS prev_calls, lag(q.total_exec_time_ms) OVER w AS prev_total,
               lag(q.rows) OVER w AS prev_rows, lag(q.shared_blks_read) OVER w AS prev_read,
               lag(q.latency) OVER w AS prev_latency
          FROM @extschema@.query_snapshots q
         WHERE q.queryid = query_history.queryid
           AND q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        WINDOW w AS (PARTITION BY q.userid ORDER BY q.captured_at)
    ), d AS (
        SELECT captured_at, userid, query, latency, prev_latency,
               calls >= prev_calls AND total_exec_time_ms >= prev_total AND stats_reset IS NOT DISTINCT FROM prev_reset AS continued,
               calls, prev_calls, total_exec_time_ms, prev_total, rows, prev_rows, shared_blks_read, prev_read
          FROM s WHERE prev_calls IS NOT NULL
    )
    SELECT d.captured_at,
           coalesce(r.rolname::text, d.userid::text),
           CASE WHEN continued THEN calls - prev_calls ELSE calls END,
           CASE WHEN continued THEN total_exec_time_ms - prev_total ELSE total_exec_time_ms END,
           CASE WHEN continued THEN (total_exec_time_ms - prev_total) / nullif(calls - prev_calls, 0)
                ELSE total_exec_time_ms / nullif(calls, 0) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.50, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.95, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN latency IS NOT NULL THEN @extschema@.latency_quantile(latency, 0.99, CASE WHEN continued THEN prev_latency END) END,
           CASE WHEN continued THEN rows - prev_rows ELSE rows END,
           CASE WHEN continued THEN shared_blks_read - prev_read ELSE shared_blks_read END,
           d.query
      FROM d LEFT JOIN pg_roles r ON r.oid = d.userid
     ORDER BY d.captured_at, 2
$$;
COMMENT ON FUNCTION query_history(bigint) IS
  'A statement''s calls, times and percentiles between consecutive snapshots of pitstop.query_snapshots, per role';

-- Statements (per role) whose mean or p95 over the last `since` is at least `factor` times
-- that of the window of the same length before it, with at least `min_calls` calls in each,
-- worst first; the plan pitstop captured most recently for it, when there is one.
CREATE FUNCTION regressions(since interval DEFAULT '1 day', min_calls bigint DEFAULT 10, factor float8 DEFAULT 1.5)
RETURNS TABLE (queryid bigint, role text, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_now bigint, mean_ms_now float8, p95_ms_now float8,
               mean_factor float8, p95_factor float8, window_start timestamptz, window_end timestamptz,
               captured_plan json)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    db oid := (SELECT oid FROM pg_database WHERE datname = current_database());
    t_end timestamptz;
    t_mid timestamptz;
    t_start timestamptz;
    plans jsonb;
BEGIN
    IF since IS NULL OR since <= interval '0' THEN
        RAISE EXCEPTION 'argument "since" must be a positive interval (got %)', coalesce(since::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NaN sorts above every number in PostgreSQL: refused by name, like infinity.
    IF min_calls IS NULL OR min_calls < 1 OR factor IS NULL OR NOT factor > 0 OR factor IN ('NaN', 'Infinity') THEN
        RAISE EXCEPTION 'arguments "min_calls" (≥ 1) and "factor" (> 0, finite) are required (got %, %)', min_calls, factor
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The windows end at snapshots: the latest, the last one at least `since` before it, and
    -- the last one at least `since` before that.
    SELECT max(s.captured_at) INTO t_end FROM @extschema@.query_snapshots s WHERE s.dbid = db;
    SELECT max(s.captured_at) INTO t_mid FROM @extschema@.query_snapshots s WHERE s.dbid = db AND s.captured_at <= t_end - since;
    SELECT max(s.captured_at) INTO t_start FROM @extschema@.query_snapshots s WHERE s.dbid = db AND s.captured_at <= t_mid - since;
    IF t_start IS NULL THEN
        RETURN;  -- not two windows of snapshots yet
    END IF;
    -- The newest captured plan of each statement of this database, read once; none without
    -- the preload (the capture is off then, and the snapshots still work).
    BEGIN
        SELECT jsonb_object_agg(p.queryid::text, p.plan) INTO plans
          FROM (SELECT DISTINCT ON (sq.queryid) sq.queryid, sq.plan::jsonb AS plan
                  FROM @extschema@.slow_queries sq
                 WHERE sq.database = current_database() AND sq.queryid IS NOT NULL AND sq.plan IS NOT NULL
                 ORDER BY sq.queryid, sq.started_at DESC) p;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        plans := NULL;
    END;
    RETURN QUERY
    WITH at AS (
        SELECT s.userid, s.queryid, s.captured_at, s.calls, s.total_exec_time_ms AS total, s.latency, s.query, s.stats_reset
          FROM @extschema@.query_snapshots s
         WHERE s.dbid = db AND s.captured_at IN (t_start, t_mid, t_end)
    ), w AS (
        SELECT e.userid, e.queryid, e.query,
               -- A reset in between (pg_stat_statements' reset time changed, or a counter
               -- fell: the entry was evicted and made again): the later snapshot alone.
               CASE WHEN mc THEN m.calls - a.calls ELSE m.calls END AS b_calls,
               CASE WHEN mc THEN m.total - a.total ELSE m.total END AS b_total,
               CASE WHEN m.latency IS NOT NULL THEN @extschema@.latency_quantile(m.latency, 0.95, CASE WHEN mc THEN a.latency END) END AS b_p95,
               CASE WHEN ec THEN e.calls - m.calls ELSE e.calls END AS n_calls,
               CASE WHEN ec THEN e.total - m.total ELSE e.total END AS n_total,
               CASE WHEN e.latency IS NOT NULL THEN @extschema@.latency_quantile(e.latency, 0.95, CASE WHEN ec THEN m.latency END) END AS n_p95
          FROM at e
          JOIN at m ON (m.userid, m.queryid) = (e.userid, e.queryid) AND m.captured_at = t_mid
          JOIN at a ON (a.userid, a.queryid) = (e.userid, e.queryid) AND a.captured_at = t_start
         CROSS JOIN LATERAL (SELECT m.calls >= a.calls AND m.total >= a.total AND m.stats_reset IS NOT DISTINCT FROM a.stats_reset AS mc,
                                    e.calls >= m.calls AND e.total >= m.total AND e.stats_reset IS NOT DISTINCT FROM m.stats_reset AS ec) c
         WHERE e.captured_at = t_end
    ), r AS (
        SELECT w.*, w.b_total / nullif(w.b_calls, 0) AS b_mean, w.n_total / nullif(w.n_calls, 0) AS n_mean
          FROM w WHERE w.b_calls >= min_calls AND w.n_calls >= min_calls
    )
    SELECT r.queryid, coalesce(ro.rolname::text, r.userid::text), r.query,
           r.b_calls, r.b_mean, r.b_p95, r.n_calls, r.n_mean, r.n_p95,
           round((r.n_mean / nullif(r.b_mean, 0))::numeric, 2)::float8,
           round((r.n_p95 / nullif(r.b_p95, 0))::numeric, 2)::float8,
           t_mid, t_end,
           (plans -> r.queryid::text)::json
      FROM r LEFT JOIN pg_roles ro ON ro.oid = r.userid
     WHERE r.n_mean >= factor * r.b_mean OR r.n_p95 >= factor * r.b_p95
     ORDER BY greatest(r.n_mean / nullif(r.b_mean, 0), r.n_p95 / nullif(r.b_p95, 0)) DESC NULLS LAST;
END
$$;
COMMENT ON FUNCTION regressions(interval, bigint, float8) IS
  'Statements whose mean or p95 over the last window of snapshots is factor times the window before, with their latest captured plan';

GRANT EXECUTE ON FUNCTION query_history(bigint), regressions(interval, bigint, float8) TO pg_monitor;
