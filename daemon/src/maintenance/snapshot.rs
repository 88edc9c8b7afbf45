//! Statement snapshots: the current pg_stat_statements counters copied into
//! `pitstop.query_snapshots`, one row per (database, user, queryid) — top-level and nested
//! entries of one statement added up — so that two snapshots show what changed in between.

use tokio_postgres::Client;

/// The schema pg_stat_statements is installed in, quoted; None when it is not installed in
/// this database.
pub const FIND: &str = "SELECT pg_catalog.quote_ident(n.nspname::text) AS schema FROM pg_catalog.pg_extension e \
                    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'";

pub const MISSING: &str = "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements; it also needs shared_preload_libraries)";

pub const DESCRIBE: &str =
    "INSERT INTO pitstop.query_snapshots SELECT now(), … FROM pg_stat_statements";

fn insert(schema: &str) -> String {
    format!(
        "INSERT INTO pitstop.query_snapshots (captured_at, dbid, userid, queryid, query, calls, total_exec_time_ms, \
             mean_exec_time_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written, stats_reset) {}",
        statements(schema)
    )
}

fn statements(schema: &str) -> String {
    format!(
        "SELECT pg_catalog.now(), dbid, userid, queryid, pg_catalog.min(query), pg_catalog.sum(calls), \
                pg_catalog.sum(total_exec_time), \
                pg_catalog.sum(total_exec_time) / greatest(pg_catalog.sum(calls), 1), pg_catalog.sum(rows), \
                pg_catalog.sum(shared_blks_hit), pg_catalog.sum(shared_blks_read), pg_catalog.sum(temp_blks_written), \
                (SELECT stats_reset FROM {schema}.pg_stat_statements_info) \
         FROM {schema}.pg_stat_statements WHERE queryid IS NOT NULL GROUP BY dbid, userid, queryid"
    )
}

/// The same rows with each statement's latency histogram (the extension's, top-level calls
/// only) as JSON; bucket i reads as 0.01 ms · γ^i · 2/(γ+1), γ = 1.02/0.98.
fn insert_with_latency(schema: &str) -> String {
    format!(
        "WITH s AS ({}), \
              h AS (SELECT dbid, userid, queryid, pg_catalog.jsonb_build_object('calls', calls, 'since', since, 'max_ms', max_ms, \
                        'below', below, 'above', above, 'buckets', buckets, 'counts', counts) AS latency \
                    FROM pitstop.query_latency_histogram()) \
         INSERT INTO pitstop.query_snapshots (captured_at, dbid, userid, queryid, query, calls, total_exec_time_ms, \
             mean_exec_time_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written, stats_reset, latency) \
         SELECT s.*, h.latency FROM s LEFT JOIN h ON (h.dbid, h.userid, h.queryid) = (s.dbid, s.userid, s.queryid)",
        statements(schema)
    )
}

/// Where pg_stat_statements lives, if it is installed.
pub async fn locate(client: &Client) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client.query_opt(FIND, &[]).await?.map(|row| row.get(0)))
}

/// Notes the suggested indexes built since the last snapshot (`pitstop.index_effect`), when
/// the role may (UPDATE on pitstop.index_suggestions or the columns observe writes).
const OBSERVE_BUILT_INDEXES: &str = "SELECT pitstop.index_suggestions_observe() \
                                     WHERE has_any_column_privilege('pitstop.index_suggestions', 'UPDATE')";

/// Takes one snapshot; the number of statements recorded. Built indexes are noted first, so
/// that this snapshot opens their "after" window.
/// Without the preload the histograms are missing (55000): the snapshot is taken without them.
pub async fn take(client: &Client, schema: &str) -> Result<u64, tokio_postgres::Error> {
    // Best effort: the snapshot matters more than the note.
    if let Err(e) = client.execute(OBSERVE_BUILT_INDEXES, &[]).await {
        tracing::warn!(
            "snapshot: built suggested indexes not noted ({}); the snapshot is taken anyway",
            crate::db::describe_error(&e.into())
        );
    }
    match client.execute(&insert_with_latency(schema), &[]).await {
        Err(e)
            if e.code()
                == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) =>
        {
            client.execute(&insert(schema), &[]).await
        }
        result => result,
    }
}
