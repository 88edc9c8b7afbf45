//! The daemon's monitor against a private cluster: an alert goes pending → firing → resolved
//! in one `pitstop.alerts` row (kept across a daemon restart), shows on /status and /metrics,
//! reaches a webhook (which fails once, so the retry is exercised); samples land in
//! `pitstop.host_metrics` and old ones are pruned; without the extension or without
//! PostgreSQL the host is still sampled; a bad rule is refused with its key path.

use pitstop_tests::{
    assert_contains_all, pitstop_env, poll_until, Daemon, DaemonConfig, PgCluster, SIGHUP,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fast sampling and writes, short windows.
fn monitor_config(dsn: &str) -> DaemonConfig {
    DaemonConfig::new(dsn, "")
        .set("monitor", "sample_interval = \"200ms\"")
        .set("monitor", "write_interval = \"400ms\"")
        .set("monitor", "window = \"1m\"")
        .set("monitor", "growth_window = \"1m\"")
        .set("monitor", "retention = \"1d\"")
}

fn rule(threshold: u32) -> String {
    format!(
        "\n[[alerts.rules]]\nname = \"busy\"\nmetric = \"connections\"\ncomparison = \">\"\nthreshold = {threshold}\nfor = \"2s\"\nseverity = \"critical\"\n"
    )
}

/// A webhook receiver on a free loopback port: answers 500 to the first POST, then 200;
/// keeps every body.
struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let status = if n == 0 { "500 Internal Server Error" } else { "200 OK" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if n > 0 {
                    kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                }
            }
        });
        Webhook { port, bodies }
    }

    fn statuses(&self) -> Vec<String> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<serde_json::Value>(b).unwrap()["status"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

/// (id, state, fired_at set, resolved_at set) of every row of rule `busy`.
fn busy_rows(db: &mut postgres::Client) -> Vec<(i64, String, bool, bool)> {
    db.query("SELECT id, state, fired_at IS NOT NULL, resolved_at IS NOT NULL FROM pitstop.alerts WHERE rule = 'busy' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[test]
fn an_alert_goes_pending_firing_resolved_in_one_row_and_reaches_the_webhook() {
    let (cluster, _) = PgCluster::with_extension("");
    let mut db = cluster.connect();
    db.batch_execute(
        "INSERT INTO pitstop.host_metrics (sampled_at, host, metric, value) VALUES (now() - interval '30 days', 'old', 'pitstop_host_cpu_usage_ratio', 0.5)",
    )
    .unwrap();
    let webhook = Webhook::start();
    let config = monitor_config(&cluster.dsn())
        .set("alerts", &format!("webhook_url = \"http://127.0.0.1:{}/hook\"", webhook.port))
        .set("alerts", "webhook_timeout = \"2s\"")
        .toml();
    let mut daemon = Daemon::start(&(config.clone() + &rule(0)), &[]);

    // pending (at least the daemon's own session is connected), then firing after 2 s.
    let mut seen = Vec::new();
    let fired = poll_until(Duration::from_secs(20), || {
        let rows = busy_rows(&mut db);
        if let Some(row) = rows.last() {
            if seen.last() != Some(&row.1) {
                seen.push(row.1.clone());
            }
        }
        rows.iter().any(|r| r.1 == "firing")
    });
    assert!(fired, "no firing alert; seen {seen:?}\n{}", daemon.log());
    assert_eq!(seen, ["pending", "firing"], "{}", daemon.log());
    let rows = busy_rows(&mut db);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0].0;

    // The row is written before the daemon publishes its status: wait for that too.
    let mut status = daemon.status();
    poll_until(Duration::from_secs(5), || {
        status = daemon.status();
        status["monitor"]["firing"] == 1
    });
    let monitor = &status["monitor"];
    assert_eq!(monitor["firing"], 1, "{status}");
    assert_eq!(monitor["alerts"][0]["rule"], "busy");
    assert_eq!(monitor["alerts"][0]["state"], "firing");
    assert!(
        monitor["alerts"][0]["summary"].as_str().unwrap().starts_with("connections = "),
        "{status}"
    );
    assert_eq!(status["components"]["monitor"]["state"], "up", "{status}");
    assert_eq!(daemon.metric("pitstop_alerts_firing{severity=\"critical\"}"), 1.0);
    let (_, metrics) = daemon.get("/metrics");
    assert_contains_all(
        &metrics,
        "/metrics",
        &[
            "pitstop_host_cpu_usage_ratio ",
            "pitstop_host_memory_used_bytes ",
            "pitstop_host_disk_used_bytes{mount=",
            "pitstop_postgres_connections{state=\"active\"} ",
            "pitstop_postgres_xid_age ",
            "pitstop_postgres_max_connections 40",
            "pitstop_daemon_resident_bytes ",
        ],
    );
    assert!(
        poll_until(Duration::from_secs(10), || daemon.metric("pitstop_postgres_processes") >= 5.0),
        "postmaster and children: {metrics}"
    );

    // The webhook got it (its first POST was answered 500 and retried).
    assert!(
        poll_until(Duration::from_secs(10), || webhook.statuses().len() == 1),
        "webhook got {:?}\n{}",
        webhook.statuses(),
        daemon.log()
    );

    // A restart adopts the open row instead of opening a second one.
    daemon.restart();
    assert!(
        daemon.wait_for_log("taking over 1 open alert(s)", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(busy_rows(&mut db), [(id, "firing".to_string(), true, false)]);

    // The condition no longer holds after a reload: resolved, in the same row.
    std::fs::write(&daemon.config_path, config + &rule(1000)).unwrap();
    daemon.signal(SIGHUP);
    assert!(
        poll_until(Duration::from_secs(10), || busy_rows(&mut db)
            .iter()
            .any(|r| r.1 == "resolved")),
        "not resolved: {:?}\n{}",
        busy_rows(&mut db),
        daemon.log()
    );
    assert_eq!(busy_rows(&mut db), [(id, "resolved".to_string(), true, true)]);
    assert!(poll_until(Duration::from_secs(5), || daemon.status()["monitor"]["firing"] == 0));
    assert!(
        daemon.log().contains("monitor: alert busy resolved (critical) after "),
        "{}",
        daemon.log()
    );

    // The webhook got the resolution too.
    assert!(
        poll_until(Duration::from_secs(10), || webhook.statuses().len() >= 2),
        "webhook got {:?}\n{}",
        webhook.statuses(),
        daemon.log()
    );
    assert_eq!(webhook.statuses(), ["firing", "resolved"]);
    let resolved: serde_json::Value =
        serde_json::from_str(&webhook.bodies.lock().unwrap()[1]).unwrap();
    assert_eq!(
        (resolved["rule"].as_str(), resolved["severity"].as_str(), resolved["threshold"].as_f64()),
        (Some("busy"), Some("critical"), Some(0.0)),
        "the threshold it fired on"
    );
    assert!(resolved["resolved_at"].is_string() && resolved["fired_at"].is_string(), "{resolved}");

    // Samples are recorded; the 30-day-old one was pruned (retention 1d).
    let count =
        |db: &mut postgres::Client, sql: &str| db.query_one(sql, &[]).unwrap().get::<_, i64>(0);
    assert!(count(&mut db, "SELECT count(*) FROM pitstop.host_metrics WHERE metric = 'pitstop_host_memory_used_bytes'") > 0);
    assert!(count(&mut db, "SELECT count(*) FROM pitstop.host_metrics WHERE metric = 'pitstop_postgres_connections' AND labels ? 'state'") > 0);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM pitstop.host_metrics WHERE host = 'old'"),
        0,
        "retention did not prune"
    );
}

#[test]
fn without_the_extension_or_postgres_the_host_is_still_sampled() {
    let cluster = PgCluster::start();
    let daemon = Daemon::start(&(monitor_config(&cluster.dsn()).toml() + &rule(0)), &[]);
    assert!(
        daemon.wait_for_log(
            "monitor: the pitstop extension is not installed",
            Duration::from_secs(10)
        ),
        "{}",
        daemon.log()
    );
    assert!(
        poll_until(Duration::from_secs(10), || daemon.status()["monitor"]["firing"] == 1),
        "{}",
        daemon.status()
    );
    assert_eq!(daemon.status()["monitor"]["recorded"], false);
    assert!(daemon.metric("pitstop_postgres_max_connections") == 40.0);

    cluster.stop();
    let before = daemon.metric("pitstop_monitor_samples_total");
    assert!(
        poll_until(Duration::from_secs(10), || daemon.status()["components"]["monitor"]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("sampling the host only")),
        "{}",
        daemon.status()
    );
    assert!(poll_until(Duration::from_secs(5), || daemon.metric("pitstop_monitor_samples_total")
        > before + 3.0));
    assert!(daemon.metric("pitstop_host_memory_total_bytes") > 0.0);
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        !metrics.contains("pitstop_postgres_xid_age "),
        "PostgreSQL metrics are absent while it is down:\n{metrics}"
    );
    assert_eq!(
        daemon.status()["monitor"]["firing"],
        1,
        "a rule on a PostgreSQL metric keeps its state while PostgreSQL is down"
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("monitor: the pitstop extension is not installed").count(),
        1,
        "said once:\n{log}"
    );
}

#[test]
fn a_bad_rule_is_refused_with_its_key_path_and_nothing_is_written() {
    let (cluster, _) = PgCluster::with_extension("");
    let bad = monitor_config(&cluster.dsn()).toml()
        + "\n[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu\"\nthreshold = -5\nfor = \"1m\"\n";
    let dir = std::env::temp_dir().join(format!("pitstop-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pitstop.toml");
    std::fs::write(&path, &bad).unwrap();
    let (code, _, stderr) = pitstop_env(&["check-config", "--config", path.to_str().unwrap()], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "alerts.rules[0].metric: unknown metric \"cpu\"; valid metrics: cpu_percent,"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("alerts.rules[0].threshold: -5 is negative"), "{stderr}");

    let mut daemon = Daemon::start(&bad, &[]);
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon must refuse the configuration");
    assert_eq!(status.code(), Some(78), "{}", daemon.log());
    let mut db = cluster.connect();
    let rows: i64 = db.query_one("SELECT (SELECT count(*) FROM pitstop.alerts) + (SELECT count(*) FROM pitstop.host_metrics)", &[]).unwrap().get(0);
    assert_eq!(rows, 0);
}
