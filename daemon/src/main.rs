//! `pitstop`: the daemon and the DBA's command line. Parsing and dispatch only.

mod backoff;
mod config;
mod db;
mod http;
mod logging;
mod maintenance;
mod monitor;
mod output;
mod relay;
mod report;
mod service;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pitstop", version, about = "PostgreSQL performance toolkit: reports, advice and maintenance")]
struct Cli {
    /// Connection string (`host=… dbname=…` or `postgres://…`); defaults to the libpq
    /// variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD and ~/.pgpass.
    #[arg(long, global = true, env = "PITSTOP_DSN")]
    dsn: Option<String>,

    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read-only reports from the pitstop extension.
    Report {
        #[command(subcommand)]
        report: report::Report,
        /// Show long text (queries) in full instead of shortening it in tables.
        #[arg(long, global = true)]
        wide: bool,
    },
    /// Run the daemon (a systemd service, Type=notify): the Redis invalidation relay, and
    /// /healthz, /readyz, /metrics and /status over HTTP. SIGHUP reloads the configuration.
    Run {
        /// Configuration file (default: /etc/pitstop/pitstop.toml if it exists).
        #[arg(long, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Scheduled maintenance by hand: `--dry-run` prints what pitstop.maintenance_plan() calls
    /// for; without it the vacuum/analyze plan (or one configured job) runs once now, with
    /// lock_timeout, statement_timeout, retries and pitstop.maintenance_log, as the daemon runs
    /// it. Without --yes the plan is shown and confirmed on the terminal (no terminal: refused,
    /// exit status 2). Ctrl-C cancels the running statement on the server (exit status 130).
    /// Refused on a standby. Exit status 1 when an action failed.
    Maintenance {
        /// Print the plan (priority, action, target, command, reason) without running it.
        #[arg(long)]
        dry_run: bool,
        /// Run without asking for confirmation (needed when stdin is not a terminal).
        #[arg(long, short = 'y', conflicts_with = "dry_run")]
        yes: bool,
        /// Run at most N actions, the most urgent first.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_actions: Option<u32>,
        /// Include the plan's REINDEX INDEX CONCURRENTLY actions (left out by default).
        #[arg(long, conflicts_with = "job")]
        include_reindex: bool,
        /// Run this configured job ([[maintenance.jobs]] name) instead of the whole plan.
        #[arg(long)]
        job: Option<String>,
        /// Configuration file for thresholds, timeouts and jobs (default: /etc/pitstop/pitstop.toml
        /// if it exists, else built-in defaults).
        #[arg(long, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and print the effective settings (secrets masked), or
    /// every error with its key path (exit status 1).
    CheckConfig {
        /// Configuration file (default: /etc/pitstop/pitstop.toml if it exists).
        #[arg(long, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => service::run(config.as_deref()),
        Command::CheckConfig { config } => config::check_command(config.as_deref()),
        Command::Maintenance { dry_run, yes, max_actions, include_reindex, job, config } => {
            let style = if cli.json { output::Style::Json } else { output::Style::Table { wide: false } };
            let args = maintenance::cli::Args {
                config: config.as_deref(),
                dry_run,
                job: job.as_deref(),
                yes,
                max_actions: max_actions.map(|n| n as usize),
                include_reindex,
            };
            maintenance::cli::command(cli.dsn.as_deref(), &args, style)
        }
        Command::Report { report, wide } => {
            let style = if cli.json { output::Style::Json } else { output::Style::Table { wide } };
            run_report(cli.dsn.as_deref(), &report, style)
        }
    }
}

/// The single-threaded runtime of a command-line command; None (after saying why) if it
/// cannot start.
fn cli_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

fn run_report(dsn: Option<&str>, report: &report::Report, style: output::Style) -> ExitCode {
    let Some(runtime) = cli_runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let client = db::connect(dsn).await?;
        let rows = report::run(&client, report).await?;
        println!("{}", output::render(&rows, style, report.empty_message()));
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
