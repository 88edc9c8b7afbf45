-- Latency percentiles per statement (the extension's histograms), keyed like
-- pg_stat_statements: join on (dbid, userid, queryid). Times in milliseconds.
CREATE VIEW query_latency AS
SELECT l.dbid,
       d.datname,
       l.userid,
       r.rolname,
       l.queryid,
       l.calls,
       l.p50,
       l.p90,
       l.p95,
       l.p99,
       l.p999,
       l.max,
       l.since
FROM @extschema@.query_latency_raw() AS l
LEFT JOIN pg_catalog.pg_roles r ON r.oid = l.userid
LEFT JOIN pg_catalog.pg_database d ON d.oid = l.dbid;

COMMENT ON VIEW query_latency IS
  'Execution time percentiles (ms, within 2 %) of each top-level statement since its first call (needs shared_preload_libraries)';

-- Resetting discards other users' histograms: superuser only unless granted.
REVOKE ALL ON FUNCTION query_latency_reset() FROM PUBLIC;
GRANT SELECT ON query_latency TO pg_monitor;
