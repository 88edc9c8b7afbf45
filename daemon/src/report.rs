//! `pitstop report …`: read-only views of the extension, fetched as JSON rows.

use crate::db::{self, conninfo::Explicit};
use crate::output;
use anyhow::{Context, Result};
use clap::Subcommand;
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

#[derive(Subcommand, Debug, PartialEq)]
pub enum Report {
    /// The problems found now, most urgent first, each with its evidence and fix: the
    /// console overview's list (alerts of a running daemon with --daemon-url; the index
    /// advice as last remembered unless --advice).
    Problems(crate::problems_cli::Args),
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
        /// Also pitstop's own statements (the CLI's, the daemon's, calls of pitstop's functions).
        #[arg(long)]
        include_self: bool,
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
        /// Instead of the list: per prefix of it (the first N indexes), their estimated bytes and
        /// the workload's estimated cost with them (planner cost units).
        #[arg(long)]
        curve: bool,
    },
    /// Workload statements no suggested index helps, and why (pitstop.unhelped_queries).
    Unhelped {
        #[command(flatten)]
        workload: Workload,
    },
    /// Unused, duplicate, invalid and bloated indexes and unindexed foreign keys, each with
    /// the DDL that fixes it (pitstop.index_health).
    IndexHealth {
        /// Also the indexes of pitstop's own tables.
        #[arg(long)]
        include_self: bool,
        /// When a foreign key lacks an index, run the index advisor and point the foreign key
        /// at a suggested index that serves it instead of asking for a second one.
        #[arg(long)]
        with_advice: bool,
    },
    /// Tables whose dead tuples, statistics or transaction-id age need attention, with the
    /// command for each (pitstop.vacuum_health; `--all` shows healthy tables too).
    Vacuum {
        /// Show every table, not only those needing something.
        #[arg(long)]
        all: bool,
        /// Also pitstop's own tables.
        #[arg(long)]
        include_self: bool,
    },
    /// Estimated table and btree index bloat (pitstop.table_bloat) of the relations with at
    /// least `--min-bloat`; `--exact` reads every page through pgstattuple instead.
    Bloat {
        #[arg(long)]
        exact: bool,
        /// List a relation when its bloat is at least this share AND this size ("20%,10MB";
        /// "0" lists every relation).
        #[arg(long, default_value = "20%,10MB", value_parser = parse_min_bloat)]
        min_bloat: MinBloat,
        /// Also pitstop's own tables.
        #[arg(long)]
        include_self: bool,
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
    /// Indexes built on pitstop's advice: the mean of the statements each was meant for before
    /// and after, its scans, size and the writes since, and a DROP for one that did not help
    /// (pitstop.index_effects; with --index, that index's statements: pitstop.index_effect).
    IndexEffect {
        /// One index (schema-qualified if not on the search_path).
        #[arg(long)]
        index: Option<String>,
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
    /// Also pitstop's own statements (the CLI's, the daemon's, calls of pitstop's functions).
    #[arg(long)]
    include_self: bool,
}

/// `--min-bloat`: the share (percent) and the bytes a relation's bloat must both reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinBloat {
    pub pct: f64,
    pub bytes: i64,
}

/// "20%,10MB", "35,1GB", "0" (everything). Sizes in bytes, kB, MB, GB or TB (powers of 1024).
fn parse_min_bloat(text: &str) -> Result<MinBloat, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(MinBloat { pct: 0.0, bytes: 0 });
    }
    let usage =
        || format!("expected a share and a size, e.g. \"20%,10MB\" (or \"0\"), not \"{text}\"");
    let (pct, size) = text.split_once(',').ok_or_else(usage)?;
    let pct: f64 = pct.trim().trim_end_matches('%').trim().parse().map_err(|_| usage())?;
    let size = size.trim();
    let digits = size.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(size.len());
    let number: f64 = size[..digits].parse().map_err(|_| usage())?;
    let unit = match size[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(usage()),
    };
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("the share must be between 0 and 100 %, not {pct}"));
    }
    Ok(MinBloat { pct, bytes: (number * unit).round() as i64 })
}

impl Workload {
    const ARGUMENTS: &'static str =
        "queries => $1, budget_mb => $2, max_indexes => $3, min_improvement => $4, top_n => $5, min_workload_gain => $6, \
         include_self => $7";

    fn params(&self) -> Vec<Box<dyn ToSql + Sync + Send>> {
        let queries = (!self.queries.is_empty()).then(|| self.queries.clone());
        vec![
            Box::new(queries),
            Box::new(self.budget_mb),
            Box::new(self.max_indexes),
            Box::new(self.min_improvement),
            Box::new(self.top_n),
            Box::new(self.min_workload_gain),
            Box::new(self.include_self),
        ]
    }
}

impl Report {
    /// The SQL behind a report and its parameters.
    fn query(&self) -> (Cow<'static, str>, Vec<Box<dyn ToSql + Sync + Send>>) {
        match self {
            // Not one statement: `command` hands it to problems_cli before any query runs.
            Report::Problems(_) => unreachable!("report problems reads the overview's sections, not one statement"),
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
            Report::TopQueries { sort, limit, include_self } => (
                "SELECT calls, round(total_ms::numeric, 1) AS total_ms, round(mean_ms::numeric, 2) AS mean_ms,
                        rows, shared_hit_pct, pct_total_time, query
                   FROM pitstop.top_queries($1, $2, include_self => $3)".into(),
                vec![Box::new(sort.clone()), Box::new(*limit), Box::new(*include_self)],
            ),
            Report::Advice { query, analyze } => (
                "SELECT severity, finding, node, detail, suggestion FROM pitstop.explain_advice($1, $2)".into(),
                vec![Box::new(query.clone()), Box::new(*analyze)],
            ),
            Report::Indexes { workload, curve: true } => (
                format!(
                    "WITH s AS (SELECT rank, ddl, estimated_bytes, workload_cost_before, workload_cost_after
                                  FROM pitstop.suggest_indexes({}))
                     SELECT 0 AS indexes, 0::numeric AS bytes, pg_catalog.pg_size_pretty(0::bigint) AS size,
                            workload_cost_before AS est_workload_cost, 100.0 AS pct_of_start, NULL AS added
                       FROM s WHERE rank = 1
                     UNION ALL
                     SELECT rank, pg_catalog.sum(estimated_bytes) OVER w,
                            pg_catalog.pg_size_pretty(pg_catalog.sum(estimated_bytes) OVER w),
                            workload_cost_after,
                            pg_catalog.round((100.0::pg_catalog.float8 * workload_cost_after::pg_catalog.float8
                                / nullif(pg_catalog.first_value(workload_cost_before) OVER w, 0::pg_catalog.float8))::numeric, 1),
                            ddl
                       FROM s WINDOW w AS (ORDER BY rank)
                      ORDER BY 1",
                    Workload::ARGUMENTS
                )
                .into(),
                workload.params(),
            ),
            Report::Indexes { workload, curve: false } => (
                format!(
                    "SELECT rank, ddl, pg_catalog.pg_size_pretty(estimated_bytes) AS size, improvement_pct,
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
            Report::IndexHealth { include_self, with_advice } => (
                "SELECT problem, table_name, index_name, index_bytes, detail, fix
                   FROM pitstop.index_health(include_self => $1, with_advice => $2)".into(),
                vec![Box::new(*include_self), Box::new(*with_advice)],
            ),
            // pitstop's own tables are those of its schema (CREATE EXTENSION puts them all there).
            Report::Vacuum { all, include_self } => (
                "SELECT schema, table_name, status, reason, n_dead_tup, round(dead_ratio::numeric, 3) AS dead_ratio,
                        n_mod_since_analyze, round(wraparound_pct::numeric, 2) AS wraparound_pct,
                        greatest(last_vacuum, last_autovacuum) AS last_vacuum, action
                   FROM pitstop.vacuum_health
                  WHERE ($1 OR status <> 'ok')
                    AND ($2 OR schema <> (SELECT extnamespace::regnamespace::name FROM pg_catalog.pg_extension
                                           WHERE extname = 'pitstop'))
                  ORDER BY status = 'ok', wraparound_pct DESC, n_dead_tup DESC".into(),
                vec![Box::new(*all), Box::new(*include_self)],
            ),
            Report::Bloat { exact, min_bloat, include_self } => (
                "SELECT schema, table_name, index_name, kind, pg_size_pretty(bytes) AS size,
                        pg_size_pretty(bloat_bytes) AS bloat, round(bloat_pct::numeric, 1) AS bloat_pct, method, fix
                   FROM pitstop.table_bloat($1, $2, $3, $4) ORDER BY bloat_bytes DESC NULLS LAST".into(),
                vec![Box::new(*exact), Box::new(min_bloat.pct), Box::new(min_bloat.bytes), Box::new(*include_self)],
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
            Report::IndexEffect { index: None } => (
                "SELECT index_name, table_name, verdict, mean_ms_before, mean_ms_after, change_pct, statements_measured,
                        index_scans, pg_size_pretty(index_bytes) AS size, table_writes_since, built_seen_at, action, suggested_ddl
                   FROM pitstop.index_effects ORDER BY built_seen_at DESC".into(),
                vec![],
            ),
            Report::IndexEffect { index: Some(index) } => (
                "SELECT queryid, calls_before, pg_catalog.round(mean_ms_before::numeric, 3) AS mean_ms_before,
                        pg_catalog.round(p95_ms_before::numeric, 3) AS p95_ms_before, calls_after,
                        pg_catalog.round(mean_ms_after::numeric, 3) AS mean_ms_after,
                        pg_catalog.round(p95_ms_after::numeric, 3) AS p95_ms_after,
                        change_pct, query
                   FROM pitstop.index_effect($1::text::regclass)".into(),
                vec![Box::new(index.clone())],
            ),
        }
    }

    /// The configured statement timeout for this report: `bloat --exact` reads every page of
    /// every table and has its own (none by default).
    pub fn statement_timeout(&self, cfg: &crate::config::ReportConfig) -> Option<Duration> {
        match self {
            Report::Bloat { exact: true, .. } => cfg.exact_statement_timeout,
            _ => cfg.statement_timeout,
        }
    }

    /// Whether the report runs the index advisor, whose progress is shown while it does.
    /// Whether the report reads names as the user's session would find them: it plans the
    /// user's own statements (the text given, or the workload the caller's role recorded), or
    /// takes an index the user named.
    fn resolves_users_names(&self) -> bool {
        self.runs_advisor()
            || matches!(self, Report::Advice { .. } | Report::IndexEffect { index: Some(_) })
    }

    fn runs_advisor(&self) -> bool {
        matches!(
            self,
            Report::Indexes { .. }
                | Report::Unhelped { .. }
                | Report::IndexHealth { with_advice: true, .. }
        )
    }

    pub fn empty_message(&self) -> &'static str {
        match self {
            Report::Problems(_) => "No problems found now.",
            Report::SlowQueries { .. } => "No slow statements captured (threshold: pitstop.slow_query_ms).",
            Report::TopQueries { .. } => {
                "pg_stat_statements has no statements for this database yet (pitstop's own are left out unless --include-self)."
            }
            Report::Advice { .. } => "No findings: the plan looks fine.",
            Report::Indexes { .. } => "No index would lower the workload's estimated cost enough to suggest one.",
            Report::Unhelped { .. } => "Every statement of the workload is helped by a suggested index.",
            Report::IndexHealth { .. } => "No index problems found.",
            Report::Vacuum { .. } => "Every table is fine: nothing overdue, no wraparound risk.",
            Report::Bloat { .. } => "No table or btree index has that much bloat (--min-bloat).",
            Report::Config { .. } => "Every setting already matches the advice for this host and workload.",
            Report::Connections => "No client connections.",
            Report::Locks => "No session is waiting on a lock.",
            Report::LongRunning { .. } => "Nothing runs longer than that.",
            Report::IndexEffect { index: None } => {
                "No index built on pitstop's advice yet (suggestions are remembered when `report indexes` runs as a role that may write pitstop.index_suggestions)."
            }
            Report::IndexEffect { .. } => "That index was not built on a remembered suggestion, or its statements have no snapshots yet.",
        }
    }
}

/// `pitstop report …`: connects, runs the report and prints it. `statement_timeout`: the
/// flag (Some(None) for "0"); without it the configuration's, which for `bloat --exact`
/// is none by default.
pub fn command(
    connection: &Explicit<'_>,
    report: &Report,
    statement_timeout: Option<Option<Duration>>,
    config: Option<&Path>,
    style: output::Style,
) -> ExitCode {
    let exact = matches!(report, Report::Bloat { exact: true, .. });
    let explicit_config = config;
    let timeout = match statement_timeout {
        Some(timeout) => timeout,
        None => match crate::config::Config::load(config) {
            Ok(cfg) => report.statement_timeout(&cfg.report),
            Err(errors) => {
                crate::config::report_errors(&errors);
                return ExitCode::FAILURE;
            }
        },
    };
    if let Report::Problems(args) = report {
        return crate::problems_cli::command(connection, args, timeout, explicit_config, style);
    }
    if report.runs_advisor() {
        return print_target_rows(connection, timeout, style, report.empty_message(), |target| {
            Box::pin(async move {
                let (client, mut notices) = db::connect_with_notices(&target).await?;
                crate::advisor_progress::run(&client, &mut notices, run(&client, report)).await
            })
        });
    }
    print_rows(connection, timeout, style, report.empty_message(), |client, target| {
        Box::pin(async move {
            if exact {
                run_with_progress(&client, &target, report).await
            } else {
                run(&client, report).await
            }
        })
    })
}

/// Connects as the command line does, prints the rows `fetch` returns (a table or JSON) and
/// returns the exit status: 1 with the server's error, its DETAIL, HINT and SQLSTATE.
pub fn print_rows<'a>(
    connection: &Explicit<'_>,
    statement_timeout: Option<Duration>,
    style: output::Style,
    empty_message: &str,
    fetch: impl FnOnce(Client, db::Target) -> LocalBoxFuture<'a, Result<Vec<Map<String, Value>>>>,
) -> ExitCode {
    print_target_rows(connection, statement_timeout, style, empty_message, |target| {
        Box::pin(async move {
            let client = db::connect(&target).await?;
            fetch(client, target).await
        })
    })
}

/// `print_rows` for a `fetch` that connects itself, to the command line's target.
fn print_target_rows<'a>(
    connection: &Explicit<'_>,
    statement_timeout: Option<Duration>,
    style: output::Style,
    empty_message: &str,
    fetch: impl FnOnce(db::Target) -> LocalBoxFuture<'a, Result<Vec<Map<String, Value>>>>,
) -> ExitCode {
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let target =
            db::cli_target(connection, statement_timeout, &|name| std::env::var(name).ok())?;
        let rows = fetch(target).await?;
        println!("{}", output::render(&rows, style, empty_message));
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// The relations the scanning session holds or waits for a lock on right now: pgstattuple
/// and pgstatindex lock the table or index they read for as long as they read it. The size
/// is from pg_class: pg_relation_size would wait for a lock the scan is waiting for.
const READING: &str = "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text,
                              c.relpages::int8 * pg_catalog.current_setting('block_size')::int8
                         FROM pg_catalog.pg_locks l
                         JOIN pg_catalog.pg_class c ON c.oid = l.relation
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE l.pid = $1 AND l.locktype = 'relation'
                          AND c.relkind IN ('r', 'm', 'i')
                          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'";

/// `report bloat --exact`, with the table or index being read shown on stderr as the scan
/// goes (a second session watches the first one's locks): one line rewritten in place on a
/// terminal, a plain line per relation otherwise.
async fn run_with_progress(
    client: &Client,
    target: &db::Target,
    report: &Report,
) -> Result<Vec<Map<String, Value>>> {
    let pid: i32 = client.query_one("SELECT pg_catalog.pg_backend_pid()", &[]).await?.get(0);
    let watcher = db::connect(target).await?;
    let total: i64 = watcher
        .query_one(
            "SELECT count(*) FROM pitstop.table_bloat(false, 0, 0) WHERE index_name IS NULL",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0);
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    eprintln!(
        "bloat --exact: reading every page of {total} table{} and their btree indexes",
        if total == 1 { "" } else { "s" }
    );
    let scan = run(client, report);
    tokio::pin!(scan);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut seen = HashSet::new();
    let result = loop {
        tokio::select! {
            result = &mut scan => break result,
            _ = tick.tick() => {
                let Ok(rows) = watcher.query(READING, &[&pid]).await else { continue };
                for row in rows {
                    let (name, kind, bytes): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
                    let name = output::one_line(&name);
                    if seen.insert(name.clone()) {
                        let what = if kind == "i" { "index" } else { "table" };
                        let line = format!("bloat --exact: [{:>4}s] reading {what} {name} ({} MB)", started.elapsed().as_secs(), bytes / (1024 * 1024));
                        if terminal {
                            eprint!("\r\x1b[K{line}");
                            let _ = std::io::stderr().flush();
                        } else {
                            eprintln!("{line}");
                        }
                    }
                }
            }
        }
    };
    if terminal {
        eprint!("\r\x1b[K");
    }
    eprintln!("bloat --exact: done in {}s", started.elapsed().as_secs());
    result
}

/// Runs a report and returns its rows as JSON objects in column order.
pub async fn run(client: &Client, report: &Report) -> Result<Vec<Map<String, Value>>> {
    let (sql, params) = report.query();
    if report.resolves_users_names() {
        db::with_users_search_path(client, rows(client, &sql, &params)).await
    } else {
        rows(client, &sql, &params).await
    }
}

/// The rows of a statement over the extension (its version checked first) as JSON objects
/// in column order, whatever their types.
pub async fn rows(
    client: &Client,
    sql: &str,
    params: &[Box<dyn ToSql + Sync + Send>],
) -> Result<Vec<Map<String, Value>>> {
    crate::extension_version::require(client).await?;
    let wrapped = format!("SELECT pg_catalog.row_to_json(r)::text FROM ({sql}) r");
    let params: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
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
        Workload {
            queries: vec![],
            budget_mb: None,
            max_indexes: Some(3),
            min_improvement: 0.05,
            top_n: 100,
            min_workload_gain: 0.01,
            include_self: false,
        }
    }

    #[test]
    fn advisor_reports_pass_every_workload_option() {
        for report in [
            Report::Indexes { workload: workload(), curve: false },
            Report::Indexes { workload: workload(), curve: true },
            Report::Unhelped { workload: workload() },
        ] {
            let (sql, params) = report.query();
            assert_eq!(params.len(), 7);
            assert!(
                sql.contains("min_workload_gain => $6") && sql.contains("include_self => $7"),
                "{sql}"
            );
        }
    }

    fn bloat(exact: bool) -> Report {
        Report::Bloat {
            exact,
            min_bloat: MinBloat { pct: 20.0, bytes: 10 << 20 },
            include_self: false,
        }
    }

    #[test]
    fn min_bloat_reads_a_share_and_a_size() {
        assert_eq!(parse_min_bloat("20%,10MB"), Ok(MinBloat { pct: 20.0, bytes: 10 << 20 }));
        assert_eq!(parse_min_bloat(" 35 , 1.5 GB "), Ok(MinBloat { pct: 35.0, bytes: 1536 << 20 }));
        assert_eq!(parse_min_bloat("10%,8192"), Ok(MinBloat { pct: 10.0, bytes: 8192 }));
        assert_eq!(parse_min_bloat("0"), Ok(MinBloat { pct: 0.0, bytes: 0 }));
        for bad in ["20%", "20%,10XB", "x,10MB", "120%,1MB", ""] {
            assert!(parse_min_bloat(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cli_defaults_leave_pitstop_out_and_bloat_at_20_pct_and_10_mb() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            report: Report,
        }
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["report"], args].concat()).unwrap().report;
        assert_eq!(parse(&["bloat"]), bloat(false));
        let Report::Bloat { min_bloat, include_self, .. } =
            parse(&["bloat", "--min-bloat", "0", "--include-self"])
        else {
            panic!()
        };
        assert_eq!((min_bloat, include_self), (MinBloat { pct: 0.0, bytes: 0 }, true));
        assert_eq!(
            parse(&["index-health"]),
            Report::IndexHealth { include_self: false, with_advice: false }
        );
        assert_eq!(
            parse(&["vacuum", "--include-self"]),
            Report::Vacuum { all: false, include_self: true }
        );
        let Report::Unhelped { workload } = parse(&["unhelped", "--include-self"]) else {
            panic!()
        };
        assert!(workload.include_self);
        let (_, params) = Report::Unhelped { workload }.query();
        assert_eq!(format!("{:?}", params.last().unwrap()), "true");
    }

    #[test]
    fn exact_bloat_scans_have_no_statement_timeout_by_default() {
        let defaults =
            crate::config::Config::parse("", "test.toml", Default::default()).unwrap().report;
        assert_eq!(bloat(false).statement_timeout(&defaults), Some(Duration::from_secs(30)));
        assert_eq!(Report::Connections.statement_timeout(&defaults), Some(Duration::from_secs(30)));
        assert_eq!(bloat(true).statement_timeout(&defaults), None);
        let text = "[report]\nstatement_timeout = \"0\"\nexact_statement_timeout = \"2h\"\n";
        let cfg =
            crate::config::Config::parse(text, "test.toml", Default::default()).unwrap().report;
        assert_eq!(Report::Locks.statement_timeout(&cfg), None);
        assert_eq!(bloat(true).statement_timeout(&cfg), Some(Duration::from_secs(7200)));
    }

    #[test]
    fn every_report_reads_a_pitstop_object() {
        let reports = [
            Report::SlowQueries { limit: 1, plans: false },
            Report::SlowQueries { limit: 1, plans: true },
            Report::TopQueries { sort: "calls".into(), limit: 1, include_self: false },
            Report::Advice { query: "select 1".into(), analyze: false },
            Report::Indexes { workload: workload(), curve: false },
            Report::Unhelped { workload: workload() },
            Report::IndexHealth { include_self: false, with_advice: true },
            Report::Vacuum { all: false, include_self: false },
            bloat(false),
            Report::Config { workload: "oltp".into(), all: true },
            Report::Connections,
            Report::Locks,
            Report::LongRunning { min_duration: "1 min".into() },
            Report::IndexEffect { index: None },
            Report::IndexEffect { index: Some("public.i".into()) },
        ];
        for report in reports {
            let (sql, _) = report.query();
            assert!(sql.contains("pitstop."), "{report:?}");
        }
    }
}
