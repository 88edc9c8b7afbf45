//! What the monitor shows while it runs, shared with the HTTP endpoints: the latest round of
//! samples, the pending and firing alerts, the window's size and the monitor's counters.

use super::alerts::{Alert, Phase};
use super::catalog::{self, RULE_METRICS};
use super::sample::Sample;
use super::window::{Trend, Window};
use crate::service::state::read;
use serde_json::json;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::SystemTime;

/// The unlabelled families whose window the dashboard draws as sparklines.
pub const SPARKLINES: &[&str] = &[
    catalog::CPU,
    catalog::LOAD1,
    catalog::MEM_RATIO,
    catalog::SWAP_RATIO,
    catalog::CONNECTIONS_RATIO,
    catalog::TPS,
    catalog::CACHE_HIT,
    catalog::REPLICATION_LAG,
    catalog::LONGEST_XACT,
];
/// Most points of one sparkline (the window is averaged down to this many).
pub const SPARKLINE_POINTS: usize = 60;

#[derive(Default)]
pub struct Counters {
    pub samples: AtomicU64,
    pub rows_written: AtomicU64,
    pub rows_dropped: AtomicU64,
    pub rows_pruned: AtomicU64,
    pub write_errors: AtomicU64,
    pub postgres_errors: AtomicU64,
    pub webhook_sent: AtomicU64,
    pub webhook_failed: AtomicU64,
}

/// One copy of everything the endpoints show (taken under the lock, rendered outside it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub sampled_at: Option<SystemTime>,
    pub samples: Vec<Sample>,
    pub alerts: Vec<Alert>,
    pub window_series: usize,
    pub window_points: usize,
    /// Minimum, mean and maximum over the window of the series alert rules can watch.
    pub trends: Vec<Trend>,
    /// The window's values of each of `SPARKLINES` that has any, downsampled, oldest first.
    pub sparklines: Vec<(&'static str, Vec<f64>)>,
    /// Why samples and alerts are not recorded in PostgreSQL, if they are not.
    pub not_recorded: Option<String>,
    pub counters: CounterValues,
    /// The extension's signals (`extension`), and how reading each of its sources goes.
    pub extension: Vec<Sample>,
    pub extension_sources: Vec<super::extension::SourceState>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterValues {
    pub samples: u64,
    pub rows_written: u64,
    pub rows_dropped: u64,
    pub rows_pruned: u64,
    pub write_errors: u64,
    pub postgres_errors: u64,
    pub webhook_sent: u64,
    pub webhook_failed: u64,
}

#[derive(Default)]
pub struct Live {
    view: Mutex<View>,
    pub counters: Counters,
}

impl Live {
    /// Publishes a round.
    pub fn publish(
        &self,
        at: SystemTime,
        samples: Vec<Sample>,
        alerts: Vec<Alert>,
        window: &Window,
        not_recorded: Option<String>,
    ) {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.sampled_at = Some(at);
        v.samples = samples;
        v.alerts = alerts;
        v.window_series = window.series_count();
        v.window_points = window.points();
        let families: Vec<&str> = RULE_METRICS.iter().map(|m| m.family).collect();
        v.trends = window.trends(&families);
        v.sparklines = SPARKLINES
            .iter()
            .map(|m| (*m, window.recent(m, SPARKLINE_POINTS)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        v.not_recorded = not_recorded;
    }

    /// Publishes the extension's signals (kept apart from the samples: not in the window, not
    /// written to `pitstop.host_metrics`).
    pub fn publish_extension(
        &self,
        samples: Vec<Sample>,
        sources: Vec<super::extension::SourceState>,
    ) {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.extension = samples;
        v.extension_sources = sources;
    }

    pub fn view(&self) -> View {
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let c = &self.counters;
        v.counters = CounterValues {
            samples: read(&c.samples),
            rows_written: read(&c.rows_written),
            rows_dropped: read(&c.rows_dropped),
            rows_pruned: read(&c.rows_pruned),
            write_errors: read(&c.write_errors),
            postgres_errors: read(&c.postgres_errors),
            webhook_sent: read(&c.webhook_sent),
            webhook_failed: read(&c.webhook_failed),
        };
        v
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The `monitor` part of `/status`.
pub fn status_json(v: &View) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = v
        .alerts
        .iter()
        .map(|a| {
            json!({
                "rule": a.rule,
                "metric": a.metric,
                "labels": a.labels,
                "severity": a.severity.as_str(),
                "state": a.phase.as_str(),
                "value": a.value,
                "threshold": a.threshold,
                "summary": a.summary,
                "started_at": unix(a.started_at),
                "fired_at": a.fired_at.map(unix),
            })
        })
        .collect();
    let c = &v.counters;
    json!({
        "sampled_at": v.sampled_at.map(unix),
        "firing": v.alerts.iter().filter(|a| a.phase == Phase::Firing).count(),
        "pending": v.alerts.iter().filter(|a| a.phase == Phase::Pending).count(),
        "alerts": alerts,
        "recorded": v.not_recorded.is_none(),
        "not_recorded_because": v.not_recorded,
        "window": {
            "series": v.window_series,
            "points": v.window_points,
            "trends": v.trends.iter().map(|t| json!({
                "metric": t.metric,
                "labels": t.labels.iter().map(|(k, val)| (k.to_string(), json!(val))).collect::<serde_json::Map<_, _>>(),
                "min": t.min, "mean": t.mean, "max": t.max, "points": t.points, "since": t.since,
            })).collect::<Vec<_>>(),
        },
        "samples": c.samples,
        "rows": { "written": c.rows_written, "dropped": c.rows_dropped, "pruned": c.rows_pruned },
        "errors": { "write": c.write_errors, "postgres": c.postgres_errors },
        "webhook": { "sent": c.webhook_sent, "failed": c.webhook_failed },
    })
}
