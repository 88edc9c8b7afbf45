//! Pruning pitstop's own history tables: rows older than the retention are deleted in
//! bounded batches, one short autocommit statement each, so that pruning a large backlog
//! never holds many row locks or one long transaction. Open alerts are never pruned. (The
//! relay prunes its outbox itself.)

use std::time::Duration;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement.
pub const BATCH: i64 = 5000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HistoryTable {
    HostMetrics,
    Alerts,
    MaintenanceLog,
    QuerySnapshots,
}

impl HistoryTable {
    pub const ALL: [HistoryTable; 4] = [
        HistoryTable::HostMetrics,
        HistoryTable::Alerts,
        HistoryTable::MaintenanceLog,
        HistoryTable::QuerySnapshots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HistoryTable::HostMetrics => "host_metrics",
            HistoryTable::Alerts => "alerts",
            HistoryTable::MaintenanceLog => "maintenance_log",
            HistoryTable::QuerySnapshots => "query_snapshots",
        }
    }

    pub fn qualified(self) -> String {
        format!("pitstop.{}", self.name())
    }

    /// Which rows are old enough: `$1` is the retention in seconds.
    fn old_rows(self) -> &'static str {
        match self {
            HistoryTable::HostMetrics => "sampled_at < now() - make_interval(secs => $1)",
            HistoryTable::Alerts => {
                "state = 'resolved' AND resolved_at < now() - make_interval(secs => $1)"
            }
            HistoryTable::MaintenanceLog => "started_at < now() - make_interval(secs => $1)",
            HistoryTable::QuerySnapshots => "captured_at < now() - make_interval(secs => $1)",
        }
    }

    /// One batch: at most `$2` old rows, found through the table's time index and deleted by
    /// ctid (a TID scan).
    pub fn delete_batch(self) -> String {
        let table = self.qualified();
        format!("DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {} LIMIT $2))", self.old_rows())
    }

    /// What the prune does, as shown by `--dry-run` and recorded in the log.
    pub fn describe(self, keep: Duration) -> String {
        format!(
            "DELETE FROM {} WHERE {} (batches of {BATCH})",
            self.qualified(),
            self.old_rows().replace("$1", &keep.as_secs().to_string())
        )
    }
}

/// Deletes every row older than `keep` from `table`, batch by batch; the number deleted.
/// Stops between batches when `cancel` fires.
pub async fn prune(
    client: &Client,
    table: HistoryTable,
    keep: Duration,
    cancel: &CancellationToken,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare(&table.delete_batch()).await?;
    let seconds = keep.as_secs_f64();
    let mut deleted = 0;
    loop {
        let n = client.execute(&statement, &[&seconds, &BATCH]).await?;
        deleted += n;
        if n < BATCH as u64 || cancel.is_cancelled() {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_and_open_alerts_are_kept() {
        let sql = HistoryTable::Alerts.delete_batch();
        assert!(sql.starts_with("DELETE FROM pitstop.alerts WHERE ctid = ANY (ARRAY(SELECT ctid FROM pitstop.alerts WHERE state = 'resolved'"), "{sql}");
        assert!(sql.ends_with("LIMIT $2))"), "{sql}");
        for t in HistoryTable::ALL {
            assert!(t.delete_batch().contains("LIMIT $2"), "{t:?} is unbounded");
        }
        assert_eq!(
            HistoryTable::HostMetrics.describe(Duration::from_secs(3600)),
            "DELETE FROM pitstop.host_metrics WHERE sampled_at < now() - make_interval(secs => 3600) (batches of 5000)"
        );
    }
}
