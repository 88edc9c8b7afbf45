//! One run of a job, the same for the daemon and `pitstop maintenance`, under the safety
//! rails: the session's statement_timeout and lock_timeout are set first; nothing runs on a
//! standby; each plan command must pass the shape check; one action per target at a time
//! (across jobs); actions start only inside the job's window; failures that may pass
//! (lock_timeout, deadlock) are retried with backoff. Every statement is sent alone on an
//! autocommit session — VACUUM and REINDEX CONCURRENTLY refuse to run in a transaction block.
//! A VACUUM or ANALYZE that PostgreSQL skipped with a WARNING is 'skipped', not 'ok'. When the
//! run is cancelled, the statement running is cancelled on the server (as psql does on
//! Ctrl-C), that action is 'cancelled' and no further action starts.
//! The run and every attempt of every action are recorded in `pitstop.maintenance_log`.

use super::command;
use super::guard::Busy;
use super::log::{Entry, Log, Outcome};
use super::plan::{self, JobWork, Planned, Problem, Work};
use super::retry::Retry;
use super::schedule::Window;
use super::session::{self, Session};
use super::{prune, snapshot};
use crate::config::maintenance::MaintenanceConfig;
use crate::db::describe_pg;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What to run and under which limits.
pub struct RunOptions<'a> {
    pub job: &'a str,
    pub work: &'a JobWork,
    /// Actions start only inside it (the daemon); None: any time (the command line).
    pub window: Option<Window>,
    pub settings: &'a MaintenanceConfig,
    /// Targets being acted on, shared by every job of this process.
    pub targets: &'a Busy,
    pub cancel: &'a CancellationToken,
    /// Why actions stop starting once `cancel` fires ("the daemon is stopping").
    pub stopping: &'a str,
    /// Why the run started, for the run's log row.
    pub detail: String,
    /// Told when each action starts and ends (the command line prints it).
    pub progress: Option<&'a (dyn Fn(Progress<'_>) + Sync)>,
}

/// An action starting (each attempt) or ending; `n` counts from 1 up to `of`.
pub enum Progress<'a> {
    Start { n: usize, of: usize, action: &'a Planned, attempt: i32 },
    End { n: usize, of: usize, report: &'a ActionReport },
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub attempts: i32,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub job: String,
    pub outcome: Outcome,
    pub detail: String,
    pub actions: Vec<ActionReport>,
}

/// Bounds every statement of the session by the maintenance timeouts.
pub async fn bound_session(
    client: &Client,
    settings: &MaintenanceConfig,
) -> Result<(), tokio_postgres::Error> {
    let ms = |d: Duration| d.as_millis().max(1);
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config('statement_timeout', '{}', false), \
             pg_catalog.set_config('lock_timeout', '{}', false)",
            ms(settings.statement_timeout),
            ms(settings.lock_timeout)
        ))
        .await
}

/// Reads what `o.work` calls for now and carries it out.
pub async fn run_job(session: &Session, o: &RunOptions<'_>) -> Result<RunReport, Problem> {
    let client = &session.client;
    bound_session(client, o.settings).await?;
    plan::check(client, o.work, false).await?;
    let planned = plan::actions(client, o.work).await;
    run_planned(session, o, planned).await
}

/// Carries out actions already read (with `plan::actions`, after `plan::check` and
/// `bound_session`): the command line shows them and asks before they run. A plan that could
/// not be read is recorded as a failed run.
pub async fn run_planned(
    session: &Session,
    o: &RunOptions<'_>,
    planned: Result<(Vec<Planned>, Option<String>), tokio_postgres::Error>,
) -> Result<RunReport, Problem> {
    let client = &session.client;
    let log = Log::new(client, o.job);
    let started = Instant::now();
    let run_id = log.start_run(Outcome::Running, &o.detail).await?;
    let (planned, note) = match planned {
        Ok(actions) => actions,
        Err(e) => {
            let error = describe_pg(&e);
            warn!("maintenance: job {}: cannot read what to do: {error}", o.job);
            log.finish(
                run_id,
                Outcome::Failed,
                started.elapsed(),
                Some(&error),
                Some("could not read the plan"),
            )
            .await?;
            let detail = format!("could not read the plan: {error}");
            return Ok(RunReport {
                run_id,
                job: o.job.to_string(),
                outcome: Outcome::Failed,
                detail,
                actions: Vec::new(),
            });
        }
    };
    if let Some(note) = note {
        info!("maintenance: job {}: skipped: {note}", o.job);
        log.finish(run_id, Outcome::Skipped, started.elapsed(), None, Some(&note)).await?;
        return Ok(RunReport {
            run_id,
            job: o.job.to_string(),
            outcome: Outcome::Skipped,
            detail: note,
            actions: Vec::new(),
        });
    }
    let mut actions = Vec::new();
    let of = planned.len();
    for (i, p) in planned.iter().enumerate() {
        let closed = o.window.filter(|w| !w.contains_at(o.settings.timezone, chrono::Utc::now()));
        let report = if o.cancel.is_cancelled() {
            skip(&log, run_id, p, o.stopping).await?
        } else if let Some(w) = closed {
            skip(&log, run_id, p, &format!("the window {w} closed")).await?
        } else {
            act(&log, session, run_id, p, o, (i + 1, of)).await?
        };
        if let Some(progress) = o.progress {
            progress(Progress::End { n: i + 1, of, report: &report });
        }
        actions.push(report);
    }
    let count = |outcome| actions.iter().filter(|a| a.outcome == outcome).count();
    let (ok, failed, skipped, cancelled) = (
        count(Outcome::Ok),
        count(Outcome::Failed),
        count(Outcome::Skipped),
        count(Outcome::Cancelled),
    );
    let outcome = if cancelled > 0 || o.cancel.is_cancelled() {
        Outcome::Cancelled
    } else if failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    let detail = match actions.len() {
        0 => "nothing to do".to_string(),
        n => format!(
            "{n} action{}: {ok} ok, {failed} failed, {skipped} skipped{}",
            if n == 1 { "" } else { "s" },
            if cancelled > 0 { format!(", {cancelled} cancelled") } else { String::new() }
        ),
    };
    log.finish(run_id, outcome, started.elapsed(), None, Some(&detail)).await?;
    Ok(RunReport { run_id, job: o.job.to_string(), outcome, detail, actions })
}

fn entry(p: &Planned, attempt: i32) -> Entry<'_> {
    Entry {
        action: &p.action,
        target: Some(&p.target),
        command: Some(&p.command),
        attempt,
        detail: Some(&p.reason),
    }
}

fn report(
    p: &Planned,
    outcome: Outcome,
    attempts: i32,
    took: Duration,
    error: Option<String>,
    detail: Option<String>,
) -> ActionReport {
    ActionReport {
        action: p.action.clone(),
        target: p.target.clone(),
        outcome,
        attempts,
        duration_ms: took.as_secs_f64() * 1000.0,
        error,
        detail,
    }
}

async fn skip(
    log: &Log<'_>,
    run_id: i64,
    p: &Planned,
    why: &str,
) -> Result<ActionReport, tokio_postgres::Error> {
    let detail = format!("skipped: {why}");
    log.action(run_id, &Entry { detail: Some(&detail), ..entry(p, 1) }, Outcome::Skipped, None)
        .await?;
    Ok(report(p, Outcome::Skipped, 0, Duration::ZERO, None, Some(detail)))
}

/// One action: checked, claimed, then attempted until it succeeds, fails for good or is
/// cancelled.
async fn act(
    log: &Log<'_>,
    session: &Session,
    run_id: i64,
    p: &Planned,
    o: &RunOptions<'_>,
    (n, of): (usize, usize),
) -> Result<ActionReport, tokio_postgres::Error> {
    if let Work::Command(row) = &p.work {
        if let Err(why) = command::check(row) {
            warn!("maintenance: job {}: {why}", o.job);
            log.action(run_id, &entry(p, 1), Outcome::Failed, Some(&why)).await?;
            return Ok(report(p, Outcome::Failed, 0, Duration::ZERO, Some(why), None));
        }
    }
    let _claim = match o.targets.try_claim(&p.target, o.job) {
        Ok(claim) => claim,
        Err(holder) => {
            let why = format!("job {holder} is acting on {} right now", p.target);
            info!("maintenance: job {}: {} skipped: {why}", o.job, p.action);
            return skip(log, run_id, p, &why).await;
        }
    };
    let mut retry = Retry::new(o.settings.retries, o.settings.retry_delay);
    let begun = Instant::now();
    let mut attempt = 1;
    loop {
        let id = log.action(run_id, &entry(p, attempt), Outcome::Running, None).await?;
        if let Some(progress) = o.progress {
            progress(Progress::Start { n, of, action: p, attempt });
        }
        let t = Instant::now();
        let copies_before = match &p.work {
            Work::Command(row) if row.action == "reindex" => {
                Some(leftover_copies(&session.client, row).await)
            }
            _ => None,
        };
        session.take_warnings();
        let result = perform(&session.client, &p.work, o.cancel).await;
        let skipped: Vec<String> = session
            .take_warnings()
            .iter()
            .filter(|w| session::is_skip(w.code().code(), w.message()))
            .map(|w| format!("WARNING: {} (SQLSTATE {})", w.message(), w.code().code()))
            .collect();
        // A failed or cancelled REINDEX CONCURRENTLY leaves its invalid copy of the index.
        let cleanup = match (&result, &p.work, copies_before) {
            (Err(_), Work::Command(row), Some(Ok(before))) => {
                Some(drop_new_copies(&session.client, row, &before).await)
            }
            (Err(_), Work::Command(_), Some(Err(e))) => Some(Cleanup::unlisted(&e)),
            _ => None,
        };
        match result {
            Ok(_) if !skipped.is_empty() => {
                let detail = format!("skipped by PostgreSQL: {}", skipped.join("; "));
                log.finish(id, Outcome::Skipped, t.elapsed(), None, Some(&detail)).await?;
                warn!("maintenance: job {}: {} {} {detail}", o.job, p.action, p.target);
                return Ok(report(
                    p,
                    Outcome::Skipped,
                    attempt,
                    begun.elapsed(),
                    None,
                    Some(detail),
                ));
            }
            Ok(detail) => {
                log.finish(id, Outcome::Ok, t.elapsed(), None, detail.as_deref()).await?;
                info!(
                    "maintenance: job {}: {} {} done in {:?}",
                    o.job,
                    p.action,
                    p.target,
                    round(t.elapsed())
                );
                return Ok(report(p, Outcome::Ok, attempt, begun.elapsed(), None, detail));
            }
            Err(e) if o.cancel.is_cancelled() => {
                let error = describe_pg(&e);
                let mut detail = format!("cancelled: {}", o.stopping);
                if let Some(c) = &cleanup {
                    detail = format!("{detail}; {}", c.note);
                }
                log.finish(id, Outcome::Cancelled, t.elapsed(), Some(&error), Some(&detail))
                    .await?;
                info!(
                    "maintenance: job {}: {} {} cancelled after {:?}: {error}",
                    o.job,
                    p.action,
                    p.target,
                    round(t.elapsed())
                );
                return Ok(report(
                    p,
                    Outcome::Cancelled,
                    attempt,
                    begun.elapsed(),
                    Some(error),
                    Some(detail),
                ));
            }
            Err(e) => {
                let error = describe_pg(&e);
                // The row keeps the plan's reason; what the cleanup did follows it.
                let detail = cleanup.as_ref().map(|c| format!("{}; {}", p.reason, c.note));
                log.finish(id, Outcome::Failed, t.elapsed(), Some(&error), detail.as_deref())
                    .await?;
                let delay = retry.after_failure(e.code().map(|c| c.code()));
                // Each attempt would leave one more copy that stays.
                let delay = delay.filter(|_| cleanup.as_ref().is_none_or(|c| c.all_dropped));
                let Some(delay) = delay else {
                    warn!(
                        "maintenance: job {}: {} {} failed (attempt {attempt}): {error}",
                        o.job, p.action, p.target
                    );
                    return Ok(report(
                        p,
                        Outcome::Failed,
                        attempt,
                        begun.elapsed(),
                        Some(error),
                        detail,
                    ));
                };
                info!("maintenance: job {}: {} {} failed (attempt {attempt}): {error}; retrying in {:?}", o.job, p.action, p.target, round(delay));
                tokio::select! {
                    _ = o.cancel.cancelled() => {
                        let detail = format!("cancelled before attempt {}: {}", attempt + 1, o.stopping);
                        log.action(run_id, &Entry { detail: Some(&detail), ..entry(p, attempt + 1) }, Outcome::Cancelled, None).await?;
                        return Ok(report(p, Outcome::Cancelled, attempt, begun.elapsed(), Some(error), Some(detail)));
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
                attempt += 1;
            }
        }
    }
}

/// Whether another session of this database is building an index on the table `t` (or a
/// build whose table this role may not see): its invalid index may be what it is building,
/// not a leftover.
const NO_BUILD_UNDER_WAY: &str =
    "NOT EXISTS (SELECT FROM pg_catalog.pg_stat_progress_create_index p \
      WHERE p.pid <> pg_catalog.pg_backend_pid() AND (p.relid = t.oid OR p.relid IS NULL) \
        AND p.datid = (SELECT d.oid FROM pg_catalog.pg_database d \
                        WHERE d.datname = pg_catalog.current_database()))";

/// The invalid indexes of a reindex row's table named like a copy (`…_ccnew[N]`), with what
/// tells a copy of the row's index: by oid, their quoted qualified name, name, quoted name and
/// definition, and the index's quoted name and definition.
fn candidates() -> String {
    format!(
        "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relname::text, \
                pg_catalog.quote_ident(c.relname), pg_catalog.pg_get_indexdef(c.oid), \
                pg_catalog.quote_ident(o.relname), pg_catalog.pg_get_indexdef(o.oid) \
           FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_catalog.pg_class t ON t.oid = i.indrelid \
           JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
           JOIN pg_catalog.pg_class o ON o.relnamespace = tn.oid AND o.relname = $3 \
           JOIN pg_catalog.pg_index oi ON oi.indexrelid = o.oid AND oi.indrelid = t.oid \
          WHERE NOT i.indisvalid AND tn.nspname = $1 AND t.relname = $2 AND n.oid = tn.oid \
            AND c.oid <> o.oid AND c.relname ~ '_ccnew[0-9]*$' AND {NO_BUILD_UNDER_WAY}"
    )
}

/// Whether `copy` is a name PostgreSQL chooses for `REINDEX INDEX CONCURRENTLY`'s copy of
/// `index` (ChooseRelationName): `<index>_ccnew`, or `<index>_ccnew<N>` when that name is
/// taken, the index's name clipped at a character boundary so that the whole name fits
/// NAMEDATALEN - 1 (63) bytes.
pub fn is_copy_name(index: &str, copy: &str) -> bool {
    let Some(at) = copy.rfind("_ccnew") else { return false };
    let number = &copy[at + "_ccnew".len()..];
    if !number.is_empty()
        && (number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let mut end = index.len().min(63usize.saturating_sub(copy.len() - at));
    while !index.is_char_boundary(end) {
        end -= 1;
    }
    copy[..at] == index[..end]
}

/// The invalid copies of a reindex row's index on its table, by oid with their quoted
/// qualified names: named as PostgreSQL names the copy, defined as the index is apart from
/// the name, and not being built by another session.
async fn leftover_copies(
    client: &Client,
    row: &command::PlanRow,
) -> Result<Vec<(u32, String)>, tokio_postgres::Error> {
    let index = row.index_name.as_deref().unwrap_or_default();
    let rows = client.query(&candidates(), &[&row.schema, &row.relation, &index]).await?;
    Ok(rows
        .iter()
        .filter(|r| {
            let (name, quoted, definition) =
                (r.get::<_, String>(2), r.get::<_, String>(3), r.get::<_, String>(4));
            let (index_quoted, index_definition) = (r.get::<_, String>(5), r.get::<_, String>(6));
            is_copy_name(index, &name)
                && definition.replacen(&quoted, &index_quoted, 1) == index_definition
        })
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// A listed copy's quoted qualified name, looked up again by oid right before it is dropped:
/// None once it is valid, gone, or an index build on its table is under way.
fn still_a_leftover() -> String {
    format!(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
           FROM pg_catalog.pg_index i \
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_catalog.pg_class t ON t.oid = i.indrelid \
          WHERE i.indexrelid = $1 AND NOT i.indisvalid AND {NO_BUILD_UNDER_WAY}"
    )
}

/// What was done about the copies a failed REINDEX left.
struct Cleanup {
    /// For the action's log row.
    note: String,
    /// Whether no copy of this attempt remains.
    all_dropped: bool,
}

impl Cleanup {
    fn unlisted(e: &tokio_postgres::Error) -> Cleanup {
        Cleanup {
            note: format!(
                "the invalid copies this attempt may have left could not be listed: {}",
                describe_pg(e)
            ),
            all_dropped: false,
        }
    }
}

/// Drops the invalid copies of the index that were not there before the attempt, with
/// `DROP INDEX CONCURRENTLY` under the session's lock_timeout and statement_timeout.
async fn drop_new_copies(
    client: &Client,
    row: &command::PlanRow,
    before: &[(u32, String)],
) -> Cleanup {
    let after = match leftover_copies(client, row).await {
        Ok(after) => after,
        Err(e) => return Cleanup::unlisted(&e),
    };
    let mut notes = Vec::new();
    let mut all_dropped = true;
    for (oid, listed) in after.iter().filter(|(oid, _)| !before.iter().any(|(b, _)| b == oid)) {
        let name = match client.query_opt(&still_a_leftover(), &[oid]).await {
            Ok(Some(row)) => row.get::<_, String>(0),
            Ok(None) => {
                notes.push(format!("the index {listed} is valid now, gone, or an index is being built on its table: left alone"));
                continue;
            }
            Err(e) => {
                all_dropped = false;
                notes.push(format!(
                    "the invalid index {listed} the attempt left could not be checked ({}): run DROP INDEX CONCURRENTLY {listed}",
                    describe_pg(&e)
                ));
                continue;
            }
        };
        match client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")).await {
            Ok(()) => notes.push(format!("dropped the invalid index {name} the attempt left")),
            Err(e) => {
                all_dropped = false;
                notes.push(format!(
                    "the invalid index {name} the attempt left could not be dropped ({}): run DROP INDEX CONCURRENTLY {name}",
                    describe_pg(&e)
                ));
            }
        }
    }
    if notes.is_empty() {
        notes.push("the attempt left no invalid index".into());
    }
    Cleanup { note: notes.join("; "), all_dropped }
}

/// Runs one action's statement(s); a detail to record, if any. On cancellation the server is
/// asked to cancel the statement, whose error then ends the action.
async fn perform(
    client: &Client,
    work: &Work,
    cancel: &CancellationToken,
) -> Result<Option<String>, tokio_postgres::Error> {
    let run = async {
        match work {
            Work::Command(row) => client.batch_execute(&row.command).await.map(|()| None),
            Work::Snapshot { schema } => snapshot::take(client, schema)
                .await
                .map(|n| Some(format!("{n} statements recorded"))),
            Work::Prune { table, keep } => {
                prune::prune(client, *table, *keep, cancel).await.map(|n| {
                    Some(format!(
                        "{n} rows older than {} deleted",
                        humantime::format_duration(*keep)
                    ))
                })
            }
        }
    };
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => result,
        _ = cancel.cancelled() => {
            crate::db::cancel(client).await;
            run.await
        }
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::is_copy_name;

    #[test]
    fn only_the_names_postgres_gives_a_copy_are_copies() {
        assert!(is_copy_name("orders_v_idx", "orders_v_idx_ccnew"));
        assert!(is_copy_name("orders_v_idx", "orders_v_idx_ccnew1"));
        assert!(is_copy_name("orders_v_idx", "orders_v_idx_ccnew12"));
        // A prefix of the index's name, another index's copy, or not PostgreSQL's number.
        assert!(!is_copy_name("orders_v_idx", "o_ccnew"));
        assert!(!is_copy_name("orders_v_idx", "_ccnew"));
        assert!(!is_copy_name("orders_v_idx", "orders_v_ccnew"));
        assert!(!is_copy_name("orders_v_idx", "orders_v_idx2_ccnew"));
        assert!(!is_copy_name("orders_v_idx", "orders_v_idx_ccnew01"));
        assert!(!is_copy_name("orders_v_idx", "orders_v_idx_ccnew1x"));
        assert!(!is_copy_name("orders_v_idx", "orders_v_idx_ccnewer"));
        // A long name is clipped to fit 63 bytes with the suffix, at a character boundary.
        let long = "a".repeat(63);
        assert!(is_copy_name(&long, &format!("{}_ccnew", "a".repeat(57))));
        assert!(is_copy_name(&long, &format!("{}_ccnew3", "a".repeat(56))));
        assert!(!is_copy_name(&long, &format!("{}_ccnew3", "a".repeat(55))));
        let wide = format!("{}é", "a".repeat(56));
        assert!(is_copy_name(&wide, &format!("{}_ccnew", "a".repeat(56))));
    }
}
