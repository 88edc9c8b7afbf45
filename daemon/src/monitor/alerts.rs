//! Alert rules as a state machine, per rule and label set: nothing → pending (the condition
//! holds) → firing (it held for the rule's `for`) → resolved (it no longer holds, or the
//! series is gone, or the rule was removed). A pending alert whose condition clears before
//! `for` is resolved too, with no firing time: every episode is one row in `pitstop.alerts`,
//! and `for = "0s"` goes through pending and firing in the same round.
//!
//! Pure: the caller passes the clock (`Instant` for durations, `SystemTime` for the
//! timestamps recorded) and the samples; it persists, logs and sends the transitions.

use super::catalog::{self, Combine, Source};
use super::sample::Sample;
use crate::config::monitor::{Rule, Severity};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

/// An alert's labels: those of the series it watches (`mount`, `process`).
pub type AlertLabels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Firing,
    Resolved,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        [Phase::Pending, Phase::Firing, Phase::Resolved].into_iter().find(|p| p.as_str() == text)
    }
}

/// An alert that is pending or firing, or (in a transition) one that just resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub metric: String,
    pub labels: AlertLabels,
    pub severity: Severity,
    pub phase: Phase,
    /// The latest value seen while the condition held (the value at resolution if any).
    pub value: Option<f64>,
    pub threshold: f64,
    pub summary: String,
    pub started_at: SystemTime,
    pub fired_at: Option<SystemTime>,
    pub resolved_at: Option<SystemTime>,
}

/// What one round looked at.
pub struct Inputs<'a> {
    pub samples: &'a [Sample],
    /// More words for an alert's summary, by family and labels (the growing pid).
    pub details: &'a HashMap<(&'static str, AlertLabels), String>,
    /// PostgreSQL metrics were sampled this round; when not, rules on them keep their state.
    pub postgres_sampled: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Open {
    alert: Alert,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct Engine {
    open: BTreeMap<(String, AlertLabels), Open>,
}

impl Engine {
    /// Evaluates every rule; returns the transitions in order (persist and announce them).
    pub fn evaluate(
        &mut self,
        rules: &[Rule],
        inputs: &Inputs,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Alert> {
        let mut transitions = Vec::new();
        let mut held: BTreeSet<(String, AlertLabels)> = BTreeSet::new();
        let mut current: HashMap<(String, AlertLabels), f64> = HashMap::new();
        for rule in rules {
            let Some(metric) = catalog::rule_metric_of(&rule.metric) else { continue };
            let source =
                catalog::family_of(metric.family).map(|f| f.source).unwrap_or(Source::Host);
            if source == Source::Postgres && !inputs.postgres_sampled {
                held.extend(self.open.keys().filter(|(r, _)| *r == rule.name).cloned());
                continue;
            }
            for (labels, value) in values_for(rule, inputs.samples) {
                let key = (rule.name.clone(), labels.clone());
                current.insert(key.clone(), value);
                if !rule.comparison.holds(value, rule.threshold) {
                    continue;
                }
                held.insert(key.clone());
                let detail = inputs.details.get(&(metric.family, labels.clone()));
                let summary = summary(rule, &labels, value, detail.map(String::as_str));
                let open = self.open.entry(key).or_insert_with(|| {
                    let alert = Alert {
                        rule: rule.name.clone(),
                        metric: rule.metric.clone(),
                        labels: labels.clone(),
                        severity: rule.severity,
                        phase: Phase::Pending,
                        value: Some(value),
                        threshold: rule.threshold,
                        summary: summary.clone(),
                        started_at: wall,
                        fired_at: None,
                        resolved_at: None,
                    };
                    transitions.push(alert.clone());
                    Open { alert, since: now }
                });
                let a = &mut open.alert;
                (a.value, a.summary, a.severity, a.threshold) =
                    (Some(value), summary, rule.severity, rule.threshold);
                if a.phase == Phase::Pending
                    && now.saturating_duration_since(open.since) >= rule.for_
                {
                    a.phase = Phase::Firing;
                    a.fired_at = Some(wall);
                    transitions.push(a.clone());
                }
            }
        }
        let cleared: Vec<(String, AlertLabels)> =
            self.open.keys().filter(|k| !held.contains(*k)).cloned().collect();
        for key in cleared {
            if let Some(Open { mut alert, .. }) = self.open.remove(&key) {
                alert.phase = Phase::Resolved;
                alert.resolved_at = Some(wall);
                alert.value = current.get(&key).copied();
                transitions.push(alert);
            }
        }
        transitions
    }

    /// Takes over an alert left open (in `pitstop.alerts`) by an earlier run, `age` after it
    /// started; the next evaluation fires or resolves it as the condition says. Ignored when
    /// this rule and label set is already open here.
    pub fn adopt(&mut self, alert: Alert, age: Duration, now: Instant) {
        let key = (alert.rule.clone(), alert.labels.clone());
        let since = now.checked_sub(age).unwrap_or(now);
        self.open.entry(key).or_insert(Open { alert, since });
    }

    /// The pending and firing alerts, firing first, then by severity.
    pub fn active(&self) -> Vec<Alert> {
        let mut list: Vec<Alert> = self.open.values().map(|o| o.alert.clone()).collect();
        list.sort_by_key(|a| {
            (a.phase != Phase::Firing, std::cmp::Reverse(a.severity), a.rule.clone())
        });
        list
    }
}

/// The values a rule looks at, each with its label set: the samples of its family that
/// carry the rule's labels, scaled, summed into one when the metric says so.
pub fn values_for(rule: &Rule, samples: &[Sample]) -> Vec<(AlertLabels, f64)> {
    let Some(metric) = catalog::rule_metric_of(&rule.metric) else { return Vec::new() };
    let matching = samples.iter().filter(|s| {
        s.metric == metric.family
            && rule.labels.0.iter().all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
    });
    match metric.combine {
        Combine::Each => matching
            .map(|s| {
                (
                    s.labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
                    s.value * metric.scale,
                )
            })
            .collect(),
        Combine::Sum => {
            let values: Vec<f64> = matching.map(|s| s.value).collect();
            if values.is_empty() {
                Vec::new()
            } else {
                vec![(AlertLabels::new(), values.iter().sum::<f64>() * metric.scale)]
            }
        }
    }
}

fn summary(rule: &Rule, labels: &AlertLabels, value: f64, detail: Option<&str>) -> String {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(
            "{{{}}}",
            labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect::<Vec<_>>().join(",")
        )
    };
    let mut text = format!(
        "{}{labels} = {} {} {}",
        rule.metric,
        number(value),
        rule.comparison.symbol(),
        number(rule.threshold)
    );
    if !rule.for_.is_zero() {
        text.push_str(&format!(" for {}", humantime::format_duration(rule.for_)));
    }
    if let Some(detail) = detail {
        text.push_str(&format!(": {detail}"));
    }
    text
}

/// A value for people: at most two decimals, no trailing zeros.
pub fn number(x: f64) -> String {
    let text = format!("{x:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::monitor::{Comparison, Labels};

    fn rule(name: &str, metric: &str, threshold: f64, for_secs: u64) -> Rule {
        Rule {
            name: name.into(),
            metric: metric.into(),
            comparison: Comparison::Above,
            threshold,
            for_: Duration::from_secs(for_secs),
            severity: Severity::Warning,
            labels: Labels::default(),
        }
    }

    struct Clock {
        start: Instant,
        wall: SystemTime,
    }

    impl Clock {
        fn at(&self, secs: u64) -> (Instant, SystemTime) {
            (self.start + Duration::from_secs(secs), self.wall + Duration::from_secs(secs))
        }
    }

    fn clock() -> Clock {
        Clock {
            start: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn run(
        engine: &mut Engine,
        rules: &[Rule],
        samples: &[Sample],
        (now, wall): (Instant, SystemTime),
    ) -> Vec<(String, Phase)> {
        let details = HashMap::new();
        let inputs = Inputs { samples, details: &details, postgres_sampled: true };
        engine.evaluate(rules, &inputs, now, wall).into_iter().map(|a| (a.rule, a.phase)).collect()
    }

    fn cpu(ratio: f64) -> Vec<Sample> {
        vec![Sample::new(catalog::CPU, ratio)]
    }

    fn t(rule: &str, phase: Phase) -> (String, Phase) {
        (rule.to_string(), phase)
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = [rule("cpu", "cpu_percent", 80.0, 300)];
        assert_eq!(run(&mut e, &rules, &cpu(0.5), c.at(0)), []);
        assert_eq!(run(&mut e, &rules, &cpu(0.9), c.at(10)), [t("cpu", Phase::Pending)]);
        assert_eq!(run(&mut e, &rules, &cpu(0.95), c.at(200)), []);
        assert_eq!(e.active()[0].phase, Phase::Pending);
        assert_eq!(run(&mut e, &rules, &cpu(0.95), c.at(310)), [t("cpu", Phase::Firing)]);
        assert_eq!(run(&mut e, &rules, &cpu(0.99), c.at(400)), [], "still firing: nothing new");
        let firing = &e.active()[0];
        assert_eq!((firing.started_at, firing.fired_at), (c.at(10).1, Some(c.at(310).1)));
        assert!(firing.summary.starts_with("cpu_percent = 99 > 80 for 5m"), "{}", firing.summary);
        let details = HashMap::new();
        let resolved = e.evaluate(
            &rules,
            &Inputs { samples: &cpu(0.2), details: &details, postgres_sampled: true },
            c.at(500).0,
            c.at(500).1,
        );
        assert_eq!(resolved.len(), 1);
        let r = &resolved[0];
        assert_eq!(
            (r.phase, r.value, r.started_at, r.fired_at, r.resolved_at),
            (Phase::Resolved, Some(20.0), c.at(10).1, Some(c.at(310).1), Some(c.at(500).1))
        );
        assert!(e.active().is_empty());
    }

    #[test]
    fn pending_that_clears_resolves_without_firing() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = [rule("cpu", "cpu_percent", 80.0, 60)];
        assert_eq!(run(&mut e, &rules, &cpu(0.9), c.at(0)), [t("cpu", Phase::Pending)]);
        assert_eq!(run(&mut e, &rules, &cpu(0.1), c.at(30)), [t("cpu", Phase::Resolved)]);
    }

    #[test]
    fn flapping_starts_a_new_episode_and_restarts_the_for_clock() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = [rule("cpu", "cpu_percent", 80.0, 60)];
        let mut phases = Vec::new();
        for (i, ratio) in [0.9, 0.1, 0.9, 0.1, 0.9, 0.9, 0.9].into_iter().enumerate() {
            phases.extend(
                run(&mut e, &rules, &cpu(ratio), c.at(i as u64 * 40)).into_iter().map(|(_, p)| p),
            );
        }
        use Phase::*;
        assert_eq!(
            phases,
            [Pending, Resolved, Pending, Resolved, Pending, Firing],
            "fires 80 s after the last start, not the first"
        );
    }

    #[test]
    fn for_zero_goes_through_pending_to_firing_at_once() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = [rule("cpu", "cpu_percent", 80.0, 0)];
        assert_eq!(
            run(&mut e, &rules, &cpu(0.9), c.at(0)),
            [t("cpu", Phase::Pending), t("cpu", Phase::Firing)]
        );
    }

    #[test]
    fn per_label_set_alerts_label_filters_and_sums() {
        let (c, mut e) = (clock(), Engine::default());
        let disks = |root: f64, data: f64| {
            vec![
                Sample::labelled(catalog::DISK_RATIO, "mount", "/", root),
                Sample::labelled(catalog::DISK_RATIO, "mount", "/data", data),
            ]
        };
        let mut rules = vec![rule("disk", "disk_percent", 90.0, 0)];
        let fired = e.evaluate(
            &rules,
            &Inputs {
                samples: &disks(0.95, 0.97),
                details: &HashMap::new(),
                postgres_sampled: true,
            },
            c.at(0).0,
            c.at(0).1,
        );
        assert_eq!(fired.iter().filter(|a| a.phase == Phase::Firing).count(), 2);
        assert_eq!(fired[1].labels.get("mount").map(String::as_str), Some("/"));
        assert_eq!(run(&mut e, &rules, &disks(0.5, 0.97), c.at(10)), [t("disk", Phase::Resolved)]);
        assert_eq!(e.active().len(), 1);

        rules[0].labels.0.insert("mount".into(), "/".into());
        assert_eq!(
            values_for(&rules[0], &disks(0.5, 0.97)),
            [(AlertLabels::from([("mount".to_string(), "/".to_string())]), 50.0)]
        );
        let conns = vec![
            Sample::labelled(catalog::CONNECTIONS, "state", "active", 3.0),
            Sample::labelled(catalog::CONNECTIONS, "state", "idle", 4.0),
        ];
        assert_eq!(
            values_for(&rule("c", "connections", 0.0, 0), &conns),
            [(AlertLabels::new(), 7.0)]
        );
        assert_eq!(values_for(&rule("c", "connections", 0.0, 0), &[]), []);
    }

    #[test]
    fn postgres_rules_hold_while_postgres_is_not_sampled_and_removed_rules_resolve() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = vec![
            rule("lag", "replication_lag_seconds", 60.0, 0),
            rule("cpu", "cpu_percent", 80.0, 0),
        ];
        let samples =
            vec![Sample::new(catalog::REPLICATION_LAG, 120.0), Sample::new(catalog::CPU, 0.9)];
        assert_eq!(run(&mut e, &rules, &samples, c.at(0)).len(), 4);
        let details = HashMap::new();
        let host_only =
            Inputs { samples: &samples[1..], details: &details, postgres_sampled: false };
        assert_eq!(
            e.evaluate(&rules, &host_only, c.at(10).0, c.at(10).1),
            [],
            "PostgreSQL down: the lag alert stays"
        );
        let after = e.evaluate(&rules[1..], &host_only, c.at(20).0, c.at(20).1);
        assert_eq!(
            after.iter().map(|a| (a.rule.as_str(), a.phase)).collect::<Vec<_>>(),
            [("lag", Phase::Resolved)],
            "its rule is gone"
        );
    }

    #[test]
    fn adopted_alerts_continue_instead_of_starting_over() {
        let (c, mut e) = (clock(), Engine::default());
        let rules = [rule("cpu", "cpu_percent", 80.0, 60)];
        let (now, wall) = c.at(1000);
        let adopted = Alert {
            rule: "cpu".into(),
            metric: "cpu_percent".into(),
            labels: AlertLabels::new(),
            severity: Severity::Warning,
            phase: Phase::Pending,
            value: Some(90.0),
            threshold: 80.0,
            summary: String::new(),
            started_at: wall - Duration::from_secs(50),
            fired_at: None,
            resolved_at: None,
        };
        e.adopt(adopted, Duration::from_secs(50), now);
        assert_eq!(
            run(&mut e, &rules, &cpu(0.9), c.at(1005)),
            [],
            "55 s in: still pending, no new row"
        );
        assert_eq!(run(&mut e, &rules, &cpu(0.9), c.at(1011)), [t("cpu", Phase::Firing)]);
        assert_eq!(e.active()[0].started_at, wall - Duration::from_secs(50));
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(number(80.0), "80");
        assert_eq!(number(93.456), "93.46");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(-0.001), "0");
    }
}
