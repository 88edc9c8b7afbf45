//! `pitstop`: the daemon and the DBA's command line. Parsing and dispatch only.

mod db;
mod output;
mod report;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Report { report, wide } => {
                let client = db::connect(cli.dsn.as_deref()).await?;
                let rows = report::run(&client, &report).await?;
                let style = if cli.json { output::Style::Json } else { output::Style::Table { wide } };
                println!("{}", output::render(&rows, style, report.empty_message()));
                Ok::<_, anyhow::Error>(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}
