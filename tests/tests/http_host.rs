//! The daemon's HTTP endpoints answer only to their own Host names (DNS rebinding): the
//! listening address, localhost, and `http.allowed_hosts`; any other Host header — what a
//! browser sends after a name it was given resolved to 127.0.0.1 — gets 421. A request
//! without a Host header (HTTP/1.0) is served.

use pitstop_tests::{free_port, Daemon, DaemonConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `head` (request line and headers, without the blank line) and returns (status, body).
fn request(port: u16, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}"))
}

/// A daemon whose PostgreSQL is nowhere (HTTP does not need it).
fn daemon(extra_http: &[&str], env: &[(&str, &str)]) -> Daemon {
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=1",
        free_port()
    );
    let config = extra_http.iter().fold(DaemonConfig::new(&dsn, ""), |c, line| c.set("http", line));
    Daemon::start(&config.toml(), env)
}

#[test]
fn a_forged_host_header_is_refused_and_our_own_names_are_served() {
    let d = daemon(&[], &[]);
    let port = d.http_port();
    for path in ["/status", "/metrics", "/", "/readyz", "/healthz"] {
        let (code, body) = get(port, path, &format!("rebind.attacker.example:{port}"));
        assert_eq!(code, 421, "{path}: {body}");
        assert!(
            body.contains("Misdirected Request") && !body.contains("version"),
            "{path}: {body}"
        );
    }
    for host in [
        "evil.example",
        "127.0.0.1.nip.io:{port}",
        "localhost:1",
        "127.0.0.2:{port}",
        "[::1]:{port}",
    ] {
        let host = host.replace("{port}", &port.to_string());
        assert_eq!(get(port, "/status", &host).0, 421, "{host}");
    }
    let (code, body) = request(
        port,
        &format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example"),
    );
    assert_eq!(code, 421, "two Host headers: {body}");
    let (code, body) = request(
        port,
        &format!("GET http://evil.example:{port}/status HTTP/1.1\r\nHost: 127.0.0.1:{port}"),
    );
    assert_eq!(code, 421, "an absolute-form target names another host: {body}");

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "127.0.0.1".to_string(),
        format!("LocalHost:{port}"),
    ] {
        let (code, body) = get(port, "/status", &host);
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains("\"version\""), "{body}");
    }
    let (code, body) = request(port, "GET /healthz HTTP/1.0");
    assert_eq!((code, body.as_str()), (200, "ok\n"), "HTTP/1.0 without Host");
    assert!(d.log().contains("refused: Host"), "refusals are logged (debug):\n{}", d.log());
}

#[test]
fn names_in_allowed_hosts_are_served() {
    let d = daemon(&["allowed_hosts = [\"pitstop.test\", \"metrics.test:8443\"]"], &[]);
    let port = d.http_port();
    assert_eq!(get(port, "/metrics", "pitstop.test").0, 200);
    assert_eq!(get(port, "/metrics", &format!("PITSTOP.test:{port}")).0, 200);
    assert_eq!(get(port, "/metrics", "metrics.test:8443").0, 200);
    assert_eq!(
        get(port, "/metrics", &format!("metrics.test:{port}")).0,
        421,
        "that name only with its port"
    );
    assert_eq!(get(port, "/metrics", "other.test").0, 421);
    assert_eq!(get(port, "/metrics", &format!("127.0.0.1:{port}")).0, 200);
    drop(d);

    // From the environment, as a comma-separated list.
    let d = daemon(&[], &[("PITSTOP_HTTP_ALLOWED_HOSTS", "a.test, b.test")]);
    let port = d.http_port();
    assert_eq!(
        (
            get(port, "/healthz", "a.test").0,
            get(port, "/healthz", "b.test").0,
            get(port, "/healthz", "c.test").0
        ),
        (200, 200, 421)
    );
}

#[test]
fn a_bad_allowed_hosts_entry_is_named_by_its_key() {
    let mut d = daemon(&["allowed_hosts = [\"ok.test\", \"http://x\"]"], &[]);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon started with a bad http.allowed_hosts");
    assert_eq!(status.code(), Some(78), "{}", d.log());
    assert!(d.log().contains("http.allowed_hosts: \"http://x\" is not a host name"), "{}", d.log());
}
