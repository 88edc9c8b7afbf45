//! `pitstop status`: the running daemon's `/status`, read over its HTTP port (the address of
//! `http.listen` in the configuration, or `--url`), as a table of its components or as JSON.

use crate::output;
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when the daemon answers but a component it runs is down.
const COMPONENT_DOWN: u8 = 3;

pub fn command(url: Option<&str>, config: Option<&Path>, style: output::Style) -> ExitCode {
    let url = match url {
        Some(url) => url.to_string(),
        None => match crate::config::Config::load(config) {
            Ok(cfg) => status_url(cfg.http.listen),
            Err(errors) => {
                crate::config::report_errors(&errors);
                return ExitCode::FAILURE;
            }
        },
    };
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let status = match runtime.block_on(fetch(&url)) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: the daemon did not answer at {url}: {e:#}");
            eprintln!("HINT: is `pitstop run` running (systemctl status pitstop)? --url or http.listen give its address.");
            return ExitCode::FAILURE;
        }
    };
    let rows = component_rows(&status);
    match style {
        output::Style::Json => {
            println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default())
        }
        _ => {
            let version = status["version"].as_str().unwrap_or("?");
            let uptime = status["uptime_seconds"]
                .as_f64()
                .map(|s| humantime::format_duration(Duration::from_secs(s as u64)).to_string());
            println!("pitstop {version}, up {}", uptime.as_deref().unwrap_or("?"));
            println!("{}", output::render(&rows, style, "The daemon reported no components."));
        }
    }
    if rows.iter().any(|r| r["state"] == "down") {
        ExitCode::from(COMPONENT_DOWN)
    } else {
        ExitCode::SUCCESS
    }
}

/// The daemon's listening address as a URL a client on this host can reach: a wildcard
/// address is reached through loopback.
pub fn status_url(listen: std::net::SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/status", listen.port())
}

pub async fn fetch(url: &str) -> Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client.get(url).send().await.context("request failed")?;
    let code = response.status();
    if !code.is_success() {
        anyhow::bail!("HTTP {code}");
    }
    let body = response.bytes().await.context("reading the answer failed")?;
    serde_json::from_slice(&body).context("the answer is not /status JSON")
}

/// One row per component: its state, since when and what it says.
fn component_rows(status: &Value) -> Vec<Map<String, Value>> {
    let Some(components) = status["components"].as_object() else { return Vec::new() };
    components
        .iter()
        .map(|(name, c)| {
            let since = c["since"].as_f64().and_then(|s| chrono::DateTime::from_timestamp(s as i64, 0)).map(|t| t.to_rfc3339());
            let row = json!({ "component": name, "state": c["state"], "since": since, "detail": c["detail"] });
            row.as_object().cloned().unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_through_loopback() {
        assert_eq!(status_url("0.0.0.0:9247".parse().unwrap()), "http://127.0.0.1:9247/status");
        assert_eq!(status_url("[::]:9247".parse().unwrap()), "http://[::1]:9247/status");
        assert_eq!(status_url("10.1.2.3:80".parse().unwrap()), "http://10.1.2.3:80/status");
        assert_eq!(status_url("[fe80::1]:80".parse().unwrap()), "http://[fe80::1]:80/status");
    }

    #[test]
    fn each_component_is_a_row_with_its_state() {
        let status = json!({"components": {
            "postgres": {"state": "up", "since": 1.0e9, "detail": "connected"},
            "redis": {"state": "down", "since": 1.0e9, "detail": "refused"},
        }});
        let rows = component_rows(&status);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1]["component"].as_str(), rows[1]["state"].as_str()),
            (Some("redis"), Some("down"))
        );
        assert_eq!(rows[0]["since"], "2001-09-09T01:46:40+00:00");
        assert!(component_rows(&json!({})).is_empty());
    }
}
