//! The daemon's own PostgreSQL connection: readiness (READY=1 and /readyz after the first
//! successful connection), `pitstop_postgres_up`, and which pitstop extension version the
//! database has. Reconnects with capped exponential backoff and jitter.

use super::notify::{status_line, Notifier};
use super::state::{Health, State};
use crate::backoff::Backoff;
use crate::config::{Config, PostgresConfig};
use crate::db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const EXTENSION: &str = "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pitstop'";

/// Why a healthy connection was left.
enum Left {
    Cancelled,
    Reconfigured,
    Failed(String),
}

pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
    notifier: Arc<Notifier>,
    cancel: CancellationToken,
) {
    let mut cfg = config.borrow_and_update().clone();
    let mut backoff = Backoff::new(cfg.reconnect.initial_delay, cfg.reconnect.max_delay);
    loop {
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            c = db::connect_daemon(&cfg.postgres, "pitstop") => c,
        };
        let failure = match connected {
            Ok((client, connection)) => {
                let (closed, driver) = db::drive(connection);
                let left = tokio::select! {
                    _ = cancel.cancelled() => Left::Cancelled,
                    left = watch_connection(&client, &closed, &mut cfg, &mut config, &state, &notifier) => left,
                };
                driver.abort();
                backoff = Backoff::new(cfg.reconnect.initial_delay, cfg.reconnect.max_delay);
                match left {
                    Left::Cancelled => return,
                    Left::Reconfigured => continue,
                    Left::Failed(e) => e,
                }
            }
            Err(e) => format!("{e:#}"),
        };
        let delay = backoff.next_delay();
        if state.postgres.set(Health::Down, failure.clone()) {
            warn!("postgres: {failure}; retrying in {delay:?} (attempt {})", backoff.failures());
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                cfg = config.borrow_and_update().clone();
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Marks Postgres up, sends READY=1 the first time, then probes every `probe_interval`
/// (the caller cancels it on shutdown).
async fn watch_connection(
    client: &tokio_postgres::Client,
    closed: &CancellationToken,
    cfg: &mut Arc<Config>,
    config: &mut watch::Receiver<Arc<Config>>,
    state: &State,
    notifier: &Notifier,
) -> Left {
    let limit = cfg.postgres.statement_timeout + Duration::from_secs(5);
    if let Err(e) = probe(client, limit, state).await {
        return Left::Failed(e);
    }
    notifier.ready(&status_line(state));
    loop {
        tokio::select! {
            _ = closed.cancelled() => return Left::Failed("connection closed".into()),
            changed = config.changed() => {
                if changed.is_err() {
                    return Left::Cancelled;
                }
                let new = config.borrow_and_update().clone();
                let reconnect = connection_changed(&cfg.postgres, &new.postgres);
                *cfg = new;
                if reconnect {
                    return Left::Reconfigured;
                }
            }
            _ = tokio::time::sleep(cfg.postgres.probe_interval) => {
                if let Err(e) = probe(client, limit, state).await {
                    return Left::Failed(e);
                }
            }
        }
    }
}

/// One probe: the connection answers; which pitstop version the database has.
async fn probe(
    client: &tokio_postgres::Client,
    limit: Duration,
    state: &State,
) -> Result<(), String> {
    let extension = match tokio::time::timeout(limit, client.query_opt(EXTENSION, &[])).await {
        Ok(Ok(row)) => row.map(|r| r.get::<_, String>(0)),
        Ok(Err(e)) => return Err(db::describe_pg(&e)),
        Err(_) => return Err(format!("no answer within {}", humantime::format_duration(limit))),
    };
    let detail = match &extension {
        Some(v) => crate::extension_version::connected(v),
        None => "connected; the pitstop extension is not installed in this database".to_string(),
    };
    state.set_extension(extension);
    if state.postgres.set(Health::Up, detail.clone()) {
        info!("postgres: {detail}");
    }
    Ok(())
}

fn connection_changed(old: &PostgresConfig, new: &PostgresConfig) -> bool {
    PostgresConfig { probe_interval: old.probe_interval, ..new.clone() } != *old
}
