//! Logging through `tracing` to stderr: plain lines (without timestamps under journald, which
//! adds its own) or JSON; the level can change on reload. Nothing logged carries a secret:
//! configuration values are only ever printed masked.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    pub fn init(cfg: &LogConfig) -> Logging {
        let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
        let (filter, handle) = reload::Layer::new(filter);
        let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
        let output = fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(false);
        let output = match (cfg.format, under_journald) {
            (LogFormat::Json, _) => output.json().flatten_event(true).boxed(),
            (LogFormat::Plain, true) => output.without_time().boxed(),
            (LogFormat::Plain, false) => output.boxed(),
        };
        // A second init (tests) keeps the first subscriber.
        let _ = tracing_subscriber::registry().with(filter).with(output).try_init();
        Logging { filter: handle }
    }

    pub fn set_level(&self, level: &str) {
        match EnvFilter::try_new(level) {
            Ok(filter) => {
                if let Err(e) = self.filter.reload(filter) {
                    tracing::warn!("cannot change the log level: {e}");
                }
            }
            Err(e) => tracing::warn!("log.level {level:?} ignored: {e}"),
        }
    }
}
