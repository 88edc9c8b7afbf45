//! `pitstop doctor`: is this server, database, role and configuration ready for pitstop? Each
//! check reports ok, warning, failed or skipped, what it found, and the fix (the statement,
//! setting or command to run). Doctor changes nothing: its session is read-only and every
//! statement is bounded by a short statement_timeout and lock_timeout.
//!
//! Exit status: 0 when no check failed (warnings allowed), 1 when one did (a failed
//! connection too, as with the other commands), 2 for usage errors (clap's).

mod connect;
mod preload;
mod privileges;
mod server;
mod services;

use crate::config::Config;
use crate::db::conninfo::Explicit;
use crate::output::{self, Style};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failed,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the report. `check` names are stable: scripts select on them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub found: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: &str, found: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Ok, found: found.into(), fix: None }
    }
    pub fn skipped(check: &str, why: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Skipped, found: why.into(), fix: None }
    }
    pub fn failed(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            status: Status::Failed,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn warning(check: &str, found: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            status: Status::Warning,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

pub fn command(connection: &Explicit<'_>, config_path: Option<&Path>, style: Style) -> ExitCode {
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let env = |name: &str| std::env::var(name).ok();
    let checks = runtime.block_on(run(connection, config_path, &env));
    println!("{}", render(&checks, style));
    exit_status(&checks)
}

/// Every check, in the order shown.
async fn run(
    connection: &Explicit<'_>,
    config_path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let loaded = Config::load(config_path);
    let mut checks = vec![services::config_check(&loaded)];
    let config = loaded.ok();
    // Without connection flags, the daemon's own connection (postgres.dsn), so that its
    // privileges are those checked; the flags and PG* variables otherwise, as other commands.
    let configured = config.as_ref().and_then(|c| c.postgres.dsn.expose()).map(str::to_string);
    let daemons =
        Explicit { dsn: configured.as_deref(), host: None, port: None, user: None, dbname: None };
    let connection =
        if connection.is_empty() && configured.is_some() { &daemons } else { connection };
    match connect::connect(connection, env).await {
        Err(failed) => {
            checks.push(failed);
            for name in server::CHECKS.iter().chain(privileges::CHECKS) {
                checks.push(Check::skipped(name, "no connection to PostgreSQL"));
            }
        }
        Ok(session) => {
            checks.push(session.check.clone());
            let facts = server::Facts::read(&session.client).await;
            checks.extend(server::checks(&facts, &session.target.tls));
            checks.extend(
                privileges::checks(&session.client, facts.as_ref().ok(), config.as_ref()).await,
            );
        }
    }
    checks.push(services::redis_check(config.as_ref()).await);
    checks
}

fn render(checks: &[Check], style: Style) -> String {
    let rows: Vec<Map<String, Value>> = checks
        .iter()
        .map(|c| {
            let mut row = Map::new();
            row.insert("check".into(), c.check.clone().into());
            row.insert("status".into(), c.status.as_str().into());
            row.insert("found".into(), c.found.clone().into());
            row.insert("fix".into(), c.fix.clone().map_or(Value::Null, Value::String));
            row
        })
        .collect();
    output::render(&rows, style, "no checks")
}

fn exit_status(checks: &[Check]) -> ExitCode {
    if checks.iter().any(|c| c.status == Status::Failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_an_array_of_checks_and_warnings_do_not_fail() {
        let checks = vec![Check::ok("a", "fine"), Check::warning("b", "meh", "do x")];
        let json: Value = serde_json::from_str(&render(&checks, Style::Json)).unwrap();
        assert_eq!(
            json[1],
            serde_json::json!({"check": "b", "status": "warning", "found": "meh", "fix": "do x"})
        );
        assert_eq!(json[0]["fix"], Value::Null);
        assert_eq!(exit_status(&checks), ExitCode::SUCCESS);
        let failed = [Check::skipped("c", "off"), Check::failed("d", "broken", "repair")];
        assert_eq!(exit_status(&failed), ExitCode::FAILURE);
    }

    #[test]
    fn the_table_shows_fixes_in_full() {
        let long = format!("GRANT SELECT ON {} TO pitstop;", "t".repeat(120));
        let out =
            render(&[Check::failed("x", "missing", long.clone())], Style::Table { wide: true });
        assert!(out.contains(&long), "{out}");
    }
}
