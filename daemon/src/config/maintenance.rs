//! `[maintenance]` and its `[[maintenance.jobs]]`: when the daemon vacuums, analyzes,
//! reindexes, snapshots pg_stat_statements and prunes its history tables, and the safety
//! settings of those statements. Every error names its key (`maintenance.jobs[1].schedule`).

use super::source::Loader;
use super::values::{Choice, Raw, Setting};
use crate::maintenance::prune::HistoryTable;
use crate::maintenance::schedule::{Cron, Window};
use chrono_tz::Tz;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Master switch for the daemon's scheduled jobs (the CLI works either way).
    pub enabled: bool,
    pub timezone: Tz,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub retries: u32,
    pub retry_delay: Duration,
    pub jobs: Vec<JobConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub name: String,
    pub kind: JobKind,
    pub enabled: bool,
    pub schedule: Cron,
    pub window: Option<Window>,
    /// Plan jobs: at most this many actions per run, in the plan's priority order.
    pub max_actions: u32,
    /// Plan jobs: the thresholds given to `pitstop.maintenance_plan()`.
    pub thresholds: Thresholds,
    /// Prune jobs: how long rows are kept, per history table.
    pub retention: Vec<(HistoryTable, Duration)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobKind {
    Vacuum,
    Analyze,
    Reindex,
    Snapshot,
    Prune,
}

impl Choice for JobKind {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("vacuum", JobKind::Vacuum),
        ("analyze", JobKind::Analyze),
        ("reindex", JobKind::Reindex),
        ("snapshot", JobKind::Snapshot),
        ("prune", JobKind::Prune),
    ];
}

impl JobKind {
    pub fn name(self) -> &'static str {
        JobKind::NAMES.iter().find(|(_, k)| *k == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// The plan actions a job of this kind takes (none: not a plan job).
    pub fn plan_actions(self) -> &'static [&'static str] {
        match self {
            JobKind::Vacuum => &["vacuum_freeze", "vacuum"],
            JobKind::Analyze => &["analyze"],
            JobKind::Reindex => &["reindex"],
            JobKind::Snapshot | JobKind::Prune => &[],
        }
    }
}

/// The arguments of `pitstop.maintenance_plan()`; its defaults unless a job sets them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub vacuum_dead_ratio: f64,
    pub vacuum_min_dead: u64,
    pub analyze_mod_ratio: f64,
    pub reindex_bloat_pct: f64,
    pub reindex_min_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            vacuum_dead_ratio: 0.2,
            vacuum_min_dead: 1000,
            analyze_mod_ratio: 0.1,
            reindex_bloat_pct: 30.0,
            reindex_min_bytes: 10 << 20,
        }
    }
}

impl MaintenanceConfig {
    /// The thresholds `pitstop maintenance` (without --job) plans with: each kind's from the
    /// first job of that kind, else the defaults.
    pub fn plan_thresholds(&self) -> Thresholds {
        let mut t = Thresholds::default();
        let first = |kind| self.jobs.iter().find(|j| j.kind == kind).map(|j| j.thresholds);
        if let Some(v) = first(JobKind::Vacuum) {
            (t.vacuum_dead_ratio, t.vacuum_min_dead) = (v.vacuum_dead_ratio, v.vacuum_min_dead);
        }
        if let Some(a) = first(JobKind::Analyze) {
            t.analyze_mod_ratio = a.analyze_mod_ratio;
        }
        if let Some(r) = first(JobKind::Reindex) {
            (t.reindex_bloat_pct, t.reindex_min_bytes) = (r.reindex_bloat_pct, r.reindex_min_bytes);
        }
        t
    }

    pub fn job(&self, name: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

/// The jobs used when the file has no `[[maintenance.jobs]]` (`jobs = []` turns them off).
/// Keep `pitstop.example.toml` in step (a test compares them).
pub const DEFAULT_JOBS: &str = r#"
[[maintenance.jobs]]
name = "vacuum"
kind = "vacuum"
enabled = true
schedule = "0 1 * * *"
window = "01:00-05:00"
max_actions = 20
dead_ratio = 0.2
min_dead = 1000

[[maintenance.jobs]]
name = "analyze"
kind = "analyze"
enabled = true
schedule = "30 1 * * *"
window = "01:00-05:00"
max_actions = 50
mod_ratio = 0.1

[[maintenance.jobs]]
name = "reindex"
kind = "reindex"
enabled = false
schedule = "0 2 * * Sun"
window = "01:00-05:00"
max_actions = 5
bloat_pct = 30.0
min_bytes = 10485760

[[maintenance.jobs]]
name = "snapshot"
kind = "snapshot"
enabled = true
schedule = "0 * * * *"
window = ""

[[maintenance.jobs]]
name = "prune"
kind = "prune"
enabled = true
schedule = "15 4 * * *"
window = ""
keep = "30days"
retention = {}
"#;

fn positive(d: &Duration) -> Result<(), String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(())
    }
}

fn ratio(x: &f64) -> Result<(), String> {
    if (0.0..=1.0).contains(x) {
        Ok(())
    } else {
        Err(format!("{x} is outside 0..=1 (a fraction, 0.2 = 20 %)"))
    }
}

pub fn read(l: &mut Loader) -> MaintenanceConfig {
    let enabled = l.get("maintenance.enabled", true);
    let timezone = l.checked("maintenance.timezone", "UTC".to_string(), |name| {
        name.parse::<Tz>().map(|_| ()).map_err(|_| {
            format!(
                "{name:?} is not a time zone: use \"UTC\" or an IANA name such as \"Europe/Paris\""
            )
        })
    });
    let timezone = timezone.parse::<Tz>().unwrap_or(Tz::UTC);
    let statement_timeout =
        l.checked("maintenance.statement_timeout", Duration::from_secs(3600), positive);
    let lock_timeout = l.checked("maintenance.lock_timeout", Duration::from_secs(5), positive);
    let retries = l.checked("maintenance.retries", 2u32, |n| {
        if *n <= 10 {
            Ok(())
        } else {
            Err(format!("{n} is outside 0..=10"))
        }
    });
    let retry_delay = l.checked("maintenance.retry_delay", Duration::from_secs(30), positive);

    let count = l.entries("maintenance.jobs", DEFAULT_JOBS);
    let mut jobs: Vec<JobConfig> = Vec::new();
    for i in 0..count {
        let key = |name: &str| format!("maintenance.jobs[{i}].{name}");
        let name = required(l, &key("name"), "a name unique among the jobs", |n| {
            if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                Ok(())
            } else {
                Err(format!("{n:?}: use letters, digits, '_' and '-'"))
            }
        });
        if !name.is_empty() && jobs.iter().any(|j| j.name == name) {
            l.error(
                &key("name"),
                format!("{name:?} is used by another job: job names must be unique"),
            );
        }
        let kind_names = JobKind::NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let kind = required(l, &key("kind"), &format!("one of {kind_names}"), |k| {
            match JobKind::NAMES.iter().any(|(n, _)| n == k) {
                true => Ok(()),
                false => Err(format!("{k:?} is not one of {kind_names}")),
            }
        });
        let kind = JobKind::NAMES.iter().find(|(n, _)| *n == kind).map(|(_, k)| *k);
        let job_enabled = l.get(&key("enabled"), true);
        let schedule =
            required(l, &key("schedule"), "a cron expression such as \"0 3 * * *\"", |s| {
                Cron::parse(s).map(|_| ())
            });
        let window = l.checked(&key("window"), String::new(), |w| {
            if w.is_empty() {
                Ok(())
            } else {
                Window::parse(w).map(|_| ())
            }
        });
        let defaults = Thresholds::default();
        let mut job = JobConfig {
            name,
            kind: kind.unwrap_or(JobKind::Snapshot),
            enabled: job_enabled,
            schedule: Cron::parse(&schedule)
                .unwrap_or_else(|_| Cron::parse("@yearly").expect("valid")),
            window: Window::parse(&window).ok(),
            max_actions: 0,
            thresholds: defaults,
            retention: Vec::new(),
        };
        let actions = |l: &mut Loader, default: u32| {
            l.checked(&key("max_actions"), default, |n| {
                if (1..=10_000).contains(n) {
                    Ok(())
                } else {
                    Err(format!("{n} is outside 1..=10000"))
                }
            })
        };
        let t = &mut job.thresholds;
        match kind {
            Some(JobKind::Vacuum) => {
                job.max_actions = actions(l, 20);
                t.vacuum_dead_ratio =
                    l.checked(&key("dead_ratio"), defaults.vacuum_dead_ratio, ratio);
                t.vacuum_min_dead = l.get(&key("min_dead"), defaults.vacuum_min_dead);
            }
            Some(JobKind::Analyze) => {
                job.max_actions = actions(l, 50);
                t.analyze_mod_ratio =
                    l.checked(&key("mod_ratio"), defaults.analyze_mod_ratio, ratio);
            }
            Some(JobKind::Reindex) => {
                job.max_actions = actions(l, 5);
                t.reindex_bloat_pct =
                    l.checked(&key("bloat_pct"), defaults.reindex_bloat_pct, |p| {
                        if *p > 0.0 && *p < 100.0 {
                            Ok(())
                        } else {
                            Err(format!(
                                "{p} is outside 0..100 (a percentage of the index that is bloat)"
                            ))
                        }
                    });
                t.reindex_min_bytes = l.get(&key("min_bytes"), defaults.reindex_min_bytes);
            }
            Some(JobKind::Prune) => {
                let keep = l.checked(&key("keep"), Duration::from_secs(30 * 86400), positive);
                let overrides = l.checked(&key("retention"), Retention::default(), |r| {
                    match r.0.iter().find(|(_, d)| d.is_zero()) {
                        Some((t, _)) => Err(format!("{}: must be greater than zero", t.name())),
                        None => Ok(()),
                    }
                });
                job.retention = HistoryTable::ALL
                    .iter()
                    .map(|t| {
                        (*t, overrides.0.iter().find(|(o, _)| o == t).map_or(keep, |(_, d)| *d))
                    })
                    .collect();
            }
            Some(JobKind::Snapshot) | None => {}
        }
        jobs.push(job);
    }
    MaintenanceConfig {
        enabled,
        timezone,
        statement_timeout,
        lock_timeout,
        retries,
        retry_delay,
        jobs,
    }
}

/// A string key every job must have: an error when it is missing or empty (once: not again
/// when the value given was rejected by `check`).
fn required(
    l: &mut Loader,
    path: &str,
    what: &str,
    check: impl Fn(&String) -> Result<(), String>,
) -> String {
    let rejected = std::cell::Cell::new(false);
    let value = l.checked(path, String::new(), |v| {
        if v.is_empty() {
            Ok(())
        } else {
            check(v).inspect_err(|_| rejected.set(true))
        }
    });
    if value.is_empty() && !rejected.get() {
        l.error(path, format!("is required: {what}"));
    }
    value
}

/// Per-table retention of a prune job: `{ host_metrics = "7d", alerts = "90d" }`; tables not
/// listed keep rows for the job's `keep`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Retention(Vec<(HistoryTable, Duration)>);

impl Setting for Retention {
    fn parse(raw: Raw) -> Result<Self, String> {
        let names: Vec<&str> = HistoryTable::ALL.iter().map(|t| t.name()).collect();
        let table = match raw {
            Raw::Toml(toml::Value::Table(t)) => t,
            Raw::Toml(other) => {
                return Err(format!(
                    "expected a table such as {{ host_metrics = \"7d\" }}, found a TOML {}",
                    other.type_str()
                ))
            }
            Raw::Env(_) => return Err("set per-table retention in the file".into()),
        };
        let mut out = Vec::new();
        for (name, value) in table {
            let Some(t) = HistoryTable::ALL.iter().find(|t| t.name() == name) else {
                return Err(format!(
                    "{name:?} is not a history table: one of {}",
                    names.join(", ")
                ));
            };
            let d = Duration::parse(Raw::Toml(value)).map_err(|e| format!("{name}: {e}"))?;
            out.push((*t, d));
        }
        Ok(Retention(out))
    }
    fn show(&self) -> toml::Value {
        toml::Value::Table(self.0.iter().map(|(t, d)| (t.name().to_string(), d.show())).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(text, "test.toml", Default::default())
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_vacuum_analyze_snapshot_and_prune_but_do_not_reindex() {
        let c = parse("").unwrap().maintenance;
        assert!(c.enabled);
        assert_eq!(c.timezone, chrono_tz::Tz::UTC);
        let on: Vec<&str> = c.jobs.iter().filter(|j| j.enabled).map(|j| j.name.as_str()).collect();
        assert_eq!(on, ["vacuum", "analyze", "snapshot", "prune"]);
        let vacuum = c.job("vacuum").unwrap();
        assert_eq!(vacuum.window.unwrap().to_string(), "01:00-05:00");
        assert_eq!(vacuum.max_actions, 20);
        let prune = c.job("prune").unwrap();
        assert!(
            prune.retention.iter().all(|(_, d)| d.as_secs() == 30 * 86400)
                && prune.retention.len() == 4
        );
        assert!(
            parse("[maintenance]\njobs = []\n").unwrap().maintenance.jobs.is_empty(),
            "jobs = [] turns the defaults off"
        );
    }

    #[test]
    fn jobs_from_the_file_with_per_kind_thresholds_and_retention() {
        let c = parse(
            "[maintenance]\ntimezone = \"Europe/Paris\"\n\
             [[maintenance.jobs]]\nname = \"v\"\nkind = \"vacuum\"\nschedule = \"*/5 * * * * *\"\ndead_ratio = 0.05\nmin_dead = 10\n\
             [[maintenance.jobs]]\nname = \"p\"\nkind = \"prune\"\nschedule = \"@daily\"\nkeep = \"7d\"\nretention = { alerts = \"90d\" }\n",
        )
        .unwrap()
        .maintenance;
        assert_eq!(c.timezone.name(), "Europe/Paris");
        let v = c.job("v").unwrap();
        assert!(v.enabled && v.window.is_none());
        assert_eq!((v.thresholds.vacuum_dead_ratio, v.thresholds.vacuum_min_dead), (0.05, 10));
        assert_eq!(c.plan_thresholds().vacuum_min_dead, 10);
        assert_eq!(c.plan_thresholds().analyze_mod_ratio, 0.1, "no analyze job: the default");
        let p = c.job("p").unwrap();
        let days = |name: &str| {
            p.retention.iter().find(|(t, _)| t.name() == name).unwrap().1.as_secs() / 86400
        };
        assert_eq!((days("alerts"), days("host_metrics")), (90, 7));
    }

    #[test]
    fn every_bad_job_value_is_named_by_its_key() {
        let errors = parse(
            "[maintenance]\ntimezone = \"Mars/Olympus\"\nretries = 11\n\
             [[maintenance.jobs]]\nname = \"a\"\nkind = \"vacuum\"\nschedule = \"0 3 * * *\"\nwindow = \"03:00-03:00\"\ndead_ratio = 1.5\n\
             [[maintenance.jobs]]\nname = \"a\"\nkind = \"vacuum\"\nschedule = \"every night\"\n\
             [[maintenance.jobs]]\nname = \"c\"\nkind = \"defrag\"\nschedule = \"0 3 * * *\"\n\
             [[maintenance.jobs]]\nname = \"d\"\nkind = \"reindex\"\nschedule = \"0 3 * * *\"\nbloat_pct = -5\nwindow = \"1-5\"\n\
             [[maintenance.jobs]]\nkind = \"prune\"\nschedule = \"0 3 * * *\"\nretention = { logs = \"1d\" }\n\
             [[maintenance.jobs]]\nname = \"g\"\n\
             [[maintenance.jobs]]\nname = \"f\"\nkind = \"snapshot\"\nschedule = \"0 3 * * *\"\nmax_actions = 3\n",
        )
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "maintenance.timezone: \"Mars/Olympus\" is not a time zone",
            "maintenance.retries: 11 is outside 0..=10",
            "maintenance.jobs[0].window: \"03:00-03:00\" ends when it starts",
            "maintenance.jobs[0].dead_ratio: 1.5 is outside 0..=1",
            "maintenance.jobs[1].name: \"a\" is used by another job",
            "maintenance.jobs[1].schedule: \"every night\" has 2 fields",
            "maintenance.jobs[2].kind: \"defrag\" is not one of vacuum, analyze, reindex, snapshot, prune",
            "maintenance.jobs[3].window: \"1-5\" is not a window",
            "maintenance.jobs[3].bloat_pct: -5 is outside 0..100",
            "maintenance.jobs[4].name: is required",
            "maintenance.jobs[4].retention: \"logs\" is not a history table",
            "maintenance.jobs[5].kind: is required",
            "maintenance.jobs[5].schedule: is required",
            "maintenance.jobs[6].max_actions: unknown key",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
        assert_eq!(errors.len(), 14, "{joined}");
        let backwards = parse("[[maintenance.jobs]]\nname = \"n\"\nkind = \"analyze\"\nschedule = \"0 23 * * *\"\nwindow = \"23:00-01:00\"\n")
            .unwrap_err();
        assert!(
            backwards[0]
                .starts_with("maintenance.jobs[0].window: \"23:00-01:00\" ends before it starts"),
            "{backwards:?}"
        );
        let night = parse("[[maintenance.jobs]]\nname = \"n\"\nkind = \"analyze\"\nschedule = \"0 23 * * *\"\nwindow = \"23:00-01:00+1\"\n");
        assert!(night.is_ok(), "{night:?}");
    }

    #[test]
    fn the_effective_configuration_prints_the_jobs_and_parses_back() {
        let c = parse("[[maintenance.jobs]]\nname = \"p\"\nkind = \"prune\"\nschedule = \"0 3 * * *\"\nretention = { alerts = \"90d\" }\n").unwrap();
        let text = c.render();
        assert!(text.contains("[[maintenance.jobs]]\nname = \"p\""), "{text}");
        let again = parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(again.maintenance, c.maintenance);
    }
}
