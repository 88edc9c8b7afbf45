//! The daemon's side: its configuration file (the same validation as `check-config`) and
//! Redis, reached with the relay's own connection code.

use super::Check;
use crate::config::{Config, ConfigError};
use crate::relay::redis::Sink;

pub fn config_check(loaded: &Result<Config, Vec<ConfigError>>) -> Check {
    let name = "config";
    match loaded {
        Ok(config) => match &config.file {
            Some(file) => Check::ok(name, format!("{} is valid", file.display())),
            None => Check::skipped(name, format!("no configuration file (--config, PITSTOP_CONFIG; {} does not exist): built-in defaults", crate::config::DEFAULT_PATH)),
        },
        Err(errors) => Check::failed(
            name,
            format!("{} problem{}: {}", errors.len(), if errors.len() == 1 { "" } else { "s" }, errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
            "correct each key named (pitstop check-config --config FILE lists them; daemon/pitstop.example.toml documents every key)",
        ),
    }
}

pub async fn redis_check(config: Option<&Config>) -> Check {
    let name = "redis";
    let Some(config) = config else {
        return Check::skipped(name, "the configuration is invalid (see config)");
    };
    if let Some(reason) = config.relay_disabled_reason() {
        return Check::skipped(name, format!("the relay does not run ({reason})"));
    }
    let r = &config.redis;
    // Sink::connect bounds the connection; the cluster client's PING by its response timeout.
    let limit = r.connect_timeout + r.command_timeout;
    let outcome = match tokio::time::timeout(limit, Sink::connect(r)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(limit))),
    };
    let urls = format!("{:?}", r.url);
    match outcome {
        Ok(sink) => Check::ok(name, format!("PING answered by {}{urls}", if sink.is_cluster() { "the cluster " } else { "" })),
        Err(e) => Check::failed(
            name,
            format!("cannot reach Redis at {urls}: {e}"),
            "start Redis or correct redis.url (and redis.password, redis.tls_ca_file, redis.cluster); redis-cli -u <url> ping tests it from this host",
        ),
    }
}
