//! What the monitor records in PostgreSQL: samples batched into `pitstop.host_metrics` (one
//! multi-row INSERT over arrays per flush), pruning after `monitor.retention` in bounded
//! DELETE batches, and alert transitions in `pitstop.alerts` (one row per episode; the unique
//! index on open rows prevents duplicates; rows left open by an earlier run are adopted).
//! Failures are counted and logged by the caller, never fatal; what waits in memory is bounded.

use super::alerts::{Alert, AlertLabels, Phase};
use super::sample::{labels_json, Sample};
use crate::config::monitor::Severity;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};
use tokio_postgres::Client;

const INSERT_SAMPLES: &str = "INSERT INTO pitstop.host_metrics (sampled_at, host, metric, labels, value) \
     SELECT t, $1, m, l::jsonb, v FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::float8[]) AS u(t, m, l, v)";
const PRUNE: &str = "DELETE FROM pitstop.host_metrics WHERE ctid = ANY (ARRAY( \
     SELECT ctid FROM pitstop.host_metrics WHERE sampled_at < now() - make_interval(secs => $1) LIMIT $2))";
const INSERT_ALERT: &str = "INSERT INTO pitstop.alerts \
     (rule, metric, labels, severity, state, value, threshold, summary, started_at, fired_at, resolved_at) \
     VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (rule, labels) WHERE state <> 'resolved' DO NOTHING";
const UPDATE_ALERT: &str = "UPDATE pitstop.alerts SET state = $3, value = coalesce($4, value), severity = $5, threshold = $6, \
     summary = $7, fired_at = $8, resolved_at = $9, updated_at = now() \
     WHERE rule = $1 AND labels = $2::text::jsonb AND state <> 'resolved'";
const OPEN_ALERTS: &str = "SELECT rule, metric, labels::text, severity, state, value, threshold, summary, started_at, fired_at, \
     greatest(extract(epoch FROM now() - started_at), 0)::float8 AS age FROM pitstop.alerts WHERE state <> 'resolved' ORDER BY id";
const TABLES_PRESENT: &str = "SELECT pg_catalog.to_regclass('pitstop.host_metrics') IS NOT NULL \
     AND pg_catalog.to_regclass('pitstop.alerts') IS NOT NULL";

/// Samples waiting to be written, at most this many (the oldest are dropped beyond).
pub const MAX_BUFFERED_ROWS: usize = 100_000;
/// Rows written per INSERT.
const ROWS_PER_INSERT: usize = 5_000;
/// A batch that failed this many times in a row is dropped (a bad row must not block the rest).
const MAX_ATTEMPTS: u32 = 3;
/// Alert transitions waiting to be written, at most.
const MAX_QUEUED_TRANSITIONS: usize = 1_000;
/// Rows deleted per statement while pruning, and statements per prune.
const PRUNE_BATCH: i64 = 10_000;
const PRUNE_BATCHES: usize = 50;

struct Row {
    at: SystemTime,
    metric: &'static str,
    labels: String,
    value: f64,
}

#[derive(Default)]
pub struct Store {
    rows: VecDeque<Row>,
    attempts: u32,
    transitions: VecDeque<Alert>,
}

/// What a flush did.
#[derive(Debug, Default, PartialEq)]
pub struct Flushed {
    pub written: u64,
    pub dropped: u64,
}

impl Store {
    /// Keeps one round's samples for the next flush; returns how many old rows were dropped
    /// to stay within `MAX_BUFFERED_ROWS`.
    pub fn buffer(&mut self, at: SystemTime, samples: &[Sample]) -> u64 {
        self.rows.extend(samples.iter().map(|s| Row {
            at,
            metric: s.metric,
            labels: s.labels_json(),
            value: s.value,
        }));
        let excess = self.rows.len().saturating_sub(MAX_BUFFERED_ROWS);
        self.rows.drain(..excess);
        excess as u64
    }

    pub fn buffered(&self) -> usize {
        self.rows.len()
    }

    /// Writes the buffered rows. On failure the rows stay for the next flush, unless this
    /// batch already failed `MAX_ATTEMPTS` times: then it is dropped (`Flushed::dropped`).
    pub async fn flush(
        &mut self,
        client: &Client,
        host: &str,
    ) -> Result<Flushed, (String, Flushed)> {
        let mut done = Flushed::default();
        while !self.rows.is_empty() {
            let n = self.rows.len().min(ROWS_PER_INSERT);
            let batch = self.rows.range(..n);
            let (mut at, mut metric, mut labels, mut value) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for r in batch {
                at.push(r.at);
                metric.push(r.metric);
                labels.push(r.labels.as_str());
                value.push(r.value);
            }
            match client.execute(INSERT_SAMPLES, &[&host, &at, &metric, &labels, &value]).await {
                Ok(_) => {
                    self.rows.drain(..n);
                    self.attempts = 0;
                    done.written += n as u64;
                }
                Err(e) => {
                    self.attempts += 1;
                    if self.attempts >= MAX_ATTEMPTS {
                        self.rows.drain(..n);
                        self.attempts = 0;
                        done.dropped += n as u64;
                    }
                    return Err((crate::db::describe_pg(&e), done));
                }
            }
        }
        Ok(done)
    }

    /// Queues a transition for `write_alerts` (dropping the oldest beyond the bound).
    pub fn queue(&mut self, alert: Alert) {
        if self.transitions.len() >= MAX_QUEUED_TRANSITIONS {
            self.transitions.pop_front();
        }
        self.transitions.push_back(alert);
    }

    /// Writes the queued transitions in order; stops at the first failure (they stay).
    pub async fn write_alerts(&mut self, client: &Client) -> Result<usize, String> {
        let mut written = 0;
        while let Some(alert) = self.transitions.front() {
            write_alert(client, alert).await.map_err(|e| crate::db::describe_pg(&e))?;
            self.transitions.pop_front();
            written += 1;
        }
        Ok(written)
    }
}

/// Pending: a new row (none if one is open already). Firing or resolved: the open row, or a
/// new one when there is none (the alert started while nothing could be recorded).
async fn write_alert(client: &Client, a: &Alert) -> Result<(), tokio_postgres::Error> {
    let labels = labels_text(&a.labels);
    if a.phase != Phase::Pending {
        let updated = client
            .execute(
                UPDATE_ALERT,
                &[
                    &a.rule,
                    &labels,
                    &a.phase.as_str(),
                    &a.value,
                    &a.severity.as_str(),
                    &a.threshold,
                    &a.summary,
                    &a.fired_at,
                    &a.resolved_at,
                ],
            )
            .await?;
        if updated > 0 {
            return Ok(());
        }
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
        &a.rule,
        &a.metric,
        &labels,
        &a.severity.as_str(),
        &a.phase.as_str(),
        &a.value,
        &a.threshold,
        &a.summary,
        &a.started_at,
        &a.fired_at,
        &a.resolved_at,
    ];
    client.execute(INSERT_ALERT, &params).await.map(|_| ())
}

fn labels_text(labels: &AlertLabels) -> String {
    labels_json(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Whether the pitstop tables are there (the extension is installed in this database).
pub async fn tables_present(client: &Client) -> Result<bool, String> {
    client
        .query_one(TABLES_PRESENT, &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| crate::db::describe_pg(&e))
}

/// Deletes samples older than `retention`, in bounded batches; returns how many.
pub async fn prune(client: &Client, retention: Duration) -> Result<u64, String> {
    let mut total = 0;
    for _ in 0..PRUNE_BATCHES {
        let n = client
            .execute(PRUNE, &[&retention.as_secs_f64(), &PRUNE_BATCH])
            .await
            .map_err(|e| crate::db::describe_pg(&e))?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

/// The alerts an earlier run left pending or firing, each with its age.
pub async fn open_alerts(client: &Client) -> Result<Vec<(Alert, Duration)>, String> {
    let rows = client.query(OPEN_ALERTS, &[]).await.map_err(|e| crate::db::describe_pg(&e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let labels: String = r.get(2);
            let labels: AlertLabels = serde_json::from_str::<
                serde_json::Map<String, serde_json::Value>,
            >(&labels)
            .ok()?
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
            let severity: String = r.get(3);
            let state: String = r.get(4);
            let alert = Alert {
                rule: r.get(0),
                metric: r.get(1),
                labels,
                severity: Severity::from_name(&severity)?,
                phase: Phase::parse(&state)?,
                value: r.get(5),
                threshold: r.get(6),
                summary: r.get(7),
                started_at: r.get(8),
                fired_at: r.get(9),
                resolved_at: None,
            };
            Some((alert, Duration::from_secs_f64(r.get::<_, f64>(10).max(0.0))))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_bounded() {
        let mut store = Store::default();
        let samples: Vec<Sample> = (0..1000).map(|i| Sample::new("m", f64::from(i))).collect();
        let mut dropped = 0;
        for _ in 0..(MAX_BUFFERED_ROWS / 1000 + 5) {
            dropped += store.buffer(SystemTime::now(), &samples);
        }
        assert_eq!(store.buffered(), MAX_BUFFERED_ROWS);
        assert_eq!(dropped, 5000);
        for i in 0..(MAX_QUEUED_TRANSITIONS + 10) {
            store.queue(Alert {
                rule: i.to_string(),
                metric: "cpu_percent".into(),
                labels: AlertLabels::new(),
                severity: Severity::Info,
                phase: Phase::Pending,
                value: None,
                threshold: 0.0,
                summary: String::new(),
                started_at: SystemTime::now(),
                fired_at: None,
                resolved_at: None,
            });
        }
        assert_eq!(store.transitions.len(), MAX_QUEUED_TRANSITIONS);
        assert_eq!(store.transitions[0].rule, "10", "the oldest went first");
        assert_eq!(
            labels_text(&AlertLabels::from([("mount".to_string(), "/".to_string())])),
            r#"{"mount":"/"}"#
        );
    }
}
