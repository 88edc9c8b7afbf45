//! systemd notifications (`Type=notify`): READY=1 once Postgres is reached, STATUS= lines
//! with the components' states, WATCHDOG=1 when `WATCHDOG_USEC` is set, RELOADING=1 around a
//! reload and STOPPING=1 on shutdown. Outside systemd (no `NOTIFY_SOCKET`) all of it is a no-op.

use super::state::{read, State};
use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the STATUS= line is refreshed (when it changed) without a watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Notifier {
    ready: AtomicBool,
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

impl Notifier {
    /// READY=1, the first time only.
    pub fn ready(&self, status: &str) {
        if !self.ready.swap(true, Ordering::SeqCst) {
            send(&[NotifyState::Ready, NotifyState::Status(status)]);
        }
    }

    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// Ends a reload (whatever its outcome): READY=1 again if we were ready before.
    pub fn reloaded(&self, status: &str) {
        if self.ready.load(Ordering::SeqCst) {
            send(&[NotifyState::Ready, NotifyState::Status(status)]);
        } else {
            send(&[NotifyState::Status(status)]);
        }
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// One line for `systemctl status`.
pub fn status_line(state: &State) -> String {
    format!(
        "postgres {}, redis {}, relay {}: {} delivered, lag {:.3}s",
        state.postgres.health().as_str(),
        state.redis.health().as_str(),
        state.relay.health().as_str(),
        read(&state.counters.delivered),
        state.relay_lag().as_secs_f64()
    )
}

/// Sends WATCHDOG=1 at half the watchdog interval and refreshes STATUS= when it changed.
pub async fn supervise(state: Arc<State>, cancel: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog
        .map(|w| (w / 2).min(STATUS_EVERY))
        .unwrap_or(STATUS_EVERY)
        .max(Duration::from_millis(10));
    if let Some(w) = watchdog {
        tracing::info!("systemd watchdog enabled: {w:?}; pinging every {every:?}");
    }
    let mut last = String::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let line = status_line(&state);
        match (watchdog.is_some(), line != last) {
            (true, true) => send(&[NotifyState::Watchdog, NotifyState::Status(&line)]),
            (true, false) => send(&[NotifyState::Watchdog]),
            (false, true) => send(&[NotifyState::Status(&line)]),
            (false, false) => {}
        }
        last = line;
    }
}
