//! The console's SQL: the extension's views and functions (docs/sql-reference.md), read as
//! `pg_monitor` may. Times and intervals come back as text or seconds, numerics as float8.
//! Two statements are the daemon's own because the extension has no such query: the I/O
//! column of the query list (pg_stat_statements' block counters) and the per-snapshot series
//! of one statement (a plain read of `pitstop.query_snapshots`).

pub const WRAPAROUND: &str = "SELECT datname::text AS datname, xid_age, wraparound_pct, mxid_age, mxid_wraparound_pct, status \
     FROM pitstop.database_wraparound ORDER BY greatest(wraparound_pct, mxid_wraparound_pct) DESC";

pub const BLOCKING: &str = "SELECT blocked_pid, blocked_user::text AS blocked_user, blocked_query, blocking_pid, \
     blocking_user::text AS blocking_user, blocking_query, blocking_state, lock_mode, lock_type, relation::text AS relation, \
     extract(epoch FROM waited_for)::float8 AS waited_seconds, extract(epoch FROM blocking_xact_age)::float8 AS blocking_xact_seconds \
     FROM pitstop.blocking_locks";

pub const LONG_RUNNING: &str = "SELECT pid, username::text AS username, database::text AS database, state, \
     extract(epoch FROM duration)::float8 AS duration_seconds, extract(epoch FROM xact_duration)::float8 AS xact_seconds, \
     wait_event_type, wait_event, backend_type, query FROM pitstop.long_running('1 min')";

pub const CONNECTIONS: &str = "SELECT database::text AS database, username::text AS username, application_name, \
     client_addr::text AS client_addr, state, connections, pct_of_max::float8 AS pct_of_max, \
     extract(epoch FROM longest_in_state)::float8 AS longest_in_state_seconds, \
     extract(epoch FROM longest_transaction)::float8 AS longest_transaction_seconds \
     FROM pitstop.connections ORDER BY connections DESC";

/// Slow statements captured in the last hour, one row per statement (the slowest text).
pub const SLOW_LAST_HOUR: &str = "SELECT queryid, count(*) AS executions, max(duration_ms)::float8 AS max_ms, \
     avg(duration_ms)::float8 AS mean_ms, (array_agg(query ORDER BY duration_ms DESC))[1] AS query, \
     max(started_at)::text AS last_at \
     FROM pitstop.slow_queries WHERE started_at > now() - interval '1 hour' \
     GROUP BY queryid ORDER BY max(duration_ms) DESC LIMIT 20";

pub const INDEX_HEALTH: &str = "SELECT problem, table_name, index_name, index_bytes, detail, fix FROM pitstop.index_health";

pub const VACUUM_PROBLEMS: &str = "SELECT schema::text AS schema, table_name::text AS table_name, n_live_tup, n_dead_tup, dead_ratio, \
     xid_age, wraparound_pct, last_vacuum::text AS last_vacuum, last_autovacuum::text AS last_autovacuum, \
     last_analyze::text AS last_analyze, last_autoanalyze::text AS last_autoanalyze, autovacuum_enabled, status, action \
     FROM pitstop.vacuum_health WHERE status <> 'ok' ORDER BY wraparound_pct DESC, n_dead_tup DESC LIMIT 100";

pub const VACUUM_ALL: &str = "SELECT schema::text AS schema, table_name::text AS table_name, n_live_tup, n_dead_tup, dead_ratio, \
     xid_age, wraparound_pct, last_vacuum::text AS last_vacuum, last_autovacuum::text AS last_autovacuum, \
     last_analyze::text AS last_analyze, last_autoanalyze::text AS last_autoanalyze, autovacuum_enabled, status, action \
     FROM pitstop.vacuum_health ORDER BY (status = 'ok'), n_dead_tup DESC LIMIT 200";

pub const BLOAT: &str = "SELECT schema::text AS schema, table_name::text AS table_name, index_name::text AS index_name, kind, \
     bytes, expected_bytes, bloat_bytes, bloat_pct, method, fix FROM pitstop.table_bloat \
     WHERE bloat_bytes > 0 OR fix IS NOT NULL ORDER BY (fix IS NULL), bloat_bytes DESC NULLS LAST LIMIT 50";

pub const CONFIG_ADVICE: &str =
    "SELECT name, current, suggested, unit, reason, restart_required, differs FROM pitstop.config_advice($1::text) ORDER BY NOT differs, name";

pub const CACHE_STATS: &str = "SELECT hits, misses, fills, bypasses, invalidations, stale, evictions, entries, bytes_used, \
     bytes_configured, hit_ratio, bypass_reasons, ttl_only_calls FROM pitstop.cache_stats()";

pub const CACHE_ENTRIES: &str = "SELECT query, role::text AS role, database::text AS database, relations::text[]::text AS relations, \
     bytes, hits, created_at::text AS created_at, extract(epoch FROM age)::float8 AS age_seconds, expires_at::text AS expires_at, fresh \
     FROM pitstop.cache_entries LIMIT 100";

pub const MAINTENANCE_LOG: &str = "SELECT id, run_id, job, action, target, command, started_at::text AS started_at, duration_ms, \
     outcome, attempt, error, detail FROM pitstop.maintenance_log ORDER BY id DESC LIMIT 200";

pub const MAINTENANCE_PLAN: &str =
    "SELECT priority, action, schema::text AS schema, relation::text AS relation, index_name::text AS index_name, target, command, reason \
     FROM pitstop.maintenance_plan()";

/// The statement list, sortable; `$1` is the sort column (whitelisted by the caller),
/// `io_blocks` is pg_stat_statements' shared reads plus temporary reads and writes.
pub fn top_queries(order_by: &str) -> String {
    format!(
        "WITH io AS (SELECT s.queryid, r.rolname::text AS username, \
                sum(s.shared_blks_read + s.temp_blks_read + s.temp_blks_written)::int8 AS io_blocks \
           FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
          GROUP BY 1, 2) \
         SELECT t.queryid, t.username, t.calls, t.total_ms, t.mean_ms, t.stddev_ms, t.max_ms, t.rows, t.shared_hit_pct, \
                t.temp_blks, t.pct_total_time, coalesce(io.io_blocks, 0) AS io_blocks, t.query \
           FROM pitstop.top_queries('total_time', 100000) t LEFT JOIN io USING (queryid, username) \
          ORDER BY {order_by} DESC NULLS LAST, t.queryid LIMIT 100"
    )
}

/// One statement's rows in the list (every role that ran it).
pub const STATEMENT: &str = "SELECT queryid, username, calls, total_ms, mean_ms, stddev_ms, max_ms, rows, shared_hit_pct, temp_blks, \
     pct_total_time, query FROM pitstop.top_queries('total_time', 100000) WHERE queryid = $1";

pub const STATEMENT_LATENCY: &str = "SELECT rolname::text AS username, calls, p50, p90, p95, p99, max FROM pitstop.query_latency \
     WHERE queryid = $1 AND datname = current_database()";

/// The statement's counters at each snapshot, summed over its roles.
pub const STATEMENT_SNAPSHOTS: &str = "SELECT captured_at::text AS captured_at, extract(epoch FROM captured_at)::float8 AS at, \
     sum(calls)::int8 AS calls, sum(total_exec_time_ms)::float8 AS total_exec_time_ms \
     FROM pitstop.query_snapshots WHERE queryid = $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     GROUP BY captured_at ORDER BY captured_at DESC LIMIT 200";

pub const STATEMENT_SLOW: &str = "SELECT seq, started_at::text AS started_at, duration_ms::float8 AS duration_ms, rows, \
     username::text AS username, username = current_user AS own, database::text AS database, query, query_truncated, plan, plan_analyzed \
     FROM pitstop.slow_queries WHERE queryid = $1 ORDER BY duration_ms DESC LIMIT 5";

pub const EXPLAIN_ADVICE: &str = "SELECT finding, node, severity, detail, suggestion FROM pitstop.explain_advice($1, false, $2)";

pub const SUGGEST_INDEXES: &str = "SELECT rank, ddl, table_name, estimated_bytes, workload_cost_before, workload_cost_after, \
     improvement_pct, write_cost, queries_helped, helped, reason FROM pitstop.suggest_indexes()";

pub const UNHELPED: &str = "SELECT queryid, query, calls, cost, reason, role FROM pitstop.unhelped_queries()";
