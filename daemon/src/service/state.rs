//! What the daemon's parts report about themselves, read by /status, /readyz, /metrics and
//! the systemd STATUS= line: each component's health, and the relay's counters.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Starting,
    Up,
    Down,
    Disabled,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Up => "up",
            Health::Down => "down",
            Health::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub state: Health,
    /// Seconds since the Unix epoch when the state last changed.
    pub since: f64,
    /// What is going on, or the last error (never secrets).
    pub detail: String,
}

pub struct Component {
    status: Mutex<ComponentStatus>,
}

impl Component {
    fn new() -> Component {
        Component {
            status: Mutex::new(ComponentStatus {
                state: Health::Starting,
                since: unix_now(),
                detail: String::new(),
            }),
        }
    }

    /// Sets the state; true when state or detail changed (callers log changes only).
    pub fn set(&self, state: Health, detail: impl Into<String>) -> bool {
        let detail = detail.into();
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let changed = s.state != state || s.detail != detail;
        if s.state != state {
            s.since = unix_now();
        }
        s.state = state;
        s.detail = detail;
        changed
    }

    pub fn get(&self) -> ComponentStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn health(&self) -> Health {
        self.get().state
    }
}

/// Monotonic counters and gauges of the relay.
#[derive(Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub batches: AtomicU64,
    pub rounds: AtomicU64,
    pub pruned: AtomicU64,
    pub postgres_errors: AtomicU64,
    pub redis_errors: AtomicU64,
    pub reloads_applied: AtomicU64,
    pub reloads_rejected: AtomicU64,
    /// Age in microseconds of the oldest row of the last delivered batch at acknowledgement.
    lag_micros: AtomicU64,
    /// Microseconds since `State::started` of the last successful round (0: none yet).
    last_round_micros: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub struct State {
    pub started: Instant,
    pub start_time: SystemTime,
    pub postgres: Component,
    pub redis: Component,
    pub relay: Component,
    pub monitor: Component,
    /// The monitor's latest round, alerts and counters.
    pub live: std::sync::Arc<crate::monitor::live::Live>,
    /// Scheduled maintenance, and each job's last and next runs.
    pub maintenance: Component,
    maintenance_jobs: Mutex<Vec<MaintenanceJob>>,
    pub counters: Counters,
    profile: Mutex<&'static str>,
    /// The pitstop extension version in the database, when known.
    extension: Mutex<Option<String>>,
}

impl State {
    pub fn new(profile: &'static str) -> State {
        State {
            started: Instant::now(),
            start_time: SystemTime::now(),
            postgres: Component::new(),
            redis: Component::new(),
            relay: Component::new(),
            monitor: Component::new(),
            live: Default::default(),
            maintenance: Component::new(),
            maintenance_jobs: Mutex::new(Vec::new()),
            counters: Counters::default(),
            profile: Mutex::new(profile),
            extension: Mutex::new(None),
        }
    }

    pub fn profile(&self) -> &'static str {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_profile(&self, profile: &'static str) {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner()) = profile;
    }

    pub fn extension(&self) -> Option<String> {
        self.extension.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_extension(&self, version: Option<String>) {
        *self.extension.lock().unwrap_or_else(|e| e.into_inner()) = version;
    }

    /// A round finished; `lag` is the age of the oldest row it delivered (zero for none).
    pub fn round_done(&self, lag: Duration) {
        self.counters.lag_micros.store(lag.as_micros() as u64, Ordering::Relaxed);
        let at = self.started.elapsed().as_micros().max(1) as u64;
        self.counters.last_round_micros.store(at, Ordering::Relaxed);
    }

    /// How far behind the relay is: the last batch's lag while it runs; while it cannot
    /// deliver, that plus the time since its last successful round.
    pub fn relay_lag(&self) -> Duration {
        let lag = Duration::from_micros(self.counters.lag_micros.load(Ordering::Relaxed));
        let last = self.counters.last_round_micros.load(Ordering::Relaxed);
        match self.relay.health() {
            Health::Up | Health::Disabled => lag,
            _ if last == 0 => self.started.elapsed(),
            _ => lag + self.started.elapsed().saturating_sub(Duration::from_micros(last)),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn maintenance_jobs(&self) -> Vec<MaintenanceJob> {
        self.maintenance_jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the maintenance jobs' status in place.
    pub fn update_maintenance_jobs(&self, change: impl FnOnce(&mut Vec<MaintenanceJob>)) {
        change(&mut self.maintenance_jobs.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// One maintenance job as /status shows it (times in RFC 3339, UTC).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceJob {
    pub name: String,
    pub kind: &'static str,
    pub schedule: String,
    pub enabled: bool,
    pub running: bool,
    pub next_run: Option<String>,
    pub last_run: Option<MaintenanceRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceRun {
    pub started_at: String,
    pub outcome: String,
    pub detail: String,
}

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_reports_changes_only() {
        let c = Component::new();
        assert!(c.set(Health::Down, "refused"));
        assert!(!c.set(Health::Down, "refused"));
        assert!(c.set(Health::Down, "timeout"));
        assert!(c.set(Health::Up, ""));
        assert_eq!(c.health(), Health::Up);
    }

    #[test]
    fn lag_grows_while_the_relay_is_down() {
        let s = State::new("balanced");
        s.relay.set(Health::Up, "");
        s.round_done(Duration::from_millis(3));
        assert_eq!(s.relay_lag(), Duration::from_millis(3));
        s.relay.set(Health::Down, "redis: refused");
        std::thread::sleep(Duration::from_millis(20));
        assert!(s.relay_lag() >= Duration::from_millis(23));
    }
}
