//! `[monitor]` (host and PostgreSQL sampling, the in-memory window, `pitstop.host_metrics`
//! writes, memory-growth detection) and `[alerts]` (webhook and `[[alerts.rules]]`).

use super::source::Loader;
use super::values::{Choice, Raw, Setting, WebhookUrl};
use super::{positive, ProfileDefaults};
use crate::monitor::catalog;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    pub enabled: bool,
    pub sample_interval: Duration,
    pub window: Duration,
    pub write_interval: Duration,
    pub retention: Duration,
    pub growth_window: Duration,
    pub growth_min_r2: f64,
    /// Bytes per hour.
    pub growth_min_slope: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// http:// or https://; None: no webhook.
    pub webhook_url: Option<WebhookUrl>,
    pub webhook_timeout: Duration,
    pub webhook_retries: u32,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// One of `catalog::RULE_METRICS`.
    pub metric: String,
    pub comparison: Comparison,
    pub threshold: f64,
    /// How long the condition must hold before the alert fires.
    pub for_: Duration,
    pub severity: Severity,
    /// Only series carrying all of these labels (`{ mount = "/" }`); empty: every series.
    pub labels: Labels,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Choice for Comparison {
    const NAMES: &'static [(&'static str, Self)] = &[
        (">", Comparison::Above),
        (">=", Comparison::AtLeast),
        ("<", Comparison::Below),
        ("<=", Comparison::AtMost),
    ];
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        Comparison::NAMES.iter().find(|(_, c)| *c == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Choice for Severity {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("info", Severity::Info),
        ("warning", Severity::Warning),
        ("critical", Severity::Critical),
    ];
}

impl Severity {
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::NAMES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    pub fn as_str(self) -> &'static str {
        Severity::NAMES.iter().find(|(_, s)| *s == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

/// A TOML table of strings (`labels = { mount = "/" }`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(pub BTreeMap<String, String>);

impl Setting for Labels {
    fn parse(raw: Raw) -> Result<Self, String> {
        match raw {
            Raw::Toml(toml::Value::Table(table)) => table
                .iter()
                .map(|(k, v)| match v {
                    toml::Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!(
                        "label {k:?}: expected a string, found a TOML {}",
                        other.type_str()
                    )),
                })
                .collect::<Result<_, _>>()
                .map(Labels),
            Raw::Toml(other) => Err(format!(
                "expected a table of strings such as {{ mount = \"/\" }}, found a TOML {}",
                other.type_str()
            )),
            Raw::Env(_) => Err("labels cannot be set from the environment".into()),
        }
    }
    fn show(&self) -> toml::Value {
        toml::Value::Table(
            self.0.iter().map(|(k, v)| (k.clone(), toml::Value::String(v.clone()))).collect(),
        )
    }
}

/// The rules used when the file has no `alerts.rules` (`rules = []` turns them off). The same
/// rules are written out in `pitstop.example.toml` (a unit test compares them).
pub const DEFAULT_RULES: &str = r#"
[[alerts.rules]]
name = "cpu"
metric = "cpu_percent"
comparison = ">"
threshold = 80.0
for = "5m"
severity = "warning"
labels = {}

[[alerts.rules]]
name = "memory"
metric = "memory_percent"
comparison = ">"
threshold = 85.0
for = "3m"
severity = "warning"
labels = {}

[[alerts.rules]]
name = "disk"
metric = "disk_percent"
comparison = ">"
threshold = 90.0
for = "1m"
severity = "critical"
labels = {}

[[alerts.rules]]
name = "connections"
metric = "connections_percent"
comparison = ">"
threshold = 90.0
for = "1m"
severity = "warning"
labels = {}

[[alerts.rules]]
name = "xid_wraparound"
metric = "xid_wraparound_percent"
comparison = ">"
threshold = 50.0
for = "0s"
severity = "critical"
labels = {}

[[alerts.rules]]
name = "replication_lag"
metric = "replication_lag_seconds"
comparison = ">"
threshold = 300.0
for = "2m"
severity = "warning"
labels = {}

[[alerts.rules]]
name = "memory_growth"
metric = "process_memory_growth"
comparison = ">"
threshold = 0.0
for = "0s"
severity = "warning"
labels = {}
"#;

pub(super) fn read(l: &mut Loader, p: &ProfileDefaults) -> (MonitorConfig, AlertsConfig) {
    let monitor = MonitorConfig {
        enabled: l.get("monitor.enabled", true),
        sample_interval: l.profiled("monitor.sample_interval", p.sample_interval, |d| {
            if *d < Duration::from_millis(100) {
                Err("must be at least 100ms".into())
            } else {
                Ok(())
            }
        }),
        window: l.checked("monitor.window", Duration::from_secs(3600), positive),
        write_interval: l.checked("monitor.write_interval", Duration::from_secs(60), positive),
        retention: l.checked("monitor.retention", Duration::from_secs(7 * 86_400), positive),
        growth_window: l.checked("monitor.growth_window", Duration::from_secs(3600), positive),
        growth_min_r2: l.checked("monitor.growth_min_r2", 0.9, |r| {
            if (0.0..=1.0).contains(r) {
                Ok(())
            } else {
                Err(format!("{r} is outside 0..=1"))
            }
        }),
        growth_min_slope: l.checked("monitor.growth_min_slope", 50.0 * 1024.0 * 1024.0, |s| {
            if *s > 0.0 {
                Ok(())
            } else {
                Err("must be greater than zero (bytes per hour)".into())
            }
        }),
    };
    for (key, span) in
        [("monitor.window", monitor.window), ("monitor.growth_window", monitor.growth_window)]
    {
        if span < monitor.sample_interval * 4 {
            l.error(
                key,
                format!(
                    "must hold at least 4 samples of monitor.sample_interval ({})",
                    humantime::format_duration(monitor.sample_interval)
                ),
            );
        }
    }

    let webhook_url = l.checked("alerts.webhook_url", WebhookUrl::default(), |_| Ok(()));
    let webhook_timeout = l.checked("alerts.webhook_timeout", Duration::from_secs(5), positive);
    let webhook_retries = l.checked("alerts.webhook_retries", 3u32, |n| {
        if *n <= 20 {
            Ok(())
        } else {
            Err(format!("{n} is more than 20"))
        }
    });
    let mut rules = Vec::new();
    for i in 0..l.entries("alerts.rules", DEFAULT_RULES) {
        let key = |name: &str| format!("alerts.rules[{i}].{name}");
        let rule = Rule {
            name: l.checked(&key("name"), String::new(), super::non_empty),
            metric: l.checked(&key("metric"), String::new(), |m| {
                match catalog::rule_metric_of(m) {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "unknown metric {m:?}; valid metrics: {}",
                        catalog::rule_metric_names().join(", ")
                    )),
                }
            }),
            comparison: l.get(&key("comparison"), Comparison::Above),
            threshold: l.checked(&key("threshold"), 0.0, |t| {
                if *t < 0.0 {
                    Err(format!("{t} is negative; every metric is zero or more"))
                } else {
                    Ok(())
                }
            }),
            for_: l.get(&key("for"), Duration::ZERO),
            severity: l.get(&key("severity"), Severity::Warning),
            labels: l.get(&key("labels"), Labels::default()),
        };
        if !rule.name.is_empty() && rules.iter().any(|r: &Rule| r.name == rule.name) {
            l.error(&key("name"), format!("duplicate rule name {:?}", rule.name));
        }
        rules.push(rule);
    }
    let alerts = AlertsConfig {
        webhook_url: Some(webhook_url).filter(|u| u.expose().is_some()),
        webhook_timeout,
        webhook_retries,
        rules,
    };
    (monitor, alerts)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(text, "test.toml", BTreeMap::new())
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_come_from_the_profile_and_include_the_default_rules() {
        let c = parse("").unwrap();
        assert_eq!(c.monitor.sample_interval, Duration::from_secs(15));
        assert_eq!(
            parse("profile = \"aggressive\"").unwrap().monitor.sample_interval,
            Duration::from_secs(5)
        );
        assert_eq!(
            parse("profile = \"low-overhead\"").unwrap().monitor.sample_interval,
            Duration::from_secs(60)
        );
        let names: Vec<&str> = c.alerts.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "memory",
                "disk",
                "connections",
                "xid_wraparound",
                "replication_lag",
                "memory_growth"
            ]
        );
        let cpu = &c.alerts.rules[0];
        assert_eq!(
            (cpu.comparison, cpu.threshold, cpu.for_, cpu.severity),
            (Comparison::Above, 80.0, Duration::from_secs(300), Severity::Warning)
        );
        assert!(parse("[alerts]\nrules = []\n").unwrap().alerts.rules.is_empty());
        assert_eq!(c.alerts.webhook_url, None);
    }

    #[test]
    fn a_rule_from_the_file_replaces_the_defaults() {
        let c = parse("[[alerts.rules]]\nname = \"root disk\"\nmetric = \"disk_percent\"\ncomparison = \">=\"\nthreshold = 95\nfor = \"30s\"\nseverity = \"critical\"\nlabels = { mount = \"/\" }\n").unwrap();
        assert_eq!(c.alerts.rules.len(), 1);
        let r = &c.alerts.rules[0];
        assert_eq!(
            (r.comparison, r.threshold, r.for_),
            (Comparison::AtLeast, 95.0, Duration::from_secs(30))
        );
        assert_eq!(r.labels.0.get("mount").map(String::as_str), Some("/"));
        let text = c.render();
        assert!(
            text.contains("[[alerts.rules]]\nname = \"root disk\"")
                && text.contains("labels = { mount = \"/\" }"),
            "{text}"
        );
        assert!(parse(&text).is_ok(), "the effective configuration parses back:\n{text}");
    }

    #[test]
    fn bad_rules_are_named_by_their_key_path() {
        let errors = parse(
            "[alerts]\nwebhook_url = \"ftp://x\"\n\
             [[alerts.rules]]\nname = \"a\"\nmetric = \"cpu_percent\"\nthreshold = 1\n\
             [[alerts.rules]]\nname = \"a\"\nmetric = \"cpu\"\ncomparison = \"=>\"\nthreshold = nan\n\
             [[alerts.rules]]\nname = \"b\"\nmetric = \"load1\"\nthreshold = -1\nseverity = \"page\"\nlabels = { mount = 1 }\n",
        )
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "alerts.webhook_url: \"ftp://x\" is not an http:// or https:// URL",
            "alerts.rules[1].metric: unknown metric \"cpu\"; valid metrics: cpu_percent, load1,",
            "alerts.rules[1].comparison: \"=>\" is not one of >, >=, <, <=",
            "alerts.rules[1].threshold: NaN is not a finite number",
            "alerts.rules[1].name: duplicate rule name \"a\"",
            "alerts.rules[2].threshold: -1 is negative",
            "alerts.rules[2].severity: \"page\" is not one of info, warning, critical",
            "alerts.rules[2].labels: label \"mount\": expected a string, found a TOML integer",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
        assert_eq!(errors.len(), 8, "{joined}");
    }

    #[test]
    fn intervals_are_checked() {
        let errors = parse("[monitor]\nsample_interval = \"10s\"\nwindow = \"20s\"\ngrowth_min_r2 = 1.5\ngrowth_min_slope = 0\n").unwrap_err();
        assert!(errors[0].starts_with("monitor.growth_min_r2: 1.5 is outside 0..=1"), "{errors:?}");
        assert!(
            errors[1].starts_with("monitor.growth_min_slope: must be greater than zero"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("monitor.window: must hold at least 4 samples"),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn the_example_file_lists_the_default_rules() {
        let example: toml::Table = include_str!("../../pitstop.example.toml").parse().unwrap();
        let defaults: toml::Table = DEFAULT_RULES.parse().unwrap();
        assert_eq!(example["alerts"]["rules"], defaults["alerts"]["rules"]);
    }
}
