//! What a run will do, for every kind of job: the rows of `pitstop.maintenance_plan()` (the
//! extension decides which tables need VACUUM, ANALYZE or REINDEX; the daemon never
//! recomputes that), one snapshot of pg_stat_statements, or one prune per history table.
//! `pitstop maintenance --dry-run` prints exactly this list.

use super::command::PlanRow;
use super::prune::HistoryTable;
use super::snapshot;
use crate::config::maintenance::{JobConfig, JobKind, Thresholds};
use std::fmt;
use std::time::Duration;
use tokio_postgres::Client;

const CHECK: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
                            to_regclass('pitstop.maintenance_log') IS NOT NULL, \
                            to_regprocedure('pitstop.maintenance_plan(double precision, bigint, double precision, double precision, bigint)') IS NOT NULL";

const PLAN: &str = "SELECT priority, action, schema::text, relation::text, index_name::text, target, command, reason \
                    FROM pitstop.maintenance_plan($1::float8, $2::bigint, $3::float8, $4::float8, $5::bigint)";

/// Why a run cannot start.
#[derive(Debug)]
pub enum Problem {
    /// No session could be opened.
    Connect(String),
    /// The server is in recovery: nothing can be written, not even the log.
    Standby,
    /// The extension (or the part of it this needs) is not installed.
    MissingExtension(&'static str),
    Db(tokio_postgres::Error),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Connect(e) => f.write_str(e),
            Problem::Standby => f.write_str(
                "the server is a standby (in recovery): maintenance runs on the primary",
            ),
            Problem::MissingExtension(what) => write!(
                f,
                "the pitstop extension is not installed in this database ({what} is missing)"
            ),
            Problem::Db(e) => f.write_str(&crate::db::describe_pg(e)),
        }
    }
}

impl From<tokio_postgres::Error> for Problem {
    fn from(e: tokio_postgres::Error) -> Problem {
        Problem::Db(e)
    }
}

/// What a job does, independent of how it was configured.
#[derive(Debug, Clone)]
pub enum JobWork {
    /// Rows of the plan whose action is in `actions` (empty: every action), at most `max_actions`.
    Plan {
        actions: &'static [&'static str],
        thresholds: Thresholds,
        max_actions: usize,
    },
    Snapshot,
    Prune(Vec<(HistoryTable, Duration)>),
}

impl JobWork {
    pub fn of(job: &JobConfig) -> JobWork {
        match job.kind {
            JobKind::Snapshot => JobWork::Snapshot,
            JobKind::Prune => JobWork::Prune(job.retention.clone()),
            kind => JobWork::Plan {
                actions: kind.plan_actions(),
                thresholds: job.thresholds,
                max_actions: job.max_actions as usize,
            },
        }
    }

    /// The whole vacuum/analyze/reindex plan (`pitstop maintenance` without `--job`).
    pub fn whole_plan(thresholds: Thresholds) -> JobWork {
        JobWork::Plan { actions: &[], thresholds, max_actions: usize::MAX }
    }
}

/// How one planned action is carried out.
#[derive(Debug, Clone)]
pub enum Work {
    Command(PlanRow),
    Snapshot { schema: String },
    Prune { table: HistoryTable, keep: Duration },
}

/// One action a run will take.
#[derive(Debug, Clone)]
pub struct Planned {
    pub priority: i32,
    pub action: String,
    pub target: String,
    pub command: String,
    pub reason: String,
    pub work: Work,
}

/// The actions of `work` now, or why there are none (`Ok((vec![], Some(reason)))`).
/// Fails without the extension, and on a standby unless `on_standby` (a dry run only reads).
pub async fn plan(
    client: &Client,
    work: &JobWork,
    on_standby: bool,
) -> Result<(Vec<Planned>, Option<String>), Problem> {
    check(client, work, on_standby).await?;
    Ok(actions(client, work).await?)
}

/// Whether `work` can run here: not on a standby (unless `on_standby`), and with the parts of
/// the extension it needs.
pub async fn check(client: &Client, work: &JobWork, on_standby: bool) -> Result<(), Problem> {
    let row = client.query_one(CHECK, &[]).await?;
    let (standby, has_log, has_plan): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if standby && !on_standby {
        return Err(Problem::Standby);
    }
    if !has_log {
        return Err(Problem::MissingExtension("pitstop.maintenance_log"));
    }
    if matches!(work, JobWork::Plan { .. }) && !has_plan {
        return Err(Problem::MissingExtension("pitstop.maintenance_plan()"));
    }
    Ok(())
}

/// The actions of `work` (after `check`). Reading the plan is bounded by the session's
/// lock_timeout like everything else.
pub async fn actions(
    client: &Client,
    work: &JobWork,
) -> Result<(Vec<Planned>, Option<String>), tokio_postgres::Error> {
    match work {
        JobWork::Plan { actions, thresholds: t, max_actions } => {
            let min_dead = i64::try_from(t.vacuum_min_dead).unwrap_or(i64::MAX);
            let min_bytes = i64::try_from(t.reindex_min_bytes).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    PLAN,
                    &[
                        &t.vacuum_dead_ratio,
                        &min_dead,
                        &t.analyze_mod_ratio,
                        &t.reindex_bloat_pct,
                        &min_bytes,
                    ],
                )
                .await?;
            let planned = rows
                .iter()
                .map(|r| PlanRow {
                    priority: r.get(0),
                    action: r.get(1),
                    schema: r.get(2),
                    relation: r.get(3),
                    index_name: r.get(4),
                    target: r.get(5),
                    command: r.get(6),
                    reason: r.get::<_, Option<String>>(7).unwrap_or_default(),
                })
                .filter(|row| actions.is_empty() || actions.contains(&row.action.as_str()))
                .take(*max_actions)
                .map(|row| Planned {
                    priority: row.priority,
                    action: row.action.clone(),
                    target: row.target.clone(),
                    command: row.command.clone(),
                    reason: row.reason.clone(),
                    work: Work::Command(row),
                })
                .collect();
            Ok((planned, None))
        }
        JobWork::Snapshot => match snapshot::locate(client).await? {
            None => Ok((Vec::new(), Some(snapshot::MISSING.to_string()))),
            Some(schema) => Ok((
                vec![Planned {
                    priority: 1,
                    action: "snapshot".into(),
                    target: "pitstop.query_snapshots".into(),
                    command: snapshot::DESCRIBE.into(),
                    reason: "statement statistics snapshot".into(),
                    work: Work::Snapshot { schema },
                }],
                None,
            )),
        },
        JobWork::Prune(retention) => {
            let planned = retention
                .iter()
                .map(|(table, keep)| Planned {
                    priority: 1,
                    action: "prune".into(),
                    target: table.qualified(),
                    command: table.describe(*keep),
                    reason: format!("rows older than {}", humantime::format_duration(*keep)),
                    work: Work::Prune { table: *table, keep: *keep },
                })
                .collect();
            Ok((planned, None))
        }
    }
}
