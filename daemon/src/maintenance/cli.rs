//! `pitstop maintenance`: `--dry-run` prints the plan (read-only, works on a standby too);
//! without it the vacuum/analyze/reindex plan — or one configured job with `--job NAME` — runs
//! once now, under the same safety rails and logging as the daemon's runs (windows aside: a
//! run asked for by hand starts now). Exit status 1 when any action failed.

use super::execute::{bound_session, run_job, RunOptions, RunReport};
use super::guard::Busy;
use super::plan::{plan, JobWork, Problem};
use crate::config::{self, Config};
use crate::db;
use crate::output::{self, Style};
use anyhow::anyhow;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// The job name runs from the command line are logged under (without --job).
const CLI_JOB: &str = "cli";

pub fn command(dsn: Option<&str>, config: Option<&Path>, dry_run: bool, job: Option<&str>, style: Style) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            config::report_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let m = &cfg.maintenance;
    let (name, work) = match job {
        None => (CLI_JOB, JobWork::whole_plan(m.plan_thresholds())),
        Some(name) => match m.job(name) {
            Some(j) => (j.name.as_str(), JobWork::of(j)),
            None => {
                let names: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
                eprintln!("error: no maintenance job named {name:?} (configured: {})", if names.is_empty() { "none".into() } else { names.join(", ") });
                return ExitCode::FAILURE;
            }
        },
    };
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let client = db::connect(dsn).await?;
        bound_session(&client, m).await?;
        if dry_run {
            let (planned, note) = plan(&client, &work, true).await.map_err(explain)?;
            let rows: Vec<Map<String, Value>> = planned
                .iter()
                .map(|p| object(json!({"priority": p.priority, "action": p.action, "target": p.target, "command": p.command, "reason": p.reason})))
                .collect();
            let empty = note.unwrap_or_else(|| "Nothing to do: no table or index is past the thresholds.".into());
            println!("{}", output::render(&rows, style, &empty));
            return Ok(true);
        }
        let options = RunOptions {
            job: name,
            work: &work,
            window: None,
            settings: m,
            targets: &Busy::default(),
            cancel: &CancellationToken::new(),
            detail: "pitstop maintenance (command line)".into(),
        };
        let report = run_job(&client, &options).await.map_err(explain)?;
        print_report(&report, style);
        Ok::<_, anyhow::Error>(report.outcome != super::log::Outcome::Failed)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            ExitCode::FAILURE
        }
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

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
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
    let line = format!("run {} (job {}): {}, {}", report.run_id, report.job, report.outcome.as_str(), report.detail);
    if !rows.is_empty() {
        println!("{}", output::render(&rows, style, ""));
    }
    println!("{line}");
}
