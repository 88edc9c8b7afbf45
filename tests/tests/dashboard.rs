//! The daemon's dashboard on `/`: one HTML page showing the components, host and PostgreSQL
//! metrics with sparklines, alerts and maintenance jobs, where a `<script>` in data (here an
//! alert rule's name) is shown as text; and the page still renders while PostgreSQL is down.

use pitstop_tests::{assert_contains_all, free_port, poll_until, Daemon, DaemonConfig, PgCluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const EVIL_RULE: &str = "<script>alert('rule')</script>";

/// GET `path`: (status line and headers, body).
fn get_with_headers(daemon: &Daemon, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", daemon.http_port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn the_dashboard_shows_every_part_and_escapes_data() {
    let (cluster, _) = PgCluster::with_extension("");
    let config = DaemonConfig::new(&cluster.dsn(), "")
        .set("monitor", "sample_interval = \"200ms\"")
        .set("monitor", "write_interval = \"400ms\"")
        .set("monitor", "window = \"1m\"")
        .set("monitor", "growth_window = \"1m\"")
        .toml()
        + &format!(
            "\n[[alerts.rules]]\nname = \"{}\"\nmetric = \"connections\"\ncomparison = \">=\"\nthreshold = 0\nfor = \"0s\"\nseverity = \"warning\"\n\
             \n[[maintenance.jobs]]\nname = \"prune-often\"\nkind = \"prune\"\nschedule = \"*/2 * * * * *\"\nkeep = \"30d\"\n",
            EVIL_RULE
        );
    let daemon = Daemon::start(&config, &[]);

    let ready = poll_until(Duration::from_secs(30), || {
        let status = daemon.status();
        status["monitor"]["firing"] == 1
            && status["monitor"]["samples"].as_u64().unwrap_or(0) >= 3
            && status["maintenance"]["jobs"][0]["last_run"]["outcome"].is_string()
    });
    assert!(
        ready,
        "no firing alert, window or job run; status {}\n{}",
        daemon.status(),
        daemon.log()
    );

    let (head, html) = get_with_headers(&daemon, "/host");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html; charset=utf-8"), "{head}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_contains_all(
        &html,
        "the dashboard",
        &[
            "postgres",
            "redis",
            "relay",
            "monitor",
            "maintenance",
            "Host",
            "PostgreSQL",
            "Disks",
            "prune-often",
            "*/2 * * * * *",
        ],
    );
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "a <script> from data reached the page unescaped:\n{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#39;rule&#39;)&lt;/script&gt;"),
        "the rule's name is shown as text:\n{html}"
    );
    assert!(
        html.contains("<span class=\"b warning\">warning</span>")
            && html.contains("<span class=\"b firing\">firing</span>"),
        "{html}"
    );
    assert!(
        html.contains("<svg") && html.contains("<polyline"),
        "sparklines from the monitor's window:\n{html}"
    );
    assert!(html.contains("of 40"), "connections against max_connections:\n{html}");
    assert!(html.contains("recorded in pitstop.host_metrics"), "{html}");
}

#[test]
fn the_dashboard_renders_while_postgres_is_down() {
    let dsn = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", free_port());
    let daemon = Daemon::start(
        &DaemonConfig::new(&dsn, "").set("monitor", "sample_interval = \"200ms\"").toml(),
        &[],
    );
    assert!(poll_until(Duration::from_secs(10), || daemon.status()["components"]["postgres"]
        ["state"]
        == "down"));
    let (code, html) = daemon.get("/host");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("<td>postgres</td><td><span class=\"b down\">down</span>"), "{html}");
    assert!(html.contains("Not sampled: see the monitor"), "{html}");
    assert!(html.contains("CPU"), "host metrics are sampled without PostgreSQL:\n{html}");
}
