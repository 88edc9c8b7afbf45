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
    /// The daemon's own process (`process_*`), where /proc tells.
    pub process: Option<Process>,
}

/// The standard `process_*` values of the daemon, from /proc/self.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
}

/// Clock ticks per second of /proc's times: USER_HZ, which Linux fixes at 100 for userspace.
const USER_HZ: f64 = 100.0;

impl Process {
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Process::parse(&stat, &boot, &status, &limits, open_fds)
    }

    fn parse(stat: &str, boot: &str, status: &str, limits: &str, open_fds: f64) -> Option<Process> {
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
        // Field n of proc(5) (1-based, counting pid and comm) is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let btime: f64 =
            boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
        let rss_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        Some(Process {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: rss_kb * 1024.0,
            virtual_bytes: field(23)?,
            start_time_seconds: btime + field(22)? / USER_HZ,
            open_fds,
            max_fds,
        })
    }
}

impl Snapshot {
    pub fn of(s: &State) -> Snapshot {
        let c = &s.counters;
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            start_time_seconds: s
                .start_time
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
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
            process: Process::read(),
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
    /// A counter family with one sample per value of `label`.
    fn counters(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        self.family(name, "counter", help);
        for (value, n) in values {
            self.sample(name, &format!("{{{label}=\"{value}\"}}"), n);
        }
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::with_capacity(2048));
    let flag = |b: bool| u8::from(b);
    o.family("pitstop_build_info", "gauge", "Build information; the value is always 1.");
    o.sample("pitstop_build_info", &format!("{{version=\"{}\"}}", s.version), 1);
    o.single(
        "pitstop_start_time_seconds",
        "gauge",
        "Start time of the daemon since the Unix epoch.",
        s.start_time_seconds,
    );
    o.single(
        "pitstop_postgres_up",
        "gauge",
        "1 when the daemon's PostgreSQL probe connection works.",
        flag(s.postgres_up),
    );
    o.single(
        "pitstop_redis_up",
        "gauge",
        "1 when the relay is connected to Redis.",
        flag(s.redis_up),
    );
    o.single(
        "pitstop_relay_up",
        "gauge",
        "1 when the relay is connected to both and delivering.",
        flag(s.relay_up),
    );
    o.single(
        "pitstop_relay_delivered_total",
        "counter",
        "Outbox rows applied to Redis (acknowledged).",
        s.delivered,
    );
    o.single(
        "pitstop_relay_batches_total",
        "counter",
        "Batches of outbox rows applied to Redis.",
        s.batches,
    );
    o.single(
        "pitstop_relay_rounds_total",
        "counter",
        "Relay rounds (outbox reads) completed.",
        s.rounds,
    );
    o.single(
        "pitstop_relay_pruned_total",
        "counter",
        "Delivered outbox rows deleted after the retention.",
        s.pruned,
    );
    o.counters(
        "pitstop_relay_errors_total",
        "Relay failures by the component that failed.",
        "component",
        &[("postgres", s.postgres_errors), ("redis", s.redis_errors)],
    );
    o.single(
        "pitstop_relay_lag_seconds",
        "gauge",
        "Age of the oldest row of the last delivered batch when Redis acknowledged it; grows while the relay cannot deliver.",
        s.lag_seconds,
    );
    o.counters(
        "pitstop_config_reloads_total",
        "Configuration reloads (SIGHUP) by result.",
        "result",
        &[("applied", s.reloads_applied), ("rejected", s.reloads_rejected)],
    );
    o.single(
        "pitstop_monitor_up",
        "gauge",
        "1 when the host and PostgreSQL monitor is sampling.",
        flag(s.monitor_up),
    );
    o.0.push_str(&crate::monitor::export::render(&s.monitor));
    if let Some(p) = &s.process {
        o.single(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the daemon.",
            p.cpu_seconds,
        );
        o.single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the daemon.",
            p.resident_bytes,
        );
        o.single(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory of the daemon.",
            p.virtual_bytes,
        );
        o.single(
            "process_start_time_seconds",
            "gauge",
            "Start time of the daemon since the Unix epoch.",
            p.start_time_seconds,
        );
        o.single("process_open_fds", "gauge", "Open file descriptors of the daemon.", p.open_fds);
        if let Some(max) = p.max_fds {
            o.single("process_max_fds", "gauge", "Most file descriptors the daemon may open.", max);
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once_with_help_and_type() {
        let text = render(&Snapshot {
            version: "1.2.3",
            postgres_up: true,
            delivered: 42,
            lag_seconds: 0.25,
            redis_errors: 2,
            ..Default::default()
        });
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

    #[test]
    fn process_values_come_from_proc_in_base_units() {
        let stat = "4242 (pit stop (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 123400 104857600 2000 18446744073709551615";
        let p = Process::parse(
            stat,
            "cpu  1 2 3\nbtime 1700000000\n",
            "Name:\tpitstop\nVmRSS:\t   12345 kB\n",
            "Max open files            1024                 524288               files\n",
            12.0,
        )
        .unwrap();
        assert_eq!(p.cpu_seconds, 3.0, "(250 + 50) ticks at 100 Hz");
        assert_eq!(p.start_time_seconds, 1_700_000_000.0 + 1234.0);
        assert_eq!(
            (p.resident_bytes, p.virtual_bytes, p.open_fds, p.max_fds),
            (12345.0 * 1024.0, 104857600.0, 12.0, Some(1024.0))
        );
        let text = render(&Snapshot { process: Some(p), ..Default::default() });
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes 12641280\n"), "{text}");
        let live = Process::read().expect("/proc/self is readable on Linux");
        assert!(
            live.resident_bytes > 1e6 && live.open_fds >= 3.0 && live.start_time_seconds > 1.6e9,
            "{live:?}"
        );
    }
}
