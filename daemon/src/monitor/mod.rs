//! The monitor: every `monitor.sample_interval` it samples the host (`host`) and, over a
//! session of its own, PostgreSQL (`postgres`); keeps a bounded window (`window`); watches
//! process memory for sustained growth (`growth`); evaluates the alert rules (`alerts`),
//! logging each transition and sending firing/resolved ones to the webhook (`webhook`);
//! records samples and alerts in `pitstop.host_metrics` and `pitstop.alerts` (`store`); and
//! publishes the latest round for `/metrics` and `/status` (`live`, `export`).
//!
//! PostgreSQL being down does not stop it: host metrics are still sampled, PostgreSQL ones are
//! absent (rules on them keep their state), writes wait in a bounded buffer, and the session
//! is reopened with backoff. Without the pitstop extension nothing is recorded in PostgreSQL
//! (said once in the log). A reload applies new rules, intervals and limits at once.

pub mod alerts;
pub mod catalog;
pub mod export;
pub mod extension;
pub mod growth;
pub mod host;
pub mod live;
mod postgres;
pub mod sample;
mod store;
mod webhook;
pub mod window;

use crate::backoff::Backoff;
use crate::config::monitor::Severity;
use crate::config::{Config, PostgresConfig};
use crate::db;
use crate::service::state::{add, Health, State};
use alerts::{Alert, Engine, Inputs, Phase};
use growth::Tracker;
use host::HostSampler;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use webhook::Webhook;
use window::Window;

/// How often samples older than `monitor.retention` are pruned (and once after start).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often to look again for the pitstop tables while they are missing.
const TABLES_RECHECK: Duration = Duration::from_secs(60);

pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
    cancel: CancellationToken,
) {
    let webhook = Webhook::spawn(state.live.clone(), cancel.clone());
    let mut monitor: Option<Monitor> = None;
    loop {
        let cfg = config.borrow_and_update().clone();
        if !cfg.monitor.enabled {
            if state.monitor.set(Health::Disabled, "monitor.enabled = false") {
                tracing::info!("monitor: disabled (monitor.enabled = false)");
            }
            monitor = None;
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = config.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let m = monitor
            .get_or_insert_with(|| Monitor::new(cfg.clone(), state.clone(), webhook.clone()));
        m.apply(cfg);
        if m.run(&mut config, &cancel).await == Exit::Cancelled {
            m.close().await;
            return;
        }
    }
}

#[derive(Debug, PartialEq)]
enum Exit {
    Cancelled,
    Disabled,
}

/// Whether this database has the pitstop tables to record into.
#[derive(Debug, Clone, PartialEq)]
enum Recording {
    Unknown,
    Yes,
    No(&'static str),
}

struct Session {
    client: tokio_postgres::Client,
    closed: CancellationToken,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

struct Monitor {
    cfg: Arc<Config>,
    state: Arc<State>,
    webhook: Webhook,
    host_name: String,
    host: Option<HostSampler>,
    postmaster: Option<u32>,
    session: Option<Session>,
    backoff: Backoff,
    retry_at: Instant,
    previous: Option<(postgres::Counters, Instant)>,
    extension: extension::Reader,
    window: Window,
    growth: Tracker,
    engine: Engine,
    store: Store,
    recording: Recording,
    tables_checked: Instant,
    adopted: bool,
    flushed_at: Instant,
    pruned_at: Option<Instant>,
    write_failing: bool,
}

fn growth_params(cfg: &Config) -> growth::Params {
    growth::Params {
        window: cfg.monitor.growth_window,
        min_r2: cfg.monitor.growth_min_r2,
        min_slope: cfg.monitor.growth_min_slope,
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Monitor {
    fn new(cfg: Arc<Config>, state: Arc<State>, webhook: Webhook) -> Monitor {
        let now = Instant::now();
        Monitor {
            host_name: sysinfo::System::host_name().unwrap_or_else(|_| "localhost".into()),
            host: None,
            postmaster: None,
            session: None,
            backoff: Backoff::new(cfg.reconnect.initial_delay, cfg.reconnect.max_delay),
            retry_at: now,
            previous: None,
            extension: extension::Reader::default(),
            window: Window::new(cfg.monitor.window, cfg.monitor.sample_interval),
            growth: Tracker::new(growth_params(&cfg)),
            engine: Engine::default(),
            store: Store::default(),
            recording: Recording::Unknown,
            tables_checked: now,
            adopted: false,
            flushed_at: now,
            pruned_at: None,
            write_failing: false,
            cfg,
            state,
            webhook,
        }
    }

    /// Takes a (re)loaded configuration: rules and intervals apply from the next round; new
    /// connection settings reopen the session.
    fn apply(&mut self, new: Arc<Config>) {
        let old = &self.cfg.postgres;
        if (PostgresConfig { probe_interval: old.probe_interval, ..new.postgres.clone() }) != *old {
            self.session = None;
            self.retry_at = Instant::now();
        }
        self.window.resize(new.monitor.window, new.monitor.sample_interval);
        self.growth.set_params(growth_params(&new));
        self.backoff = Backoff::new(new.reconnect.initial_delay, new.reconnect.max_delay);
        self.cfg = new;
    }

    async fn run(
        &mut self,
        config: &mut watch::Receiver<Arc<Config>>,
        cancel: &CancellationToken,
    ) -> Exit {
        let mut ticker = tokio::time::interval(self.cfg.monitor.sample_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Exit::Cancelled,
                changed = config.changed() => {
                    if changed.is_err() {
                        return Exit::Cancelled;
                    }
                    let new = config.borrow_and_update().clone();
                    if !new.monitor.enabled {
                        return Exit::Disabled;
                    }
                    if new.monitor.sample_interval != self.cfg.monitor.sample_interval {
                        ticker = tokio::time::interval(new.monitor.sample_interval);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                    self.apply(new);
                }
                _ = ticker.tick() => {
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Exit::Cancelled,
                        _ = self.tick() => {}
                    }
                }
            }
        }
    }

    /// One round: sample, evaluate, record, publish.
    async fn tick(&mut self) {
        let (at, now) = (SystemTime::now(), Instant::now());
        let (sampler, postmaster) = (self.host.take(), self.postmaster);
        let sampled = tokio::task::spawn_blocking(move || {
            let mut sampler = sampler.unwrap_or_else(HostSampler::new);
            let round = sampler.sample(postmaster);
            (sampler, round)
        })
        .await;
        let (mut sampler, host) = match sampled {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!("monitor: host sampling failed: {e}");
                return;
            }
        };
        let mut samples = host.samples;

        self.ensure_session().await;
        let mut postgres_sampled = false;
        if let Some(session) = &self.session {
            let limit = self.cfg.postgres.statement_timeout + Duration::from_secs(5);
            match postgres::read(&session.client, limit).await {
                Ok(reading) => {
                    let before = self
                        .previous
                        .as_ref()
                        .map(|(c, t)| (c, now.saturating_duration_since(*t).as_secs_f64()));
                    samples.extend(postgres::samples(&reading, before));
                    self.previous = Some((reading.counters, now));
                    self.postmaster =
                        sampler.postmaster_of(reading.backend_pid).or(self.postmaster);
                    postgres_sampled = true;
                    let detail = if reading.standby {
                        "sampling the host and PostgreSQL (a standby)"
                    } else {
                        "sampling the host and PostgreSQL"
                    };
                    if self.state.monitor.set(Health::Up, detail) {
                        tracing::info!(
                            "monitor: {detail} every {}",
                            humantime::format_duration(self.cfg.monitor.sample_interval)
                        );
                    }
                }
                Err(e) => self.postgres_failed(e),
            }
        }
        self.read_extension().await;
        self.host = Some(sampler);

        self.growth.observe(unix(at), &host.processes);
        let (growth_samples, details) = growth::to_samples(&self.growth.flagged());
        samples.extend(growth_samples);
        self.window.push(unix(at), &samples);

        let inputs = Inputs { samples: &samples, details: &details, postgres_sampled };
        for alert in self.engine.evaluate(&self.cfg.alerts.rules, &inputs, now, at) {
            self.announce(&alert);
            if self.recording != Recording::No(NO_TABLES) {
                self.store.queue(alert);
            }
        }
        add(&self.state.live.counters.samples, 1);
        if self.recording != Recording::No(NO_TABLES) {
            add(&self.state.live.counters.rows_dropped, self.store.buffer(at, &samples));
        }
        self.record(false).await;
        let not_recorded = match &self.recording {
            Recording::No(why) => Some(why.to_string()),
            _ if self.session.is_none() => {
                Some("PostgreSQL is not reachable (samples wait in a bounded buffer)".to_string())
            }
            _ => None,
        };
        self.state.live.publish_extension(self.extension.samples(), self.extension.states());
        self.state.live.publish(at, samples, self.engine.active(), &self.window, not_recorded);
    }

    /// The extension's signals, when the extension is there (sources that are due only).
    async fn read_extension(&mut self) {
        if self.recording == Recording::No(NO_TABLES) {
            self.extension.clear();
            return;
        }
        let Some(session) = &self.session else {
            self.extension.unreachable();
            return;
        };
        if let Err(extension::SessionLost(e)) =
            self.extension.read(&session.client, self.cfg.postgres.statement_timeout).await
        {
            self.extension.unreachable();
            self.postgres_failed(e);
        }
    }

    /// Opens the session when there is none and the backoff allows; then looks for the tables.
    async fn ensure_session(&mut self) {
        if self.session.as_ref().is_some_and(|s| s.closed.is_cancelled()) {
            self.postgres_failed("connection closed".into());
        }
        if self.session.is_some() || Instant::now() < self.retry_at {
            return;
        }
        match db::connect_daemon(&self.cfg.postgres, "pitstop monitor").await {
            Ok((client, connection)) => {
                let (closed, driver) = db::drive(connection);
                self.session = Some(Session { client, closed, driver });
                self.backoff.reset();
                self.check_tables().await;
            }
            Err(e) => self.postgres_failed(format!("{e:#}")),
        }
    }

    fn postgres_failed(&mut self, error: String) {
        self.session = None;
        self.previous = None;
        add(&self.state.live.counters.postgres_errors, 1);
        let delay = self.backoff.next_delay();
        self.retry_at = Instant::now() + delay;
        if self.state.monitor.set(Health::Up, format!("sampling the host only; postgres: {error}"))
        {
            tracing::warn!(
                "monitor: postgres: {error}; host metrics are still sampled; retrying in {delay:?}"
            );
        }
    }

    /// Whether the pitstop tables are there; adopts the alerts an earlier run left open.
    async fn check_tables(&mut self) {
        let Some(session) = &self.session else { return };
        self.tables_checked = Instant::now();
        match store::tables_present(&session.client).await {
            Ok(true) => {
                if self.recording == Recording::No(NO_TABLES) {
                    tracing::info!(
                        "monitor: the pitstop tables are there now: recording samples and alerts"
                    );
                }
                self.recording = Recording::Yes;
                if !self.adopted {
                    match store::open_alerts(&session.client).await {
                        Ok(open) => {
                            if !open.is_empty() {
                                tracing::info!(
                                    "monitor: taking over {} open alert(s) from pitstop.alerts",
                                    open.len()
                                );
                            }
                            let now = Instant::now();
                            for (alert, age) in open {
                                self.engine.adopt(alert, age, now);
                            }
                            self.adopted = true;
                        }
                        Err(e) => self.postgres_failed(e),
                    }
                }
            }
            Ok(false) => {
                if self.recording != Recording::No(NO_TABLES) {
                    tracing::warn!("monitor: {NO_TABLES}: samples and alerts are not recorded in PostgreSQL (they are still on /metrics, /status and in this log)");
                    self.store = Store::default();
                }
                self.recording = Recording::No(NO_TABLES);
            }
            Err(e) => self.postgres_failed(e),
        }
    }

    /// Writes what waits: alert transitions at once, samples every write_interval (or now,
    /// with `flush_now`); prunes.
    async fn record(&mut self, flush_now: bool) {
        if self.session.is_none() {
            return;
        }
        if self.recording != Recording::Yes {
            if self.tables_checked.elapsed() >= TABLES_RECHECK {
                self.check_tables().await;
            }
            return;
        }
        let Some(session) = &self.session else { return };
        let counters = &self.state.live.counters;
        let mut error = self.store.write_alerts(&session.client).await.err();
        if error.is_none()
            && (flush_now || self.flushed_at.elapsed() >= self.cfg.monitor.write_interval)
        {
            self.flushed_at = Instant::now();
            match self.store.flush(&session.client, &self.host_name).await {
                Ok(done) => add(&counters.rows_written, done.written),
                Err((e, done)) => {
                    add(&counters.rows_written, done.written);
                    add(&counters.rows_dropped, done.dropped);
                    error = Some(e);
                }
            }
        }
        if error.is_none() && self.pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            self.pruned_at = Some(Instant::now());
            match store::prune(&session.client, self.cfg.monitor.retention).await {
                Ok(n) => {
                    add(&counters.rows_pruned, n);
                    if n > 0 {
                        tracing::debug!(
                            "monitor: pruned {n} samples older than {}",
                            humantime::format_duration(self.cfg.monitor.retention)
                        );
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => {
                add(&counters.write_errors, 1);
                if !self.write_failing {
                    tracing::warn!("monitor: cannot record in PostgreSQL: {e} ({} samples waiting; will retry)", self.store.buffered());
                }
                self.write_failing = true;
            }
            None if self.write_failing => {
                tracing::info!("monitor: recording in PostgreSQL again");
                self.write_failing = false;
            }
            None => {}
        }
    }

    /// Logs a transition (by severity) and sends it to the webhook if it is one to send.
    fn announce(&self, a: &Alert) {
        let text = match (a.phase, a.resolved_at) {
            (Phase::Resolved, Some(end)) => {
                let lasted = end
                    .duration_since(a.started_at)
                    .map(|d| Duration::from_secs(d.as_secs()))
                    .unwrap_or_default();
                let now = a
                    .value
                    .map(|v| format!("; {} is now {}", a.metric, alerts::number(v)))
                    .unwrap_or_default();
                format!(
                    "monitor: alert {} resolved ({}) after {}{now} (was: {})",
                    a.rule,
                    a.severity.as_str(),
                    humantime::format_duration(lasted),
                    a.summary
                )
            }
            _ => format!(
                "monitor: alert {} {} ({}): {}",
                a.rule,
                a.phase.as_str(),
                a.severity.as_str(),
                a.summary
            ),
        };
        match (a.phase, a.severity) {
            (Phase::Firing, Severity::Critical) => tracing::error!("{text}"),
            (Phase::Firing, Severity::Warning) => tracing::warn!("{text}"),
            _ => tracing::info!("{text}"),
        }
        let url = self.cfg.alerts.webhook_url.as_ref().and_then(|u| u.expose());
        if let (Some(url), true) = (url, webhook::is_sent(a)) {
            self.webhook.send(
                url,
                self.cfg.alerts.webhook_timeout,
                self.cfg.alerts.webhook_retries,
                a,
                &self.host_name,
            );
        }
    }

    /// On the way out: what waits is written if that is quick.
    async fn close(&mut self) {
        if self.session.is_none() || self.recording != Recording::Yes {
            return;
        }
        if tokio::time::timeout(Duration::from_secs(1), self.record(true)).await.is_err() {
            tracing::debug!("monitor: could not record the last samples on the way out in time");
        }
    }
}

const NO_TABLES: &str = "the pitstop extension is not installed in this database (no pitstop.host_metrics, pitstop.alerts)";
