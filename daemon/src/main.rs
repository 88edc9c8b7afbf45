//! `pitstop`: the daemon and the DBA's command line. Parsing and dispatch only.

// No unsafe in the daemon: what needs it lives in its dependencies.
#![forbid(unsafe_code)]

mod advisor_progress;
mod backoff;
mod bench;
mod cache_cli;
mod config;
mod db;
mod doctor;
mod extension_version;
mod http;
mod logging;
mod maintenance;
mod man;
mod monitor;
mod output;
mod problems_cli;
mod progress;
mod quoted;
mod relay;
mod report;
mod service;
mod status_cli;
mod top_cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pitstop",
    version,
    about = "PostgreSQL performance toolkit: reports, advice and maintenance"
)]
// As psql: -h is the host; help is --help or -?.
#[command(disable_help_flag = true)]
struct Cli {
    /// Print help.
    #[arg(short = '?', long, global = true, action = clap::ArgAction::Help)]
    help: Option<bool>,

    /// Connection string (`host=… dbname=… sslmode=…` or `postgres://…`). The flags below
    /// override its values; what neither gives comes from the service file (`service=`,
    /// PGSERVICE), then the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
    /// PGOPTIONS, PGAPPNAME, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGCONNECT_TIMEOUT),
    /// the password from ~/.pgpass (PGPASSFILE; ignored unless mode 0600 or stricter).
    #[arg(long, global = true, env = "PITSTOP_DSN")]
    dsn: Option<String>,

    /// Database server host or socket directory.
    #[arg(short = 'h', long, global = true)]
    host: Option<String>,

    /// Database server port.
    #[arg(short = 'p', long, global = true)]
    port: Option<String>,

    /// Database user name.
    #[arg(short = 'U', long, global = true)]
    username: Option<String>,

    /// Database name (or, as with psql, a whole connection string).
    #[arg(short = 'd', long, global = true)]
    dbname: Option<String>,

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
        /// Cancel the report's statement after this long ("30s", "5m"; "0": no limit).
        /// Default: report.statement_timeout (30s), for `bloat --exact`
        /// report.exact_statement_timeout (none).
        #[arg(long, global = true, value_parser = humantime::parse_duration)]
        statement_timeout: Option<std::time::Duration>,
        /// Configuration file for the [report] timeouts (default: /etc/pitstop/pitstop.toml if
        /// it exists, else built-in defaults).
        #[arg(long, global = true, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
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
    /// Check the server, database, role and configuration pitstop runs with: each check's
    /// status (ok, warning, failed, skipped), what it found and the fix. Changes nothing.
    /// Without connection flags it connects as the daemon does (postgres.dsn of the
    /// configuration), so the daemon's role is the one checked. Exit status 1 when a check
    /// failed (warnings do not count).
    Doctor {
        /// The daemon's configuration file, for its Redis and task settings (default:
        /// /etc/pitstop/pitstop.toml if it exists, else built-in defaults).
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
    /// The result cache: its statistics and entries, and invalidating or clearing it (the two
    /// that change it ask first on a terminal; without one they need --yes, else exit status 2).
    Cache {
        #[command(subcommand)]
        cache: cache_cli::Cache,
        /// Configuration file for the [report] statement timeout (default:
        /// /etc/pitstop/pitstop.toml if it exists, else built-in defaults).
        #[arg(long, global = true, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The running daemon's state from its /status: each component (postgres, redis, relay,
    /// monitor), since when and what it says; --json for the whole document. Exit status 1
    /// when the daemon does not answer, 3 when it does but a component is down.
    Status {
        /// The daemon's status URL (default: http://<http.listen>/status).
        #[arg(long)]
        url: Option<String>,
        /// Configuration file for http.listen (default: /etc/pitstop/pitstop.toml if it exists).
        #[arg(long, env = "PITSTOP_CONFIG")]
        config: Option<PathBuf>,
    },
    /// A live view refreshed every --interval: the statements running now and their waits,
    /// the statements that took the most time since the last refresh (pg_stat_statements),
    /// this host's CPU, memory and disk I/O. q (or Esc, Ctrl-C) quits. Not on a terminal (or
    /// with --json): one snapshot, an interval's worth, then exit.
    Top {
        /// Time between refreshes ("1s", "500ms").
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
    },
    /// Load test with pgbench scripts: clients ramped up in stages (or an open-loop rate),
    /// latency percentiles per script and stage, errors by SQLSTATE, the server's view of the
    /// same statements, and --save/--compare between runs.
    Bench(bench::Args),
    /// Write the manual pages (pitstop.1, pitstop-report.1, …) into DIR (packaging).
    #[command(hide = true)]
    ManPages { dir: PathBuf },
}

impl Cli {
    /// The connection flags as psql's.
    fn connection(&self) -> db::conninfo::Explicit<'_> {
        db::conninfo::Explicit {
            dsn: self.dsn.as_deref(),
            host: self.host.as_deref(),
            port: self.port.as_deref(),
            user: self.username.as_deref(),
            dbname: self.dbname.as_deref(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let connection = cli.connection();
    match &cli.command {
        Command::Run { config } => service::run(config.as_deref()),
        Command::CheckConfig { config } => config::check_command(config.as_deref()),
        Command::Doctor { config } => {
            let style =
                if cli.json { output::Style::Json } else { output::Style::Table { wide: true } };
            doctor::command(&connection, config.as_deref(), style)
        }
        Command::Cache { cache, config } => {
            let style =
                if cli.json { output::Style::Json } else { output::Style::Table { wide: false } };
            cache_cli::command(&connection, cache, config.as_deref(), style)
        }
        Command::Status { url, config } => {
            let style =
                if cli.json { output::Style::Json } else { output::Style::Table { wide: true } };
            status_cli::command(url.as_deref(), config.as_deref(), style)
        }
        Command::Top { interval } => top_cli::command(&connection, *interval, cli.json),
        Command::Bench(args) => bench::command(&connection, args, cli.json),
        Command::ManPages { dir } => man::command(<Cli as clap::CommandFactory>::command(), dir),
        Command::Maintenance { dry_run, yes, max_actions, include_reindex, job, config } => {
            let (dry_run, yes, max_actions, include_reindex) =
                (*dry_run, *yes, *max_actions, *include_reindex);
            let style =
                if cli.json { output::Style::Json } else { output::Style::Table { wide: false } };
            let args = maintenance::cli::Args {
                config: config.as_deref(),
                dry_run,
                job: job.as_deref(),
                yes,
                max_actions: max_actions.map(|n| n as usize),
                include_reindex,
            };
            maintenance::cli::command(&connection, &args, style)
        }
        Command::Report { report, wide, statement_timeout, config } => {
            let style =
                if cli.json { output::Style::Json } else { output::Style::Table { wide: *wide } };
            report::command(
                &connection,
                report,
                statement_timeout.map(|t| Some(t).filter(|t| !t.is_zero())),
                config.as_deref(),
                style,
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn connection_flags_are_psqls_and_help_is_question_mark() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "pitstop", "report", "locks", "-h", "db", "-p", "6432", "-U", "alice", "-d", "shop",
        ])
        .unwrap();
        let c = cli.connection();
        assert_eq!(
            (c.host, c.port, c.user, c.dbname),
            (Some("db"), Some("6432"), Some("alice"), Some("shop"))
        );
        let cli = Cli::try_parse_from([
            "pitstop",
            "--host",
            "h",
            "--username",
            "u",
            "--dbname",
            "d",
            "report",
            "locks",
        ])
        .unwrap();
        assert_eq!(
            (cli.connection().host, cli.connection().user, cli.connection().dbname),
            (Some("h"), Some("u"), Some("d"))
        );
        let help = Cli::try_parse_from(["pitstop", "report", "-?"]).err().unwrap();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn statement_timeout_flag_takes_durations_and_zero() {
        for (arg, expected) in [
            ("5m", Some(std::time::Duration::from_secs(300))),
            ("0", Some(std::time::Duration::ZERO)),
        ] {
            let cli = Cli::try_parse_from([
                "pitstop",
                "report",
                "bloat",
                "--exact",
                "--statement-timeout",
                arg,
            ])
            .unwrap();
            let Command::Report { statement_timeout, .. } = cli.command else {
                panic!("not a report")
            };
            assert_eq!(statement_timeout, expected);
        }
        assert!(Cli::try_parse_from(["pitstop", "report", "locks", "--statement-timeout", "soon"])
            .is_err());
    }
}
