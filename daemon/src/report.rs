//! `pitstop report …`: read-only views of the extension, fetched as JSON rows.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

#[derive(Subcommand, Debug, PartialEq)]
pub enum Report {
    /// Statements slower than pitstop.slow_query_ms, newest first (pitstop.slow_queries).
    SlowQueries {
        /// Show at most this many statements.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Include each statement's JSON plan (use with --json).
        #[arg(long)]
        plans: bool,
    },
    /// The heaviest statements from pg_stat_statements (pitstop.top_queries).
    TopQueries {
        /// total_time, mean_time, max_time, stddev_time, calls, rows, temp_blks or hit_ratio.
        #[arg(long, default_value = "total_time")]
        sort: String,
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Plan findings for one statement (pitstop.explain_advice).
    Advice {
        /// The statement to explain.
        query: String,
        /// Run it (inside a rolled-back subtransaction) to compare estimates with actuals.
        #[arg(long)]
        analyze: bool,
    },
    /// Client connections by database, user, application and state (pitstop.connections).
    Connections,
    /// Sessions waiting on locks and who holds them (pitstop.blocking_locks).
    Locks,
    /// Statements and transactions running longer than a duration (pitstop.long_running).
    LongRunning {
        /// A Postgres interval, e.g. "30 seconds" or "5 min".
        #[arg(long, default_value = "1 minute")]
        min_duration: String,
    },
}

impl Report {
    /// The SQL behind a report and its parameters.
    fn query(&self) -> (&'static str, Vec<Box<dyn ToSql + Sync + Send>>) {
        match self {
            Report::SlowQueries { limit, plans: false } => (
                "SELECT started_at, duration_ms, rows, username, database, queryid, query
                   FROM pitstop.slow_queries LIMIT $1",
                vec![Box::new(*limit)],
            ),
            Report::SlowQueries { limit, plans: true } => (
                "SELECT started_at, duration_ms, rows, username, database, queryid, query, plan
                   FROM pitstop.slow_queries LIMIT $1",
                vec![Box::new(*limit)],
            ),
            Report::TopQueries { sort, limit } => (
                "SELECT calls, round(total_ms::numeric, 1) AS total_ms, round(mean_ms::numeric, 2) AS mean_ms,
                        rows, shared_hit_pct, pct_total_time, query
                   FROM pitstop.top_queries($1, $2)",
                vec![Box::new(sort.clone()), Box::new(*limit)],
            ),
            Report::Advice { query, analyze } => (
                "SELECT severity, finding, node, detail, suggestion FROM pitstop.explain_advice($1, $2)",
                vec![Box::new(query.clone()), Box::new(*analyze)],
            ),
            Report::Connections => ("SELECT * FROM pitstop.connections", vec![]),
            Report::Locks => ("SELECT * FROM pitstop.blocking_locks", vec![]),
            Report::LongRunning { min_duration } => (
                "SELECT pid, username, database, state, duration, xact_duration, wait_event, query
                   FROM pitstop.long_running($1::text::interval)",
                vec![Box::new(min_duration.clone())],
            ),
        }
    }

    pub fn empty_message(&self) -> &'static str {
        match self {
            Report::SlowQueries { .. } => "No slow statements captured (threshold: pitstop.slow_query_ms).",
            Report::TopQueries { .. } => "pg_stat_statements has no statements for this database yet.",
            Report::Advice { .. } => "No findings: the plan looks fine.",
            Report::Connections => "No client connections.",
            Report::Locks => "No session is waiting on a lock.",
            Report::LongRunning { .. } => "Nothing runs longer than that.",
        }
    }
}

/// Runs a report and returns its rows as JSON objects in column order.
pub async fn run(client: &Client, report: &Report) -> Result<Vec<Map<String, Value>>> {
    let (sql, params) = report.query();
    let wrapped = format!("SELECT row_to_json(r)::text FROM ({sql}) r");
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&wrapped, &params).await.context("report query failed")?;
    rows.iter()
        .map(|row| {
            let text: String = row.get(0);
            serde_json::from_str(&text).context("report row is not JSON")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_reads_a_pitstop_object() {
        let reports = [
            Report::SlowQueries { limit: 1, plans: false },
            Report::SlowQueries { limit: 1, plans: true },
            Report::TopQueries { sort: "calls".into(), limit: 1 },
            Report::Advice { query: "select 1".into(), analyze: false },
            Report::Connections,
            Report::Locks,
            Report::LongRunning { min_duration: "1 min".into() },
        ];
        for report in reports {
            let (sql, _) = report.query();
            assert!(sql.contains("pitstop."), "{report:?}");
        }
    }
}
