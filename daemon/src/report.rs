//! `pitstop report …`: read-only views of the extension, fetched as JSON rows.

use anyhow::{Context, Result};
use std::borrow::Cow;
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
    /// Indexes that would lower the workload's estimated cost the most, with their evidence
    /// (pitstop.suggest_indexes over pg_stat_statements, or over --query statements).
    Indexes {
        #[command(flatten)]
        workload: Workload,
    },
    /// Workload statements no suggested index helps, and why (pitstop.unhelped_queries).
    Unhelped {
        #[command(flatten)]
        workload: Workload,
    },
    /// Unused, duplicate, invalid and bloated indexes and unindexed foreign keys, each with
    /// the DDL that fixes it (pitstop.index_health).
    IndexHealth,
    /// Tables whose dead tuples, statistics or transaction-id age need attention, with the
    /// command for each (pitstop.vacuum_health; `--all` shows healthy tables too).
    Vacuum {
        /// Show every table, not only those needing something.
        #[arg(long)]
        all: bool,
    },
    /// Estimated table and btree index bloat (pitstop.table_bloat); `--exact` reads every
    /// page through pgstattuple instead.
    Bloat {
        #[arg(long)]
        exact: bool,
    },
    /// Settings computed from the host's RAM, cores and disk and the live server
    /// (pitstop.config_advice); only those that differ unless `--all`.
    Config {
        /// web, oltp, dw or mixed.
        #[arg(long, default_value = "mixed")]
        workload: String,
        #[arg(long)]
        all: bool,
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

/// Which statements the index advisor considers and how much it may suggest.
#[derive(clap::Args, Debug, PartialEq, Clone)]
pub struct Workload {
    /// A statement to advise on (repeatable); default: the top statements of pg_stat_statements.
    #[arg(long = "query")]
    queries: Vec<String>,
    /// Total size the suggested indexes may take, in MB.
    #[arg(long)]
    budget_mb: Option<f64>,
    /// Suggest at most this many indexes.
    #[arg(long)]
    max_indexes: Option<i32>,
    /// A statement counts as helped when its estimated cost drops by at least this share.
    #[arg(long, default_value_t = 0.05)]
    min_improvement: f64,
    /// How many pg_stat_statements entries (by total time) make up the workload.
    #[arg(long, default_value_t = 100)]
    top_n: i32,
    /// An index is suggested only when it lowers the remaining workload cost by this share.
    #[arg(long, default_value_t = 0.01)]
    min_workload_gain: f64,
}

impl Workload {
    const ARGUMENTS: &'static str =
        "queries => $1, budget_mb => $2, max_indexes => $3, min_improvement => $4, top_n => $5, min_workload_gain => $6";

    fn params(&self) -> Vec<Box<dyn ToSql + Sync + Send>> {
        let queries = (!self.queries.is_empty()).then(|| self.queries.clone());
        vec![
            Box::new(queries),
            Box::new(self.budget_mb),
            Box::new(self.max_indexes),
            Box::new(self.min_improvement),
            Box::new(self.top_n),
            Box::new(self.min_workload_gain),
        ]
    }
}

impl Report {
    /// The SQL behind a report and its parameters.
    fn query(&self) -> (Cow<'static, str>, Vec<Box<dyn ToSql + Sync + Send>>) {
        match self {
            Report::SlowQueries { limit, plans: false } => (
                "SELECT started_at, duration_ms, rows, username, database, queryid, query
                   FROM pitstop.slow_queries LIMIT $1".into(),
                vec![Box::new(*limit)],
            ),
            Report::SlowQueries { limit, plans: true } => (
                "SELECT started_at, duration_ms, rows, username, database, queryid, query, plan
                   FROM pitstop.slow_queries LIMIT $1".into(),
                vec![Box::new(*limit)],
            ),
            Report::TopQueries { sort, limit } => (
                "SELECT calls, round(total_ms::numeric, 1) AS total_ms, round(mean_ms::numeric, 2) AS mean_ms,
                        rows, shared_hit_pct, pct_total_time, query
                   FROM pitstop.top_queries($1, $2)".into(),
                vec![Box::new(sort.clone()), Box::new(*limit)],
            ),
            Report::Advice { query, analyze } => (
                "SELECT severity, finding, node, detail, suggestion FROM pitstop.explain_advice($1, $2)".into(),
                vec![Box::new(query.clone()), Box::new(*analyze)],
            ),
            Report::Indexes { workload } => (
                format!(
                    "SELECT rank, ddl, pg_size_pretty(estimated_bytes) AS size, improvement_pct,
                            queries_helped, reason, helped
                       FROM pitstop.suggest_indexes({})",
                    Workload::ARGUMENTS
                )
                .into(),
                workload.params(),
            ),
            Report::Unhelped { workload } => (
                format!("SELECT queryid, role, calls, cost, reason, query FROM pitstop.unhelped_queries({})", Workload::ARGUMENTS)
                    .into(),
                workload.params(),
            ),
            Report::IndexHealth => ("SELECT * FROM pitstop.index_health".into(), vec![]),
            Report::Vacuum { all } => (
                "SELECT schema, table_name, status, n_dead_tup, round(dead_ratio::numeric, 3) AS dead_ratio,
                        n_mod_since_analyze, round(wraparound_pct::numeric, 2) AS wraparound_pct,
                        greatest(last_vacuum, last_autovacuum) AS last_vacuum, action
                   FROM pitstop.vacuum_health WHERE $1 OR status <> 'ok'
                  ORDER BY status = 'ok', wraparound_pct DESC, n_dead_tup DESC".into(),
                vec![Box::new(*all)],
            ),
            Report::Bloat { exact } => (
                "SELECT schema, table_name, index_name, kind, pg_size_pretty(bytes) AS size,
                        pg_size_pretty(bloat_bytes) AS bloat, round(bloat_pct::numeric, 1) AS bloat_pct, method, fix
                   FROM pitstop.table_bloat($1) ORDER BY bloat_bytes DESC NULLS LAST".into(),
                vec![Box::new(*exact)],
            ),
            Report::Config { workload, all } => (
                "SELECT name, current, suggested, restart_required, reason
                   FROM pitstop.config_advice($1) WHERE $2 OR differs".into(),
                vec![Box::new(workload.clone()), Box::new(*all)],
            ),
            Report::Connections => ("SELECT * FROM pitstop.connections".into(), vec![]),
            Report::Locks => ("SELECT * FROM pitstop.blocking_locks".into(), vec![]),
            Report::LongRunning { min_duration } => (
                "SELECT pid, username, database, state, duration, xact_duration, wait_event, query
                   FROM pitstop.long_running($1::text::interval)".into(),
                vec![Box::new(min_duration.clone())],
            ),
        }
    }

    pub fn empty_message(&self) -> &'static str {
        match self {
            Report::SlowQueries { .. } => "No slow statements captured (threshold: pitstop.slow_query_ms).",
            Report::TopQueries { .. } => "pg_stat_statements has no statements for this database yet.",
            Report::Advice { .. } => "No findings: the plan looks fine.",
            Report::Indexes { .. } => "No index would lower the workload's estimated cost enough to suggest one.",
            Report::Unhelped { .. } => "Every statement of the workload is helped by a suggested index.",
            Report::IndexHealth => "No index problems found.",
            Report::Vacuum { .. } => "Every table is fine: nothing overdue, no wraparound risk.",
            Report::Bloat { .. } => "No tables or btree indexes to estimate (run ANALYZE first).",
            Report::Config { .. } => "Every setting already matches the advice for this host and workload.",
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

    fn workload() -> Workload {
        Workload { queries: vec![], budget_mb: None, max_indexes: Some(3), min_improvement: 0.05, top_n: 100, min_workload_gain: 0.01 }
    }

    #[test]
    fn advisor_reports_pass_every_workload_option() {
        for report in [Report::Indexes { workload: workload() }, Report::Unhelped { workload: workload() }] {
            let (sql, params) = report.query();
            assert_eq!(params.len(), 6);
            assert!(sql.contains("min_workload_gain => $6"), "{sql}");
        }
    }

    #[test]
    fn every_report_reads_a_pitstop_object() {
        let reports = [
            Report::SlowQueries { limit: 1, plans: false },
            Report::SlowQueries { limit: 1, plans: true },
            Report::TopQueries { sort: "calls".into(), limit: 1 },
            Report::Advice { query: "select 1".into(), analyze: false },
            Report::Indexes { workload: workload() },
            Report::Unhelped { workload: workload() },
            Report::IndexHealth,
            Report::Vacuum { all: false },
            Report::Bloat { exact: false },
            Report::Config { workload: "oltp".into(), all: true },
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
