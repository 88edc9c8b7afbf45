-- Views and SQL functions of the insight module. Runs after the Rust functions exist.

CREATE VIEW slow_queries AS
SELECT q.started_at,
       round(q.duration_ms::numeric, 3)  AS duration_ms,
       q.rows,
       q.queryid,
       r.rolname                         AS username,
       d.datname                         AS database,
       q.nesting_level,
       q.query,
       q.query_truncated,
       q.plan::json                      AS plan,
       q.plan_bytes,
       q.plan_analyzed,
       q.seq
FROM @extschema@.slow_queries_raw() AS q
LEFT JOIN pg_catalog.pg_roles r ON r.oid = q.userid
LEFT JOIN pg_catalog.pg_database d ON d.oid = q.dbid
ORDER BY q.seq DESC;

COMMENT ON VIEW slow_queries IS
  'Statements slower than pitstop.slow_query_ms, newest first, with their plans (needs shared_preload_libraries)';

-- Resetting discards other users' history: superuser only unless granted, like pg_stat_statements_reset.
REVOKE ALL ON FUNCTION slow_queries_reset() FROM PUBLIC;

-- Client connections grouped the way a DBA triages them, with their share of max_connections.
CREATE VIEW connections AS
SELECT a.datname                                   AS database,
       a.usename                                   AS username,
       a.application_name,
       a.client_addr,
       coalesce(a.state, 'unknown')                AS state,
       count(*)                                    AS connections,
       round(100.0 * count(*) / current_setting('max_connections')::int, 2) AS pct_of_max,
       max(now() - a.state_change)                 AS longest_in_state,
       max(now() - a.xact_start)                   AS longest_transaction
FROM pg_catalog.pg_stat_activity a
WHERE a.backend_type = 'client backend'
GROUP BY 1, 2, 3, 4, 5
ORDER BY connections DESC, database, username;

COMMENT ON VIEW connections IS 'Client connections by database, user, application, address and state';

-- Who waits on whom: one row per (blocked, blocking) pair.
CREATE VIEW blocking_locks AS
SELECT blocked.pid                                  AS blocked_pid,
       blocked.usename                              AS blocked_user,
       blocked.query                                AS blocked_query,
       blocking.pid                                 AS blocking_pid,
       blocking.usename                             AS blocking_user,
       blocking.query                               AS blocking_query,
       blocking.state                               AS blocking_state,
       wait.mode                                    AS lock_mode,
       wait.locktype                                AS lock_type,
       wait.relation::regclass                      AS relation,
       now() - coalesce(wait.waitstart, blocked.query_start) AS waited_for,
       now() - blocking.xact_start                  AS blocking_xact_age
FROM pg_catalog.pg_stat_activity blocked
JOIN LATERAL (
    SELECT l.mode, l.locktype, l.relation, l.waitstart
    FROM pg_catalog.pg_locks l
    WHERE l.pid = blocked.pid AND NOT l.granted
    LIMIT 1
) wait ON true
JOIN LATERAL unnest(pg_catalog.pg_blocking_pids(blocked.pid)) AS b(pid) ON true
JOIN pg_catalog.pg_stat_activity blocking ON blocking.pid = b.pid
ORDER BY waited_for DESC;

COMMENT ON VIEW blocking_locks IS 'Sessions waiting for a lock and the sessions holding it';

-- Statements and transactions running longer than min_duration.
CREATE FUNCTION long_running(min_duration interval DEFAULT '1 min')
RETURNS TABLE (pid int, username name, database name, state text, duration interval,
               xact_duration interval, wait_event_type text, wait_event text,
               backend_type text, query text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF min_duration IS NULL THEN
        RAISE EXCEPTION 'argument "min_duration" must not be NULL'
              USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_duration < interval '0' THEN
        RAISE EXCEPTION 'argument "min_duration" must not be negative (got %)', min_duration
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'Pass a duration such as ''5 minutes''.';
    END IF;
    RETURN QUERY
    SELECT a.pid, a.usename, a.datname, a.state,
           now() - a.query_start, now() - a.xact_start,
           a.wait_event_type, a.wait_event, a.backend_type, a.query
    FROM pg_stat_activity a
    WHERE a.pid <> pg_backend_pid()
      AND a.state IS DISTINCT FROM 'idle'
      AND (now() - a.query_start >= min_duration OR now() - a.xact_start >= min_duration)
    ORDER BY greatest(now() - a.query_start, now() - a.xact_start) DESC;
END
$$;

-- Read access for monitoring roles (pg_monitor includes pg_read_all_stats, so its members see
-- every user's statements); other roles need an explicit GRANT, as with any DBA tool.
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
GRANT SELECT ON slow_queries, connections, blocking_locks TO pg_monitor;

-- The index health report as a view too, for psql and dashboards.
CREATE VIEW index_health AS SELECT * FROM @extschema@.index_health();
GRANT SELECT ON index_health TO pg_monitor;
