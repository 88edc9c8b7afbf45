//! PostgreSQL metrics from the monitor's own session: connections by state against
//! max_connections, transactions and block reads (counters for /metrics; transactions per
//! second and cache hit ratio from the difference between two samples for alert rules and
//! the dashboard), deadlocks and temporary bytes, replication lag, the longest open
//! transaction, and the oldest datfrozenxid's age. The query is `sql/monitor_postgres.sql`.

use super::catalog::*;
use super::sample::{ratio, Sample};
use std::time::Duration;

const SAMPLE: &str = include_str!("../../sql/monitor_postgres.sql");

/// Transaction ids until wraparound (2^31).
const WRAPAROUND: f64 = 2_147_483_648.0;

/// Connection states always shown (0 when none), so that their series do not come and go.
const STATES: &[&str] = &["active", "idle", "idle_in_transaction", "idle_in_transaction_aborted"];

/// Cumulative counters, summed over the databases.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub xacts: f64,
    pub blks_hit: f64,
    pub blks_read: f64,
    pub deadlocks: f64,
    pub temp_bytes: f64,
}

/// One answer of the sample query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub max_connections: f64,
    pub connections: Vec<(String, f64)>,
    pub counters: Counters,
    pub longest_transaction_seconds: Option<f64>,
    pub xid_age: Option<f64>,
    pub standby: bool,
    pub replication_lag_seconds: Option<f64>,
    /// The session's own backend, whose parent is the postmaster.
    pub backend_pid: u32,
}

pub async fn read(client: &tokio_postgres::Client, limit: Duration) -> Result<Reading, String> {
    let row = match tokio::time::timeout(limit, client.query_one(SAMPLE, &[])).await {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => return Err(crate::db::describe_pg(&e)),
        Err(_) => return Err(format!("no answer within {}", humantime::format_duration(limit))),
    };
    let get = |name: &str| -> Result<Option<f64>, String> {
        row.try_get(name).map_err(|e| format!("{name}: {e}"))
    };
    let connections: String = row.try_get("connections").map_err(|e| e.to_string())?;
    let connections: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&connections).map_err(|e| e.to_string())?;
    Ok(Reading {
        max_connections: get("max_connections")?.unwrap_or(0.0),
        connections: connections.into_iter().map(|(k, v)| (k, v.as_f64().unwrap_or(0.0))).collect(),
        counters: Counters {
            xacts: get("xacts")?.unwrap_or(0.0),
            blks_hit: get("blks_hit")?.unwrap_or(0.0),
            blks_read: get("blks_read")?.unwrap_or(0.0),
            deadlocks: get("deadlocks")?.unwrap_or(0.0),
            temp_bytes: get("temp_bytes")?.unwrap_or(0.0),
        },
        longest_transaction_seconds: get("longest_transaction_seconds")?,
        xid_age: get("xid_age")?,
        standby: row.try_get("standby").map_err(|e| e.to_string())?,
        replication_lag_seconds: get("replication_lag_seconds")?,
        backend_pid: row.try_get::<_, i32>("backend_pid").map_err(|e| e.to_string())? as u32,
    })
}

/// The samples of `now` (read `seconds` after `before`, the previous reading's counters).
pub fn samples(now: &Reading, before: Option<(&Counters, f64)>) -> Vec<Sample> {
    let mut s = Vec::new();
    let mut states: Vec<(String, f64)> = STATES.iter().map(|st| (st.to_string(), 0.0)).collect();
    for (state, n) in &now.connections {
        match states.iter_mut().find(|(st, _)| st == state) {
            Some(entry) => entry.1 = *n,
            None => states.push((state.clone(), *n)),
        }
    }
    let total: f64 = states.iter().map(|(_, n)| n).sum();
    s.extend(states.into_iter().map(|(state, n)| Sample::labelled(CONNECTIONS, "state", state, n)));
    s.push(Sample::new(MAX_CONNECTIONS, now.max_connections));
    s.extend(ratio(total, now.max_connections).map(|r| Sample::new(CONNECTIONS_RATIO, r)));
    let c = &now.counters;
    s.push(Sample::new(TRANSACTIONS, c.xacts));
    s.push(Sample::new(BLOCKS_HIT, c.blks_hit));
    s.push(Sample::new(BLOCKS_READ, c.blks_read));
    s.push(Sample::new(DEADLOCKS, c.deadlocks));
    s.push(Sample::new(TEMP_BYTES, c.temp_bytes));
    if let Some((b, seconds)) = before.filter(|(_, secs)| *secs > 0.0) {
        // Negative differences mean the statistics were reset: no rate this round.
        let xacts = c.xacts - b.xacts;
        if xacts >= 0.0 {
            s.push(Sample::new(TPS, xacts / seconds));
        }
        let (hit, read) = (c.blks_hit - b.blks_hit, c.blks_read - b.blks_read);
        if hit >= 0.0 && read >= 0.0 {
            s.extend(ratio(hit, hit + read).map(|r| Sample::new(CACHE_HIT, r)));
        }
    }
    s.extend(now.replication_lag_seconds.map(|lag| Sample::new(REPLICATION_LAG, lag.max(0.0))));
    s.push(Sample::new(LONGEST_XACT, now.longest_transaction_seconds.unwrap_or(0.0).max(0.0)));
    if let Some(age) = now.xid_age {
        s.push(Sample::new(XID_AGE, age));
        s.push(Sample::new(XID_RATIO, age / WRAPAROUND));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(samples: &[Sample], metric: &str, label: Option<&str>) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.metric == metric && label.is_none_or(|l| s.labels.iter().any(|(_, v)| v == l))
            })
            .map(|s| s.value)
    }

    #[test]
    fn rates_ratios_and_states() {
        let mut r = Reading {
            max_connections: 100.0,
            connections: vec![
                ("active".into(), 3.0),
                ("idle".into(), 6.0),
                ("unknown".into(), 1.0),
            ],
            counters: Counters {
                xacts: 1000.0,
                blks_hit: 900.0,
                blks_read: 100.0,
                deadlocks: 2.0,
                temp_bytes: 4096.0,
            },
            xid_age: Some(1_073_741_824.0),
            replication_lag_seconds: None,
            ..Default::default()
        };
        let first = samples(&r, None);
        assert_eq!(value(&first, TPS, None), None, "no rate from one reading");
        assert_eq!(value(&first, CONNECTIONS_RATIO, None), Some(0.1));
        assert_eq!(value(&first, CONNECTIONS, Some("idle_in_transaction")), Some(0.0));
        assert_eq!(value(&first, CONNECTIONS, Some("unknown")), Some(1.0));
        assert_eq!(value(&first, XID_RATIO, None), Some(0.5));
        assert_eq!(
            (
                value(&first, TRANSACTIONS, None),
                value(&first, BLOCKS_HIT, None),
                value(&first, BLOCKS_READ, None)
            ),
            (Some(1000.0), Some(900.0), Some(100.0))
        );
        assert_eq!(
            value(&first, REPLICATION_LAG, None),
            None,
            "a primary without standbys has no lag"
        );
        let before = r.counters;
        r.counters = Counters { xacts: 1500.0, blks_hit: 1290.0, blks_read: 110.0, ..before };
        let second = samples(&r, Some((&before, 10.0)));
        assert_eq!(value(&second, TPS, None), Some(50.0));
        assert_eq!(value(&second, CACHE_HIT, None), Some(0.975));
        r.counters.xacts = 10.0;
        assert_eq!(value(&samples(&r, Some((&before, 10.0))), TPS, None), None, "statistics reset");
    }
}
