//! `pitstop run`: the long-running service. Loads the configuration (refusing to start on
//! any error), binds HTTP, starts the named tasks under one cancellation token, then waits
//! for signals: SIGHUP reloads (an invalid file is rejected and the running configuration
//! kept), SIGTERM/SIGINT stop within `SHUTDOWN_GRACE` and exit 0.

pub mod notify;
pub mod probe;
pub mod state;

use crate::config::{self, Config};
use crate::logging::Logging;
use crate::{http, maintenance, monitor, relay};
use notify::Notifier;
use state::{add, State};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How long tasks get to stop after SIGTERM before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Exit status for an invalid configuration (sysexits EX_CONFIG); the unit file tells
/// systemd not to restart on it.
const EX_CONFIG: u8 = 78;

pub fn run(path: Option<&Path>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            config::report_errors(&errors);
            eprintln!("pitstop: not starting with an invalid configuration");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let logging = Logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, logging, path.map(Path::to_path_buf)))
}

async fn serve(config: Config, logging: Logging, path: Option<PathBuf>) -> ExitCode {
    let file =
        config.file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into());
    info!(
        "pitstop {} starting (config file: {file}, profile {})",
        env!("CARGO_PKG_VERSION"),
        config.profile.name()
    );
    let state = Arc::new(State::new(config.profile.name()));
    let notifier = Arc::new(Notifier::default());

    let listener = if config.http.enabled {
        match TcpListener::bind(config.http.listen).await {
            Ok(listener) => {
                let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                info!("http: listening on {addr}");
                Some(listener)
            }
            Err(e) => {
                error!("http: cannot listen on {}: {e}", config.http.listen);
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let (Ok(mut hangup), Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };

    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    if let Some(listener) = listener {
        tasks.spawn(http::serve(
            listener,
            config_rx.borrow().http.allowed_hosts.0.clone(),
            state.clone(),
            config_rx.clone(),
            cancel.clone(),
        ));
    }
    tasks.spawn(probe::run(config_rx.clone(), state.clone(), notifier.clone(), cancel.clone()));
    tasks.spawn(relay::run(config_rx.clone(), state.clone(), cancel.clone()));
    tasks.spawn(maintenance::run(config_rx.clone(), state.clone(), cancel.clone()));
    tasks.spawn(monitor::run(config_rx.clone(), state.clone(), cancel.clone()));
    tasks.spawn(notify::supervise(state.clone(), cancel.clone()));
    tasks.close();

    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&config_tx, &state, &logging, &notifier, path.as_deref()),
            _ = terminate.recv() => { info!("SIGTERM: stopping"); break; }
            _ = interrupt.recv() => { info!("SIGINT: stopping"); break; }
        }
    }
    notifier.stopping();
    cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
        warn!("tasks still busy after {SHUTDOWN_GRACE:?}; exiting anyway (undelivered rows stay in the outbox)");
    }
    info!("stopped");
    ExitCode::SUCCESS
}

/// SIGHUP: validate the file again; apply it whole or not at all.
fn reload(
    config_tx: &watch::Sender<Arc<Config>>,
    state: &State,
    logging: &Logging,
    notifier: &Notifier,
    path: Option<&Path>,
) {
    notifier.reloading();
    match Config::load(path) {
        Ok(new) => {
            let changed = new.changed_keys(&config_tx.borrow());
            logging.set_level(&new.log.level);
            state.set_profile(new.profile.name());
            add(&state.counters.reloads_applied, 1);
            config_tx.send_replace(Arc::new(new));
            if changed.is_empty() {
                info!("configuration reloaded: nothing changed");
            } else {
                info!("configuration reloaded; changed: {}", changed.join(", "));
            }
            for key in changed.iter().filter(|k| k.starts_with("http.") || *k == "log.format") {
                warn!("{key} takes effect at the next restart");
            }
        }
        Err(errors) => {
            add(&state.counters.reloads_rejected, 1);
            error!(
                "configuration reload rejected ({} problem(s)); keeping the running configuration",
                errors.len()
            );
            for e in &errors {
                error!("  {e}");
            }
        }
    }
    notifier.reloaded(&notify::status_line(state));
}
