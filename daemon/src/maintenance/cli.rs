//! `pitstop maintenance`: `--dry-run` prints the plan (read-only, works on a standby too);
//! without it the vacuum/analyze plan (REINDEX only with `--include-reindex`) — or one
//! configured job with `--job NAME` — runs once now, under the same safety rails and logging
//! as the daemon's runs (windows aside: a run asked for by hand starts now).
//!
//! It is safe to type: without `--yes` the plan is shown and a terminal is asked to confirm;
//! with no terminal to ask, nothing runs. Each action is reported on stderr as it starts and
//! ends; the result table (or `--json`) goes to stdout. Ctrl-C cancels the statement running
//! on the server and starts nothing more. Exit status: 0 done, 1 an action failed (or the
//! answer was no), 2 refused (no terminal and no `--yes`), 130 interrupted.

use super::execute::{bound_session, run_planned, ActionReport, Progress, RunOptions, RunReport};
use super::guard::Busy;
use super::log::Outcome;
use super::plan::{self, JobWork, Planned, Problem};
use super::session::Session;
use crate::config::{self, Config};
use crate::db;
use crate::output::{self, Style};
use anyhow::{anyhow, Context};
use serde_json::{json, Map, Value};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// The job name runs from the command line are logged under (without --job).
const CLI_JOB: &str = "cli";

/// Plan actions the command runs without --job unless --include-reindex.
const WITHOUT_REINDEX: &[&str] = &["vacuum_freeze", "vacuum", "analyze"];

/// Exit status when there is no terminal to confirm on and no --yes.
const REFUSED: u8 = 2;
/// Exit status after Ctrl-C, as shells report a command killed by SIGINT.
const INTERRUPTED: u8 = 130;

/// What `pitstop maintenance` was asked to do.
pub struct Args<'a> {
    pub config: Option<&'a Path>,
    pub dry_run: bool,
    pub job: Option<&'a str>,
    /// Run without asking.
    pub yes: bool,
    /// At most this many actions, in the plan's priority order.
    pub max_actions: Option<usize>,
    pub include_reindex: bool,
}

pub fn command(connection: &db::conninfo::Explicit<'_>, args: &Args<'_>, style: Style) -> ExitCode {
    let cfg = match Config::load(args.config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            config::report_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let m = &cfg.maintenance;
    let (name, work) = match args.job {
        None => (CLI_JOB, JobWork::whole_plan(m.plan_thresholds())),
        Some(name) => match m.job(name) {
            Some(j) => (j.name.as_str(), JobWork::of(j)),
            None => {
                let names: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
                eprintln!(
                    "error: no maintenance job named {name:?} (configured: {})",
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                );
                return ExitCode::FAILURE;
            }
        },
    };
    if !args.dry_run && !args.yes && !std::io::stdin().is_terminal() {
        eprintln!(
            "error: refusing to run maintenance without confirmation: stdin is not a terminal to ask on.\n\
             HINT:  pitstop maintenance --dry-run shows the plan; add --yes to run it unattended."
        );
        return ExitCode::from(REFUSED);
    }
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let session = connect(connection).await?;
        let client = &session.client;
        crate::extension_version::require(client).await?;
        bound_session(client, m).await?;
        if args.dry_run {
            let (planned, note) = plan::plan(client, &work, true).await.map_err(explain)?;
            let planned = select(planned, args);
            let empty = note.unwrap_or_else(|| {
                "Nothing to do: no table or index is past the thresholds.".into()
            });
            println!("{}", output::render(&plan_rows(&planned), style, &empty));
            return Ok(ExitCode::SUCCESS);
        }
        plan::check(client, &work, false).await.map_err(explain)?;
        let planned = match plan::actions(client, &work).await {
            Ok((planned, note)) => Ok((select(planned, args), note)),
            // Before a confirmation nothing is logged; with --yes this is a failed run.
            Err(e) if !args.yes => return Err(e.into()),
            Err(e) => Err(e),
        };
        if let (false, Ok((planned, note))) = (args.yes, &planned) {
            if planned.is_empty() {
                eprintln!(
                    "{}",
                    note.as_deref()
                        .unwrap_or("Nothing to do: no table or index is past the thresholds.")
                );
                return Ok(ExitCode::SUCCESS);
            }
            if !confirm(planned)? {
                eprintln!("Nothing was run.");
                return Ok(ExitCode::FAILURE);
            }
        }
        // Installed before the first action starts: from here SIGINT cancels instead of killing.
        let sigint =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let cancel = CancellationToken::new();
        tokio::spawn(interrupt(sigint, cancel.clone()));
        let options = RunOptions {
            job: name,
            work: &work,
            window: None,
            settings: m,
            targets: &Busy::default(),
            cancel: &cancel,
            stopping: "interrupted (Ctrl-C)",
            detail: "pitstop maintenance (command line)".into(),
            progress: Some(&print_progress),
        };
        let report = run_planned(&session, &options, planned).await.map_err(explain)?;
        print_report(&report, style);
        Ok::<_, anyhow::Error>(match report.outcome {
            Outcome::Cancelled => ExitCode::from(INTERRUPTED),
            Outcome::Failed => ExitCode::FAILURE,
            _ if cancel.is_cancelled() => ExitCode::from(INTERRUPTED),
            _ => ExitCode::SUCCESS,
        })
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// A CLI session (the libpq settings and TLS, as `db::connect`) whose warnings are kept;
/// `bound_session` sets its timeouts.
async fn connect(connection: &db::conninfo::Explicit<'_>) -> anyhow::Result<Session> {
    let target = db::cli_target(connection, Some(db::CLI_STATEMENT_TIMEOUT), &|name| {
        std::env::var(name).ok()
    })?;
    let (client, connection, _) = db::open(&target).await?;
    Ok(Session::new(client, connection))
}

/// The actions this command runs: REINDEX only when asked for (by --include-reindex, or a
/// reindex job named with --job), at most --max-actions of them.
fn select(mut planned: Vec<Planned>, args: &Args<'_>) -> Vec<Planned> {
    if args.job.is_none() && !args.include_reindex {
        let before = planned.len();
        planned.retain(|p| WITHOUT_REINDEX.contains(&p.action.as_str()));
        if planned.len() < before {
            let n = before - planned.len();
            eprintln!(
                "note: {n} reindex action{} left out (add --include-reindex to run {})",
                plural(n),
                if n == 1 { "it" } else { "them" }
            );
        }
    }
    if let Some(max) = args.max_actions {
        if planned.len() > max {
            eprintln!("note: the first {max} of {} actions (--max-actions {max})", planned.len());
            planned.truncate(max);
        }
    }
    planned
}

/// Shows the plan on stderr and asks on the terminal whether to run it (default no).
fn confirm(planned: &[Planned]) -> anyhow::Result<bool> {
    // Full commands, unwrapped: what is confirmed is what runs.
    eprintln!("{}", output::render(&plan_rows(planned), Style::Table { wide: true }, ""));
    output::confirm(&match planned.len() {
        1 => "Run this action?".to_string(),
        n => format!("Run these {n} actions?"),
    })
}

/// First SIGINT (Ctrl-C): cancel (the running statement is cancelled on the server, nothing
/// more starts). A second one exits at once.
async fn interrupt(mut sigint: Signal, cancel: CancellationToken) {
    if sigint.recv().await.is_none() {
        return;
    }
    eprintln!("interrupted: cancelling the running statement (Ctrl-C again to quit at once)");
    cancel.cancel();
    if sigint.recv().await.is_some() {
        std::process::exit(i32::from(INTERRUPTED));
    }
}

fn print_progress(event: Progress<'_>) {
    eprintln!("{}", progress_line(&event));
}

/// A progress line, printable and on one line: names and server messages come from the
/// database, where any role may put terminal escapes or a newline in a table's name.
fn progress_line(event: &Progress<'_>) -> String {
    output::one_line(&match event {
        Progress::Start { n, of, action, attempt } => {
            let again = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
            format!(
                "[{n}/{of}] {} {}: started{again}: {}",
                action.action, action.target, action.command
            )
        }
        Progress::End { n, of, report } => {
            format!("[{n}/{of}] {} {}: {}", report.action, report.target, ending(report))
        }
    })
}

/// "ok in 1.2s", "failed after 0.2s: …", "skipped: …", "cancelled after 3s: …".
fn ending(a: &ActionReport) -> String {
    let took = humantime::format_duration(Duration::from_millis(a.duration_ms.round() as u64));
    let why =
        a.error.as_deref().or(a.detail.as_deref()).map(|w| format!(": {w}")).unwrap_or_default();
    match (a.outcome, a.detail.as_deref()) {
        (Outcome::Ok, _) => format!("ok in {took}"),
        // Skip details already start with "skipped" ("skipped: …", "skipped by PostgreSQL: …").
        (Outcome::Skipped, Some(detail)) if detail.starts_with("skipped") => detail.to_string(),
        (Outcome::Skipped, detail) => {
            format!("skipped{}", detail.map(|d| format!(": {d}")).unwrap_or_default())
        }
        (outcome, _) => format!("{} after {took}{why}", outcome.as_str()),
    }
}

fn explain(problem: Problem) -> anyhow::Error {
    match problem {
        Problem::Db(e) => anyhow::Error::from(e),
        Problem::Standby => anyhow!("refusing to run maintenance: {}", Problem::Standby),
        Problem::MissingExtension(_) => anyhow!("{problem}\nHINT:  CREATE EXTENSION pitstop"),
        Problem::Connect(_) => anyhow!("{problem}"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The plan as `--dry-run` and the confirmation show it.
fn plan_rows(planned: &[Planned]) -> Vec<Map<String, Value>> {
    planned
        .iter()
        .map(|p| object(json!({"priority": p.priority, "action": p.action, "target": p.target, "command": p.command, "reason": p.reason})))
        .collect()
}

fn print_report(report: &RunReport, style: Style) {
    if let Style::Json = style {
        println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    let rows: Vec<Map<String, Value>> = report
        .actions
        .iter()
        .map(|a| {
            object(json!({
                "action": a.action,
                "target": a.target,
                "outcome": a.outcome,
                "attempts": a.attempts,
                "duration_ms": (a.duration_ms * 10.0).round() / 10.0,
                "error": a.error,
                "detail": a.detail,
            }))
        })
        .collect();
    let line = output::one_line(&format!(
        "run {} (job {}): {}, {}",
        report.run_id,
        report.job,
        report.outcome.as_str(),
        report.detail
    ));
    if !rows.is_empty() {
        println!("{}", output::render(&rows, style, ""));
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::execute::ActionReport;

    const HOSTILE: &str = "evil.\"x\u{1b}]0;PWNED-TITLE\u{7}\u{1b}[2J\u{1b}[31mFAKE\u{1b}[0m\"";

    fn no_control(line: &str) -> bool {
        !line.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    }

    #[test]
    fn progress_lines_carry_no_terminal_escapes_from_names_or_messages() {
        let planned = Planned {
            priority: 1,
            action: "vacuum".into(),
            target: HOSTILE.into(),
            command: format!("VACUUM (ANALYZE) {HOSTILE}"),
            reason: String::new(),
            work: plan::Work::Snapshot { schema: "public".into() },
        };
        let start = progress_line(&Progress::Start { n: 1, of: 1, action: &planned, attempt: 2 });
        assert!(no_control(&start), "{start:?}");
        assert!(start.starts_with("[1/1] vacuum evil.\"x\u{FFFD}]0;PWNED-TITLE"), "{start:?}");
        let report = ActionReport {
            action: "vacuum".into(),
            target: HOSTILE.into(),
            outcome: Outcome::Failed,
            attempts: 1,
            duration_ms: 200.0,
            error: Some(format!("relation {HOSTILE} does not exist")),
            detail: Some(format!("dropped the invalid index {HOSTILE}")),
        };
        let end = progress_line(&Progress::End { n: 1, of: 1, report: &report });
        assert!(no_control(&end), "{end:?}");
        assert!(end.contains("failed after 200ms: relation evil."), "{end:?}");
        // A name with a newline cannot forge a second progress line.
        let forged = ActionReport {
            target: "public.\"x\n[2/2] reindex public.orders: ok in 0s\"".into(),
            outcome: Outcome::Ok,
            error: None,
            detail: None,
            ..report
        };
        let end = progress_line(&Progress::End { n: 1, of: 2, report: &forged });
        assert!(!end.contains('\n') && !end.contains('\t'), "{end:?}");
        assert!(end.starts_with("[1/2] vacuum public.\"x [2/2] reindex"), "{end:?}");
    }
}
