//! The daemon's maintenance task: sleeps until the next job comes due, then starts its run
//! (each run on a session of its own, as its own task) unless the run would overlap the
//! job's previous one or missed its window — such runs are skipped and logged. Occurrences
//! that passed while the daemon could not act are not queued (see `schedule::latest_due`).
//! Follows configuration reloads: schedules are recomputed, runs in flight go on.

use super::execute::{run_job, RunOptions, RunReport};
use super::guard::{Busy, Claim};
use super::log::{Log, Outcome};
use super::plan::{JobWork, Problem};
use super::schedule::{decide, latest_due, Decision};
use super::session::Session;
use crate::config::maintenance::JobConfig;
use crate::config::Config;
use crate::db;
use crate::service::state::{Health, MaintenanceJob, MaintenanceRun, State};
use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The scheduler wakes at least this often, so that wall-clock jumps are noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

const APPLICATION_NAME: &str = "pitstop maintenance";

#[derive(Clone)]
struct Shared {
    state: Arc<State>,
    /// Jobs with a run in flight.
    runs: Busy,
    /// Targets with an action in flight.
    targets: Busy,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// Runs until `cancel` fires; follows configuration reloads.
pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
    cancel: CancellationToken,
) {
    let shared = Shared {
        state,
        runs: Busy::default(),
        targets: Busy::default(),
        cancel: cancel.clone(),
        tasks: TaskTracker::new(),
    };
    let mut announced = String::new();
    loop {
        let cfg = config.borrow_and_update().clone();
        let m = &cfg.maintenance;
        let jobs: Vec<JobConfig> =
            m.jobs.iter().filter(|j| m.enabled && j.enabled).cloned().collect();
        publish_jobs(&shared.state, &cfg);
        let summary = if !m.enabled {
            "disabled (maintenance.enabled = false)".to_string()
        } else if jobs.is_empty() {
            "disabled (no enabled jobs)".to_string()
        } else {
            let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
            format!("scheduling {} in {}", names.join(", "), m.timezone)
        };
        if summary != announced {
            info!("maintenance: {summary}");
            announced = summary.clone();
        }
        if jobs.is_empty() {
            shared.state.maintenance.set(Health::Disabled, summary);
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = config.changed() => if changed.is_err() { break } else { continue },
            }
        }
        shared.state.maintenance.set(Health::Up, summary);
        if schedule(&shared, &cfg, &jobs, &mut config).await {
            break;
        }
    }
    shared.tasks.close();
    shared.tasks.wait().await;
}

/// Fires `jobs` on their schedules until the configuration changes (false) or the daemon
/// stops (true).
async fn schedule(
    shared: &Shared,
    cfg: &Arc<Config>,
    jobs: &[JobConfig],
    config: &mut watch::Receiver<Arc<Config>>,
) -> bool {
    let tz = cfg.maintenance.timezone;
    let mut next: Vec<Option<DateTime<Utc>>> =
        jobs.iter().map(|j| j.schedule.next_after(tz, Utc::now())).collect();
    loop {
        publish_next(&shared.state, jobs, &next);
        let now = Utc::now();
        let wait = next
            .iter()
            .flatten()
            .min()
            .map_or(MAX_SLEEP, |t| (*t - now).to_std().unwrap_or(Duration::ZERO))
            .min(MAX_SLEEP);
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return true,
            changed = config.changed() => return changed.is_err(),
            _ = tokio::time::sleep(wait) => {}
        }
        let now = Utc::now();
        for (job, at) in jobs.iter().zip(next.iter_mut()) {
            let Some(scheduled) = at.filter(|t| *t <= now) else { continue };
            let (due, passed) = latest_due(&job.schedule, tz, scheduled, now);
            if passed > 0 {
                info!("maintenance: job {}: {passed} earlier occurrence(s) passed while the daemon could not start them; running once", job.name);
            }
            *at = job.schedule.next_after(tz, now);
            fire(shared, cfg, job, due, now);
        }
    }
}

/// Starts a run of `job`, due at `due`, or records why it is skipped.
fn fire(
    shared: &Shared,
    cfg: &Arc<Config>,
    job: &JobConfig,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let reason = match decide(job.window.as_ref(), cfg.maintenance.timezone, now) {
        Decision::Skip(reason) => reason,
        Decision::Run => {
            match shared.runs.try_claim(&job.name, &format!("due at {}", rfc3339(due))) {
                Ok(claim) => {
                    shared.tasks.spawn(run_one(
                        shared.clone(),
                        cfg.clone(),
                        job.clone(),
                        due,
                        claim,
                    ));
                    return;
                }
                Err(holder) => format!("its previous run ({holder}) is still going"),
            }
        }
    };
    info!("maintenance: job {}: run due at {} skipped: {reason}", job.name, rfc3339(due));
    shared.tasks.spawn(record_skip(shared.clone(), cfg.clone(), job.name.clone(), reason));
}

async fn run_one(
    shared: Shared,
    cfg: Arc<Config>,
    job: JobConfig,
    due: DateTime<Utc>,
    claim: Claim,
) {
    let started = Utc::now();
    set_job(&shared.state, &job.name, |j| j.running = true);
    debug!("maintenance: job {}: starting (due at {})", job.name, rfc3339(due));
    let work = JobWork::of(&job);
    let result = async {
        let session = connect(&cfg).await?;
        let options = RunOptions {
            job: &job.name,
            work: &work,
            window: job.window,
            settings: &cfg.maintenance,
            targets: &shared.targets,
            cancel: &shared.cancel,
            stopping: "the daemon is stopping",
            detail: format!("scheduled ({}), due at {}", job.schedule.source(), rfc3339(due)),
            progress: None,
        };
        run_job(&session, &options).await
    }
    .await;
    let (outcome, detail) = match &result {
        Ok(RunReport { outcome, detail, run_id, .. }) => {
            info!("maintenance: job {}: run {run_id} {}: {detail}", job.name, outcome.as_str());
            (outcome.as_str(), detail.clone())
        }
        Err(Problem::Standby) => {
            info!("maintenance: job {}: skipped: {}", job.name, Problem::Standby);
            ("skipped", Problem::Standby.to_string())
        }
        Err(e) => {
            warn!("maintenance: job {}: could not run: {e}", job.name);
            ("failed", e.to_string())
        }
    };
    drop(claim);
    set_job(&shared.state, &job.name, |j| {
        j.running = false;
        j.last_run =
            Some(MaintenanceRun { started_at: rfc3339(started), outcome: outcome.into(), detail });
    });
}

/// Records a run that will not happen (overlap, missed window) as a 'skipped' run row.
async fn record_skip(shared: Shared, cfg: Arc<Config>, job: String, reason: String) {
    let started = Utc::now();
    let result = async {
        let client = connect(&cfg).await?.client;
        let standby: bool =
            client.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]).await?.get(0);
        if standby {
            return Err(Problem::Standby);
        }
        Log::new(&client, &job).start_run(Outcome::Skipped, &format!("skipped: {reason}")).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        debug!("maintenance: job {job}: the skipped run is not recorded in pitstop.maintenance_log: {e}");
    }
    set_job(&shared.state, &job, |j| {
        j.last_run = Some(MaintenanceRun {
            started_at: rfc3339(started),
            outcome: "skipped".into(),
            detail: reason,
        });
    });
}

/// A session for one run: the daemon's connection settings; the maintenance timeouts are
/// set on it by `run_job`.
async fn connect(cfg: &Config) -> Result<Session, Problem> {
    let (client, connection) = db::connect_daemon(&cfg.postgres, APPLICATION_NAME)
        .await
        .map_err(|e| Problem::Connect(format!("{e:#}")))?;
    Ok(Session::new(client, connection))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn publish_jobs(state: &State, cfg: &Config) {
    let m = &cfg.maintenance;
    state.update_maintenance_jobs(|jobs| {
        let old = std::mem::take(jobs);
        *jobs = m
            .jobs
            .iter()
            .map(|j| {
                let previous = old.iter().find(|o| o.name == j.name);
                MaintenanceJob {
                    name: j.name.clone(),
                    kind: j.kind.name(),
                    schedule: j.schedule.source().to_string(),
                    enabled: m.enabled && j.enabled,
                    running: previous.is_some_and(|p| p.running),
                    next_run: None,
                    last_run: previous.and_then(|p| p.last_run.clone()),
                }
            })
            .collect();
    });
}

fn publish_next(state: &State, jobs: &[JobConfig], next: &[Option<DateTime<Utc>>]) {
    state.update_maintenance_jobs(|status| {
        for (job, at) in jobs.iter().zip(next) {
            if let Some(s) = status.iter_mut().find(|s| s.name == job.name) {
                s.next_run = at.map(rfc3339);
            }
        }
    });
}

fn set_job(state: &State, name: &str, change: impl FnOnce(&mut MaintenanceJob)) {
    state.update_maintenance_jobs(|jobs| {
        if let Some(job) = jobs.iter_mut().find(|j| j.name == name) {
            change(job);
        }
    });
}
