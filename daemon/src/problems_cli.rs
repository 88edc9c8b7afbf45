//! `pitstop report problems`: the console overview's list on the command line — the same
//! problems, order and fixes, computed by the same `Overview::of` from the same SQL, read
//! through the command line's own connection (psql-style flags, the report statement
//! timeout). What is heavy is not computed on every call: the index advice is what
//! `pitstop.suggest_indexes` last remembered unless `--advice` runs it now; bloat is the
//! estimate. The command line has no monitor: alerts come from a running daemon's `/status`
//! (`--daemon-url`, or http.listen of an explicit `--config`), else the output says they are
//! not included.

use crate::config::monitor::Severity;
use crate::db::{self, conninfo::Explicit};
use crate::http::console::overview::{self, Overview};
use crate::http::console::reader::{rows_of, ReadError, Section};
use crate::http::console::{sql, Advice};
use crate::monitor::alerts::{Alert, Phase};
use crate::output;
use crate::output::printable;
use crate::service::state::unix_now;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use tokio_postgres::Client;

#[derive(clap::Args, Debug, PartialEq, Clone)]
pub struct Args {
    /// Run the index advisor now (pitstop.suggest_indexes over pg_stat_statements, which can
    /// take a while) instead of showing the suggestions it last remembered.
    #[arg(long)]
    pub advice: bool,
    /// A running daemon's status URL (http://host:port/status), for its firing alerts.
    #[arg(long, value_name = "URL")]
    pub daemon_url: Option<String>,
}

/// Where the alerts come from: a daemon's /status, or nowhere (and why).
enum Alerts {
    From(String),
    None(String),
}

pub fn command(
    connection: &Explicit<'_>,
    args: &Args,
    timeout: Option<Duration>,
    config: Option<&Path>,
    style: output::Style,
) -> ExitCode {
    let alerts = match (&args.daemon_url, config) {
        (Some(url), _) => Alerts::From(url.clone()),
        (None, Some(path)) => match crate::config::Config::load(Some(path)) {
            Ok(cfg) => Alerts::From(crate::status_cli::status_url(cfg.http.listen)),
            Err(errors) => {
                crate::config::report_errors(&errors);
                return ExitCode::FAILURE;
            }
        },
        (None, None) => Alerts::None("alerts are not included: the command line has no monitor (--daemon-url reads a running daemon's)".into()),
    };
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let target = db::cli_target(connection, timeout, &|name| std::env::var(name).ok())?;
        let (client, mut notices) = db::connect_with_notices(&target).await?;
        crate::extension_version::require(&client).await?;
        collect(&client, &mut notices, args, alerts).await
    });
    let (overview, notes, alerts_included) = match result {
        Ok(found) => found,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            return ExitCode::FAILURE;
        }
    };
    match style {
        output::Style::Json => {
            let mut doc = overview.json();
            doc["alerts_included"] = json!(alerts_included);
            doc["notes"] = json!(notes);
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        output::Style::Table { .. } => {
            println!("{}", table(&overview));
            for u in &overview.unread {
                println!("not read: {}: {}", u.section, printable(&u.explain));
            }
            for note in &notes {
                println!("note: {}", printable(note));
            }
        }
    }
    ExitCode::SUCCESS
}

/// The overview and what the output must add: notes, and whether the alerts are in it.
async fn collect(
    client: &Client,
    notices: &mut db::Notices,
    args: &Args,
    alerts: Alerts,
) -> anyhow::Result<(Overview, Vec<String>, bool)> {
    let mut notes = Vec::new();
    let (alerts, included) = match alerts {
        Alerts::From(url) => match crate::status_cli::fetch(&url).await {
            Ok(status) => (firing_alerts(&status), true),
            Err(e) => {
                notes.push(format!(
                    "alerts are not included: the daemon did not answer at {url}: {e:#}"
                ));
                (Vec::new(), false)
            }
        },
        Alerts::None(why) => {
            notes.push(why);
            (Vec::new(), false)
        }
    };
    let advice = if args.advice {
        advise(client, notices).await
    } else {
        let remembered = rows_of(client, sql::REMEMBERED_SUGGESTIONS, &[]).await;
        let newest = remembered.as_ref().ok().and_then(|rows| {
            rows.iter()
                .filter_map(|r| r.get("suggested_at").and_then(Value::as_f64))
                .reduce(f64::max)
        });
        match (&remembered, newest) {
            (Ok(_), None) => {
                notes.push("no index advice remembered: --advice runs the index advisor now".into())
            }
            (Ok(_), Some(_)) => notes.push(
                "index advice as pitstop.suggest_indexes last remembered it; --advice runs it now"
                    .into(),
            ),
            (Err(e), _) => notes.push(format!(
                "the remembered index advice could not be read ({}); --advice runs the advisor now",
                e.explain()
            )),
        }
        newest.map(|at| Advice {
            computed_at: at,
            took_seconds: 0.0,
            suggestions: remembered,
            unhelped: Ok(Vec::new()),
        })
    };
    let checks = overview::checks(client).await;
    let inputs = overview::read(client, alerts, Some(checks), advice).await;
    Ok((Overview::of(inputs, unix_now()), notes, included))
}

/// `pitstop.suggest_indexes()` now, its progress on stderr while it runs.
async fn advise(client: &Client, notices: &mut db::Notices) -> Option<Advice> {
    let started = Instant::now();
    // The workload the caller's own role recorded names tables as the caller's session finds them.
    let run = db::with_users_search_path(client, async {
        Ok(rows_of(client, sql::SUGGEST_INDEXES, &[]).await)
    });
    let suggestions: Section =
        crate::advisor_progress::run(client, notices, run).await.unwrap_or_else(|e| {
            Err(ReadError { kind: "failed", sqlstate: None, message: format!("{e:#}") })
        });
    Some(Advice {
        computed_at: unix_now(),
        took_seconds: started.elapsed().as_secs_f64(),
        suggestions,
        unhelped: Ok(Vec::new()),
    })
}

/// The firing alerts of a daemon's `/status` document.
fn firing_alerts(status: &Value) -> Vec<Alert> {
    let at = |v: &Value| {
        v.as_f64()
            .filter(|s| *s >= 0.0)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s))
    };
    status["monitor"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .map(|a| Alert {
            rule: a["rule"].as_str().unwrap_or("?").to_string(),
            metric: a["metric"].as_str().unwrap_or("").to_string(),
            labels: serde_json::from_value(a["labels"].clone()).unwrap_or_default(),
            severity: match a["severity"].as_str() {
                Some("critical") => Severity::Critical,
                Some("warning") => Severity::Warning,
                _ => Severity::Info,
            },
            phase: Phase::Firing,
            value: a["value"].as_f64(),
            threshold: a["threshold"].as_f64().unwrap_or(0.0),
            summary: a["summary"].as_str().unwrap_or("").to_string(),
            started_at: at(&a["started_at"]).unwrap_or(SystemTime::UNIX_EPOCH),
            fired_at: at(&a["fired_at"]),
            resolved_at: None,
        })
        .collect()
}

/// The problems as a table: severity, what, evidence, fix (whole: a fix cut short is no fix).
fn table(o: &Overview) -> String {
    if o.problems.is_empty() {
        return "No problems found now.".into();
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["severity", "what", "evidence", "fix"]);
    for p in &o.problems {
        let fix = p.fix.as_deref().unwrap_or_default();
        table.add_row([
            p.severity.to_string(),
            printable(&p.title),
            printable(&p.evidence),
            printable(fix),
        ]);
    }
    let n = o.problems.len();
    format!("{table}\n({n} problem{})", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_firing_alerts_of_the_status_become_problems() {
        let status = json!({"monitor": {"alerts": [
            {"rule": "disk_full", "metric": "m", "labels": {"mount": "/"}, "severity": "critical", "state": "firing", "value": 97.0,
             "threshold": 95.0, "summary": "disk / is 97 % full", "started_at": 10.0, "fired_at": 20.0},
            {"rule": "cpu", "metric": "m", "labels": {}, "severity": "warning", "state": "pending", "value": 90.0, "threshold": 85.0,
             "summary": "cpu", "started_at": 10.0, "fired_at": null}
        ]}});
        let alerts = firing_alerts(&status);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].rule.as_str(), alerts[0].severity, alerts[0].labels["mount"].as_str()),
            ("disk_full", Severity::Critical, "/")
        );
        assert!(firing_alerts(&json!({})).is_empty());
    }

    #[test]
    fn the_table_keeps_each_fix_whole() {
        let fix = format!("CREATE INDEX CONCURRENTLY ON public.orders ({})", "a, ".repeat(40));
        let o = Overview {
            generated_at: 0.0,
            problems: vec![overview::Problem {
                severity: "warning",
                category: "missing_index",
                title: "Missing index".into(),
                evidence: "e".into(),
                fix: Some(fix.clone()),
                link: "/indexes".into(),
            }],
            unread: vec![],
            advice_age_seconds: None,
            checks_age_seconds: None,
            cache: None,
        };
        let text = table(&o);
        assert!(text.contains(&fix), "{text}");
        assert!(text.ends_with("(1 problem)"));
        assert_eq!(table(&Overview { problems: vec![], ..o }), "No problems found now.");
    }
}
