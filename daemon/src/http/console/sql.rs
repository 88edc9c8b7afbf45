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

pub const CONNECTIONS: &str =
    "SELECT database::text AS database, username::text AS username, application_name, \
     client_addr::text AS client_addr, state, connections, pct_of_max::float8 AS pct_of_max, \
     extract(epoch FROM longest_in_state)::float8 AS longest_in_state_seconds, \
     extract(epoch FROM longest_transaction)::float8 AS longest_transaction_seconds \
     FROM pitstop.connections ORDER BY connections DESC";

/// Whether the row `s` (a `query` column) is pitstop's own statement: the extension's rule
/// for top_queries and the advisor (sql/queries/own_statement.sql), so the console's and the
/// CLI's reads (the index advice can run for seconds) are never shown as the workload's.
macro_rules! not_own {
    () => {
        concat!("NOT (\n", include_str!("../../../../sql/queries/own_statement.sql"), "\n)")
    };
}

/// The same rule as a condition on a row `s` (`pitstop top`'s read of pg_stat_statements).
pub const NOT_OWN: &str = not_own!();

/// Slow statements captured in the last hour, one row per statement (the slowest text),
/// pitstop's own left out.
pub const SLOW_LAST_HOUR: &str = concat!(
    "SELECT queryid, count(*) AS executions, max(duration_ms)::float8 AS max_ms, \
     avg(duration_ms)::float8 AS mean_ms, (pg_catalog.array_agg(query ORDER BY duration_ms DESC))[1] AS query, \
     max(started_at)::text AS last_at \
     FROM pitstop.slow_queries s WHERE s.started_at > now() - interval '1 hour' AND ",
    not_own!(),
    " GROUP BY queryid ORDER BY max(duration_ms) DESC LIMIT 20"
);

/// `pitstop.regressions` over the longest window (at most an hour) that two windows of this
/// database's snapshots allow: of the snapshots of the last 2 hours 5 minutes (hourly ones
/// give an hour), the one that best splits them in two. A statement counts when it ran at
/// least 10 times in each window and its mean or p95 doubled; pitstop's own are left out.
/// Fewer than three snapshots: no window (HAVING), and regressions is not called.
pub const REGRESSIONS: &str = concat!(
    "WITH db AS (SELECT oid FROM pg_database WHERE datname = current_database()), \
          last AS (SELECT max(q.captured_at) AS at FROM pitstop.query_snapshots q, db WHERE q.dbid = db.oid), \
          snaps AS (SELECT DISTINCT q.captured_at FROM pitstop.query_snapshots q, db, last \
                     WHERE q.dbid = db.oid AND q.captured_at >= last.at - interval '2 hours 5 minutes'), \
          bounds AS (SELECT min(captured_at) AS first, max(captured_at) AS last FROM snaps), \
          w AS (SELECT least(interval '1 hour', max(least(b.last - n.captured_at, n.captured_at - b.first))) AS since \
                  FROM snaps n, bounds b WHERE n.captured_at > b.first AND n.captured_at < b.last \
                HAVING max(least(b.last - n.captured_at, n.captured_at - b.first)) > interval '0') \
     SELECT s.queryid, s.role, s.query, s.calls_before, s.mean_ms_before, s.p95_ms_before, s.calls_now, s.mean_ms_now, \
            s.p95_ms_now, s.mean_factor, s.p95_factor, s.window_seconds, s.window_start, s.window_end, s.captured_plan \
       FROM (SELECT r.queryid, r.role, r.query, r.calls_before, r.mean_ms_before, r.p95_ms_before, r.calls_now, \
                    r.mean_ms_now, r.p95_ms_now, r.mean_factor, r.p95_factor, \
                    extract(epoch FROM w.since)::float8 AS window_seconds, r.window_start::text AS window_start, \
                    r.window_end::text AS window_end, r.captured_plan \
               FROM w CROSS JOIN LATERAL pitstop.regressions(w.since, 10, 2) r) s \
      WHERE ",
    not_own!(),
    " LIMIT 20"
);

/// The suggestions `pitstop.suggest_indexes` remembered for this database whose index was not
/// built yet, in the shape of its rows (no size estimate): what `report problems` shows
/// without `--advice`.
pub const REMEMBERED_SUGGESTIONS: &str = "SELECT s.ddl, s.table_name, s.improvement_pct, pg_catalog.cardinality(s.queryids)::int8 AS queries_helped, \
     NULL::float8 AS estimated_bytes, 'remembered from pitstop.suggest_indexes at ' || s.last_suggested_at::text AS reason, \
     (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('queryid', q)) FROM pg_catalog.unnest(s.queryids) q) AS helped, \
     extract(epoch FROM s.last_suggested_at)::float8 AS suggested_at \
     FROM pitstop.index_suggestions s \
     WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.index_oid IS NULL \
     ORDER BY s.improvement_pct DESC NULLS LAST, s.id";

pub const INDEX_HEALTH: &str =
    "SELECT problem, table_name, index_name, index_bytes, detail, fix FROM pitstop.index_health";

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

pub const CACHE_STATS: &str =
    "SELECT hits, misses, fills, bypasses, invalidations, stale, evictions, entries, bytes_used, \
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
/// `io_blocks` is pg_stat_statements' shared reads plus temporary reads and writes, read from
/// the view in `schema` (quoted, `maintenance::snapshot::FIND`).
pub fn top_queries(schema: &str, order_by: &str) -> String {
    format!(
        "WITH io AS (SELECT s.queryid, r.rolname::text AS username, \
                sum(s.shared_blks_read + s.temp_blks_read + s.temp_blks_written)::int8 AS io_blocks \
           FROM {schema}.pg_stat_statements s JOIN pg_catalog.pg_roles r ON r.oid = s.userid \
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

pub const STATEMENT_LATENCY: &str =
    "SELECT rolname::text AS username, calls, p50, p90, p95, p99, max FROM pitstop.query_latency \
     WHERE queryid = $1 AND datname = current_database()";

/// The statement's counters at each snapshot, summed over its roles.
pub const STATEMENT_SNAPSHOTS: &str = "SELECT captured_at::text AS captured_at, extract(epoch FROM captured_at)::float8 AS at, \
     sum(calls)::int8 AS calls, sum(total_exec_time_ms)::float8 AS total_exec_time_ms \
     FROM pitstop.query_snapshots WHERE queryid = $1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     GROUP BY captured_at ORDER BY captured_at DESC LIMIT 200";

pub const STATEMENT_SLOW: &str = "SELECT seq, started_at::text AS started_at, duration_ms::float8 AS duration_ms, rows, \
     username::text AS username, username = current_user AS own, database::text AS database, query, query_truncated, plan, plan_analyzed \
     FROM pitstop.slow_queries WHERE queryid = $1 ORDER BY duration_ms DESC LIMIT 5";

pub const EXPLAIN_ADVICE: &str =
    "SELECT finding, node, severity, detail, suggestion FROM pitstop.explain_advice($1, false, $2)";

pub const SUGGEST_INDEXES: &str =
    "SELECT rank, ddl, table_name, estimated_bytes, workload_cost_before, workload_cost_after, \
     improvement_pct, write_cost, queries_helped, helped, reason FROM pitstop.suggest_indexes()";

pub const UNHELPED: &str =
    "SELECT queryid, query, calls, cost, reason, role FROM pitstop.unhelped_queries()";
