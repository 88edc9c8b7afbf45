//! `pitstop.maintenance_log`: one row per run (action 'run', no target) and one per attempt of
//! each action, written as 'running' when it starts and updated with its outcome, duration
//! and error (with SQLSTATE) when it ends, so a DBA sees a long VACUUM while it runs.

use std::time::Duration;
use tokio_postgres::Client;

/// A new run: its row id is also its run_id.
const START_RUN: &str = "WITH n AS (SELECT nextval(pg_catalog.pg_get_serial_sequence('pitstop.maintenance_log', 'id')) AS id) \
                         INSERT INTO pitstop.maintenance_log (id, run_id, job, action, started_at, outcome, detail) \
                         SELECT id, id, $1, 'run', clock_timestamp(), $2, $3 FROM n RETURNING id";

const INSERT: &str = "INSERT INTO pitstop.maintenance_log (run_id, job, action, target, command, started_at, outcome, attempt, error, detail) \
                      VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7, $8, $9) RETURNING id";

const FINISH: &str = "UPDATE pitstop.maintenance_log SET outcome = $2, duration_ms = $3, error = $4, detail = coalesce($5, detail) WHERE id = $1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Running,
    Ok,
    Failed,
    Skipped,
    /// Stopped on request (Ctrl-C, the daemon stopping): its statement was cancelled on the server.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// An action row to write.
pub struct Entry<'a> {
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub command: Option<&'a str>,
    pub attempt: i32,
    pub detail: Option<&'a str>,
}

pub struct Log<'a> {
    client: &'a Client,
    job: &'a str,
}

impl<'a> Log<'a> {
    pub fn new(client: &'a Client, job: &'a str) -> Log<'a> {
        Log { client, job }
    }

    /// Starts a run row with `outcome` (Running, or Skipped for a run that will not happen).
    pub async fn start_run(
        &self,
        outcome: Outcome,
        detail: &str,
    ) -> Result<i64, tokio_postgres::Error> {
        let row =
            self.client.query_one(START_RUN, &[&self.job, &outcome.as_str(), &detail]).await?;
        Ok(row.get(0))
    }

    /// Writes an action row of `run_id` with `outcome` (Running: to be finished later).
    pub async fn action(
        &self,
        run_id: i64,
        entry: &Entry<'_>,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<i64, tokio_postgres::Error> {
        let row = self
            .client
            .query_one(
                INSERT,
                &[
                    &run_id,
                    &self.job,
                    &entry.action,
                    &entry.target,
                    &entry.command,
                    &outcome.as_str(),
                    &entry.attempt,
                    &error,
                    &entry.detail,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Ends a row started as 'running'; `detail` replaces the row's when given.
    pub async fn finish(
        &self,
        id: i64,
        outcome: Outcome,
        took: Duration,
        error: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), tokio_postgres::Error> {
        let ms = took.as_secs_f64() * 1000.0;
        self.client
            .execute(FINISH, &[&id, &outcome.as_str(), &ms, &error, &detail])
            .await
            .map(|_| ())
    }
}
