//! `/metrics` in the Prometheus text format (0.0.4). Low cardinality by design: no label
//! ever carries a key, tag, relation or error text.

use crate::service::state::{self, Health, State};
use std::fmt::Write;

/// The values one scrape shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub version: &'static str,
    pub start_time_seconds: f64,
    pub postgres_up: bool,
    pub redis_up: bool,
    pub relay_up: bool,
    pub monitor_up: bool,
    pub delivered: u64,
    pub batches: u64,
    pub rounds: u64,
    pub pruned: u64,
    pub postgres_errors: u64,
    pub redis_errors: u64,
    pub lag_seconds: f64,
    pub reloads_applied: u64,
    pub reloads_rejected: u64,
    /// The monitor's latest round, alerts and counters (rendered by `monitor::export`).
    pub monitor: crate::monitor::live::View,
}

impl Snapshot {
    pub fn of(s: &State) -> Snapshot {
        let c = &s.counters;
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            start_time_seconds: s.start_time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            postgres_up: s.postgres.health() == Health::Up,
            redis_up: s.redis.health() == Health::Up,
            relay_up: s.relay.health() == Health::Up,
            monitor_up: s.monitor.health() == Health::Up,
            delivered: state::read(&c.delivered),
            batches: state::read(&c.batches),
            rounds: state::read(&c.rounds),
            pruned: state::read(&c.pruned),
            postgres_errors: state::read(&c.postgres_errors),
            redis_errors: state::read(&c.redis_errors),
            lag_seconds: s.relay_lag().as_secs_f64(),
            reloads_applied: state::read(&c.reloads_applied),
            reloads_rejected: state::read(&c.reloads_rejected),
            monitor: s.live.view(),
        }
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::with_capacity(2048));
    let flag = |b: bool| u8::from(b);
    o.family("pitstop_build_info", "gauge", "Build information; the value is always 1.");
    o.sample("pitstop_build_info", &format!("{{version=\"{}\"}}", s.version), 1);
    o.single("pitstop_start_time_seconds", "gauge", "Start time of the daemon since the Unix epoch.", s.start_time_seconds);
    o.single("pitstop_postgres_up", "gauge", "1 when the daemon's PostgreSQL probe connection works.", flag(s.postgres_up));
    o.single("pitstop_redis_up", "gauge", "1 when the relay is connected to Redis.", flag(s.redis_up));
    o.single("pitstop_relay_up", "gauge", "1 when the relay is connected to both and delivering.", flag(s.relay_up));
    o.single("pitstop_relay_delivered_total", "counter", "Outbox rows applied to Redis (acknowledged).", s.delivered);
    o.single("pitstop_relay_batches_total", "counter", "Batches of outbox rows applied to Redis.", s.batches);
    o.single("pitstop_relay_rounds_total", "counter", "Relay rounds (outbox reads) completed.", s.rounds);
    o.single("pitstop_relay_pruned_total", "counter", "Delivered outbox rows deleted after the retention.", s.pruned);
    o.family("pitstop_relay_errors_total", "counter", "Relay failures by the component that failed.");
    o.sample("pitstop_relay_errors_total", "{component=\"postgres\"}", s.postgres_errors);
    o.sample("pitstop_relay_errors_total", "{component=\"redis\"}", s.redis_errors);
    o.single(
        "pitstop_relay_lag_seconds",
        "gauge",
        "Age of the oldest row of the last delivered batch when Redis acknowledged it; grows while the relay cannot deliver.",
        s.lag_seconds,
    );
    o.family("pitstop_config_reloads_total", "counter", "Configuration reloads (SIGHUP) by result.");
    o.sample("pitstop_config_reloads_total", "{result=\"applied\"}", s.reloads_applied);
    o.sample("pitstop_config_reloads_total", "{result=\"rejected\"}", s.reloads_rejected);
    o.single("pitstop_monitor_up", "gauge", "1 when the host and PostgreSQL monitor is sampling.", flag(s.monitor_up));
    o.0.push_str(&crate::monitor::export::render(&s.monitor));
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once_with_help_and_type() {
        let text = render(&Snapshot { version: "1.2.3", postgres_up: true, delivered: 42, lag_seconds: 0.25, redis_errors: 2, ..Default::default() });
        assert!(text.contains("pitstop_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("pitstop_postgres_up 1\n") && text.contains("pitstop_redis_up 0\n"));
        assert!(text.contains("pitstop_relay_delivered_total 42\n"));
        assert!(text.contains("pitstop_relay_lag_seconds 0.25\n"));
        assert!(text.contains("pitstop_relay_errors_total{component=\"redis\"} 2\n"));
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!families.contains(&name), "{name} declared twice");
                assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP");
                families.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(families.contains(&name), "sample {name} before its TYPE");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
            }
        }
        assert!(text.ends_with('\n'));
    }
}
