//! The optional alert webhook: a JSON POST for each alert that fires or resolves. Sending
//! never holds up sampling: transitions go through a bounded queue to a task of their own,
//! which retries each failed POST (`alerts.webhook_retries`, with backoff) within
//! `alerts.webhook_timeout` per attempt; a full queue drops the new payload and says so.

use super::alerts::{Alert, Phase};
use super::live::Live;
use crate::backoff::Backoff;
use crate::service::state::add;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Payloads waiting to be sent, at most.
const QUEUE: usize = 256;

struct Delivery {
    url: String,
    timeout: Duration,
    retries: u32,
    body: String,
    what: String,
}

#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Delivery>,
    live: Arc<Live>,
}

impl Webhook {
    /// Starts the sending task; it stops when `cancel` fires.
    pub fn spawn(live: Arc<Live>, cancel: CancellationToken) -> Webhook {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver_all(rx, live.clone(), cancel));
        Webhook { tx, live }
    }

    /// Queues `alert` (firing or resolved) for `url`.
    pub fn send(&self, url: &str, timeout: Duration, retries: u32, alert: &Alert, host: &str) {
        let what = format!("{} {}", alert.rule, alert.phase.as_str());
        let delivery = Delivery {
            url: url.to_string(),
            timeout,
            retries,
            body: payload(alert, host).to_string(),
            what,
        };
        if let Err(e) = self.tx.try_send(delivery) {
            add(&self.live.counters.webhook_failed, 1);
            let what = match &e {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => {
                    d.what.clone()
                }
            };
            warn!("monitor: webhook queue full ({QUEUE} waiting); not sending {what}");
        }
    }
}

/// The JSON body: what fired or resolved, when, and why.
pub fn payload(alert: &Alert, host: &str) -> serde_json::Value {
    let time = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_millis(t).to_string());
    json!({
        "source": "pitstop",
        "host": host,
        "status": alert.phase.as_str(),
        "rule": alert.rule,
        "metric": alert.metric,
        "labels": alert.labels,
        "severity": alert.severity.as_str(),
        "value": alert.value,
        "threshold": alert.threshold,
        "summary": alert.summary,
        "started_at": time(Some(alert.started_at)),
        "fired_at": time(alert.fired_at),
        "resolved_at": time(alert.resolved_at),
    })
}

/// Whether a transition is sent: firing and resolved, not pending (a resolved alert that
/// never fired is not news to anyone either).
pub fn is_sent(alert: &Alert) -> bool {
    match alert.phase {
        Phase::Pending => false,
        Phase::Firing => true,
        Phase::Resolved => alert.fired_at.is_some(),
    }
}

/// The webhook's HTTP client. It follows no redirect: one would re-POST the alert wherever
/// the webhook's host points it (an internal address, say); a 3xx is a failed delivery.
fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()
}

async fn deliver_all(mut rx: mpsc::Receiver<Delivery>, live: Arc<Live>, cancel: CancellationToken) {
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            warn!("monitor: cannot set up the webhook client: {e}; alerts are not sent");
            return;
        }
    };
    loop {
        let delivery = tokio::select! {
            _ = cancel.cancelled() => return,
            d = rx.recv() => match d { Some(d) => d, None => return },
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = client
                .post(&delivery.url)
                .timeout(delivery.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(delivery.body.clone())
                .send()
                .await;
            let error = match sent {
                Ok(r) if r.status().is_success() => {
                    add(&live.counters.webhook_sent, 1);
                    debug!("monitor: webhook got {} ({})", delivery.what, r.status());
                    break;
                }
                Ok(r) => format!("HTTP status {}", r.status()),
                Err(e) => describe(&e),
            };
            if attempt > delivery.retries {
                add(&live.counters.webhook_failed, 1);
                warn!(
                    "monitor: webhook: {} not delivered after {attempt} attempt(s): {error}",
                    delivery.what
                );
                break;
            }
            let delay = backoff.next_delay();
            debug!(
                "monitor: webhook attempt {attempt} for {} failed: {error}; retrying in {delay:?}",
                delivery.what
            );
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// A reqwest error with its causes, without the URL (it may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_string() } else { e.to_string() };
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "(webhook_url)");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let location = format!("http://{}/internal", elsewhere.local_addr().unwrap());
        let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = hook.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        let request = http_client().unwrap().post(&hook_url).body("{}").send();
        let sent = tokio::time::timeout(Duration::from_secs(5), request).await;
        let followed =
            tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await.is_ok();
        assert!(!followed, "the alert was POSTed to the redirect's target");
        assert_eq!(sent.unwrap().unwrap().status().as_u16(), 307);
    }
    use crate::config::monitor::Severity;

    #[test]
    fn payload_names_the_alert_and_its_times() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut alert = Alert {
            rule: "disk".into(),
            metric: "disk_percent".into(),
            labels: [("mount".to_string(), "/".to_string())].into(),
            severity: Severity::Critical,
            phase: Phase::Firing,
            value: Some(93.5),
            threshold: 90.0,
            summary: "disk_percent{mount=\"/\"} = 93.5 > 90".into(),
            started_at: start,
            fired_at: Some(start + Duration::from_secs(60)),
            resolved_at: None,
        };
        let p = payload(&alert, "db1");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["labels"]["mount"], "/");
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(p["fired_at"], "2023-11-14T22:14:20.000Z");
        assert!(p["resolved_at"].is_null());
        assert!(is_sent(&alert));
        alert.phase = Phase::Pending;
        assert!(!is_sent(&alert));
        alert.phase = Phase::Resolved;
        assert!(is_sent(&alert));
        alert.fired_at = None;
        assert!(!is_sent(&alert), "a pending alert that cleared is not sent");
    }
}
