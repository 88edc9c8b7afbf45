//! The Redis invalidation relay: at-least-once delivery of the extension's outbox rows
//! (`pitstop.invalidation_outbox`) to Redis.
//!
//! Each round reads the rows not yet delivered (see `outbox` for why by transaction id),
//! applies them to Redis in batches (see `plan` for what a batch does), and only then moves
//! the in-memory position past them; the horizon is saved to `pitstop.relay_state` after Redis
//! acknowledged, at most every `relay.save_interval`. Rounds start on NOTIFY and every
//! `relay.poll_interval` (so notifications lost while disconnected, or sent before a
//! long-running transaction ended, do not matter). After every (re)connect the relay reads
//! again from the saved horizon. A failure of either side drops that side's connection and
//! retries with capped exponential backoff; the round in flight is abandoned, never
//! half-counted.

pub mod outbox;
pub mod plan;
pub mod redis;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::service::state::{add, Health, State};
use outbox::{Outbox, Position};
use plan::Conventions;
use redis::Sink;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

/// Runs until `cancel` fires; follows configuration reloads.
pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    state: Arc<State>,
    cancel: CancellationToken,
) {
    let mut announced: Option<&'static str> = None;
    loop {
        let cfg = config.borrow_and_update().clone();
        if let Some(reason) = cfg.relay_disabled_reason() {
            if announced != Some(reason) {
                info!("relay: disabled ({reason})");
                announced = Some(reason);
            }
            state.relay.set(Health::Disabled, reason);
            state.redis.set(Health::Disabled, reason);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = config.changed() => if changed.is_err() { return },
            }
            continue;
        }
        announced = None;
        let mut relay = Relay::new(cfg, state.clone());
        let exit = relay.run(&mut config, &cancel).await;
        relay.close().await;
        if exit == Exit::Cancelled {
            return;
        }
        info!("relay: reconnecting with the new configuration");
    }
}

#[derive(Debug, PartialEq)]
enum Exit {
    Cancelled,
    Reconfigure,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Postgres,
    Redis,
}

struct Relay {
    cfg: Arc<Config>,
    state: Arc<State>,
    outbox: Option<Outbox>,
    sink: Option<Sink>,
    conventions: Conventions,
    position: Position,
    saved_horizon: u64,
    saved_at: Instant,
    unsaved_rows: u64,
    pruned_at: Instant,
    postgres_backoff: Backoff,
    redis_backoff: Backoff,
}

impl Relay {
    fn new(cfg: Arc<Config>, state: Arc<State>) -> Relay {
        let backoff = || Backoff::new(cfg.reconnect.initial_delay, cfg.reconnect.max_delay);
        Relay {
            conventions: conventions(&cfg),
            postgres_backoff: backoff(),
            redis_backoff: backoff(),
            cfg,
            state,
            outbox: None,
            sink: None,
            position: Position::from_horizon(0),
            saved_horizon: 0,
            saved_at: Instant::now(),
            unsaved_rows: 0,
            pruned_at: Instant::now(),
        }
    }

    async fn run(
        &mut self,
        config: &mut watch::Receiver<Arc<Config>>,
        cancel: &CancellationToken,
    ) -> Exit {
        loop {
            if self.outbox.is_none() {
                let connect = Outbox::connect(&self.cfg.postgres, &self.cfg.relay.consumer);
                let connected = tokio::select! {
                    _ = cancel.cancelled() => return Exit::Cancelled,
                    c = connect => c,
                };
                match connected {
                    Ok((outbox, horizon)) => {
                        info!("relay: connected to PostgreSQL; catching up from saved horizon {horizon}");
                        self.outbox = Some(outbox);
                        self.position = Position::from_horizon(horizon);
                        self.saved_horizon = horizon;
                        self.postgres_backoff.reset();
                    }
                    Err(e) => {
                        if let Some(exit) = self.failed(Side::Postgres, e, config, cancel).await {
                            return exit;
                        }
                        continue;
                    }
                }
            }
            if self.sink.is_none() {
                let connect = Sink::connect(&self.cfg.redis);
                let connected = tokio::select! {
                    _ = cancel.cancelled() => return Exit::Cancelled,
                    c = connect => c,
                };
                match connected {
                    Ok(sink) => {
                        let kind = if sink.is_cluster() { "Redis Cluster" } else { "Redis" };
                        if self.state.redis.set(Health::Up, kind) {
                            info!("relay: connected to {kind}");
                        }
                        self.sink = Some(sink);
                        self.redis_backoff.reset();
                    }
                    Err(e) => {
                        if let Some(exit) = self.failed(Side::Redis, e, config, cancel).await {
                            return exit;
                        }
                        continue;
                    }
                }
            }
            if self.state.relay.set(Health::Up, "delivering") {
                info!("relay: delivering invalidations");
            }

            let work = async {
                self.round().await?;
                self.housekeeping().await.map_err(|e| (Side::Postgres, e))
            };
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Exit::Cancelled,
                r = work => r,
            };
            if let Err((side, e)) = result {
                if let Some(exit) = self.failed(side, e, config, cancel).await {
                    return exit;
                }
                continue;
            }

            let Some(outbox) = &self.outbox else { continue };
            tokio::select! {
                _ = cancel.cancelled() => return Exit::Cancelled,
                changed = config.changed() => {
                    if changed.is_err() {
                        return Exit::Cancelled;
                    }
                    if let Some(exit) = self.reconfigure(config.borrow_and_update().clone()) {
                        return exit;
                    }
                }
                _ = outbox.woken() => {}
                _ = outbox.closed() => {}
                _ = tokio::time::sleep(self.cfg.relay.poll_interval) => {}
            }
        }
    }

    /// One round: everything not yet delivered, in id order, a page per batch. The position
    /// moves after each page Redis acknowledged.
    async fn round(&mut self) -> Result<(), (Side, String)> {
        let (Some(outbox), Some(sink)) = (self.outbox.as_ref(), self.sink.as_mut()) else {
            return Ok(());
        };
        let batch = self.cfg.relay.batch_size;
        let mut lag = Duration::ZERO;
        let mut delivered = 0u64;
        loop {
            let read_at = Instant::now();
            let page = outbox.page(&self.position, batch).await.map_err(|e| (Side::Postgres, e))?;
            let read_took = read_at.elapsed();
            if !page.rows.is_empty() {
                sink.apply(&page.rows, &self.conventions).await.map_err(|e| (Side::Redis, e))?;
                let n = page.rows.len() as u64;
                trace!(
                    "relay: {n} rows read in {read_took:?}, applied in {:?}",
                    read_at.elapsed() - read_took
                );
                lag = page.rows.iter().map(|r| r.age).max().unwrap_or_default() + read_at.elapsed();
                delivered += n;
                self.unsaved_rows += n;
                add(&self.state.counters.batches, 1);
                add(&self.state.counters.delivered, n);
            }
            self.position = self.position.after(&page, batch as usize);
            if page.rows.len() < batch as usize {
                break;
            }
        }
        add(&self.state.counters.rounds, 1);
        self.state.round_done(lag);
        if delivered > 0 {
            debug!("relay: delivered {delivered} rows; horizon {}", self.position.horizon());
        }
        Ok(())
    }

    /// Saves the horizon when rows were delivered (at most every save_interval) or, while
    /// idle, every prune_interval; prunes every prune_interval.
    async fn housekeeping(&mut self) -> Result<(), String> {
        let Some(outbox) = &self.outbox else { return Ok(()) };
        let horizon = self.position.horizon();
        let since = self.saved_at.elapsed();
        let relay = &self.cfg.relay;
        if horizon > self.saved_horizon
            && ((self.unsaved_rows > 0 && since >= relay.save_interval)
                || since >= relay.prune_interval)
        {
            outbox.save(horizon, self.unsaved_rows).await?;
            self.saved_horizon = horizon;
            self.unsaved_rows = 0;
            self.saved_at = Instant::now();
        }
        if self.pruned_at.elapsed() >= relay.prune_interval {
            let pruned = outbox.prune(relay.retention).await?;
            self.pruned_at = Instant::now();
            if pruned > 0 {
                add(&self.state.counters.pruned, pruned);
                debug!("relay: pruned {pruned} delivered outbox rows");
            }
        }
        Ok(())
    }

    /// Records a failure of one side, drops its connection, and waits out the backoff.
    async fn failed(
        &mut self,
        side: Side,
        error: String,
        config: &mut watch::Receiver<Arc<Config>>,
        cancel: &CancellationToken,
    ) -> Option<Exit> {
        let (name, backoff) = match side {
            Side::Postgres => {
                self.outbox = None;
                add(&self.state.counters.postgres_errors, 1);
                ("postgres", &mut self.postgres_backoff)
            }
            Side::Redis => {
                self.sink = None;
                add(&self.state.counters.redis_errors, 1);
                self.state.redis.set(Health::Down, error.clone());
                ("redis", &mut self.redis_backoff)
            }
        };
        let delay = backoff.next_delay();
        let attempt = backoff.failures();
        if self.state.relay.set(Health::Down, format!("{name}: {error}")) {
            warn!(
                "relay: {name}: {error}; retrying in {} (attempt {attempt})",
                humantime::format_duration(round_ms(delay))
            );
        } else {
            debug!(
                "relay: {name} still failing: {error}; retrying in {delay:?} (attempt {attempt})"
            );
        }
        tokio::select! {
            _ = cancel.cancelled() => Some(Exit::Cancelled),
            changed = config.changed() => match changed {
                Err(_) => Some(Exit::Cancelled),
                Ok(()) => self.reconfigure(config.borrow_and_update().clone()),
            },
            _ = tokio::time::sleep(delay) => None,
        }
    }

    /// Takes a reloaded configuration: settings that change connections restart the relay
    /// (from the saved horizon); the others apply from the next round.
    fn reconfigure(&mut self, new: Arc<Config>) -> Option<Exit> {
        let reconnect = new.postgres.dsn != self.cfg.postgres.dsn
            || new.postgres.connect_timeout != self.cfg.postgres.connect_timeout
            || new.postgres.statement_timeout != self.cfg.postgres.statement_timeout
            || new.postgres.lock_timeout != self.cfg.postgres.lock_timeout
            || new.redis != self.cfg.redis
            || new.relay.consumer != self.cfg.relay.consumer
            || new.relay_disabled_reason().is_some();
        if reconnect {
            return Some(Exit::Reconfigure);
        }
        self.postgres_backoff = Backoff::new(new.reconnect.initial_delay, new.reconnect.max_delay);
        self.redis_backoff = Backoff::new(new.reconnect.initial_delay, new.reconnect.max_delay);
        self.conventions = conventions(&new);
        self.cfg = new;
        None
    }

    /// Saves what was delivered but not yet saved (bounded: shutdown must stay prompt).
    async fn close(&mut self) {
        let horizon = self.position.horizon();
        if let Some(outbox) = &self.outbox {
            if horizon > self.saved_horizon && self.unsaved_rows > 0 {
                match tokio::time::timeout(
                    Duration::from_secs(1),
                    outbox.save(horizon, self.unsaved_rows),
                )
                .await
                {
                    Ok(Ok(())) => debug!("relay: saved horizon {horizon} on the way out"),
                    Ok(Err(e)) => debug!("relay: could not save the horizon on the way out: {e}"),
                    Err(_) => debug!("relay: saving the horizon on the way out timed out"),
                }
            }
        }
        self.outbox = None;
        self.sink = None;
    }
}

fn conventions(cfg: &Config) -> Conventions {
    Conventions {
        prefix: cfg.redis.key_prefix.clone(),
        channel: Some(cfg.redis.channel.clone()).filter(|c| !c.is_empty()),
        cluster: cfg.redis.cluster,
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
