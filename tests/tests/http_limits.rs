//! Review R15 finding 3: any local user could open connections to the daemon's HTTP port and
//! keep them idle; none was ever closed and none refused, until the daemon ran out of file
//! descriptors (the relay could not reconnect, /healthz hung). Now at most 256 connections
//! are served at once (more wait in the kernel's backlog), and one that sends no complete
//! request headers within 10 s, or sits idle that long between requests, is closed.

use pitstop_tests::{Daemon, DaemonConfig, PgCluster};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// More than the daemon serves at once (256).
const IDLE: usize = 300;

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn idle_connections_are_capped_and_closed_and_healthz_still_answers() {
    let (cluster, _c) = PgCluster::with_extension("");
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), "").toml(), &[]);
    let port = daemon.http_port();
    let before = open_descriptors(daemon.pid());

    // Connections that never send a byte, and one that sends half a request.
    let mut idle: Vec<TcpStream> =
        (0..IDLE).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    idle[0].write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let held = open_descriptors(daemon.pid());
    assert!(
        held <= before + 256,
        "the daemon holds {held} descriptors with {IDLE} idle connections (before: {before})"
    );

    // A fresh request waits at most until the idle ones time out.
    let started = Instant::now();
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fresh.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
    write!(fresh, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let read = fresh.read_to_string(&mut answer);
    assert!(
        read.is_ok() && answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "/healthz after {:?}: {read:?} {answer:?}\n{}",
        started.elapsed(),
        daemon.log()
    );
    assert!(started.elapsed() < Duration::from_secs(20), "/healthz took {:?}", started.elapsed());

    // The first idle connections were closed by the daemon (end of stream, or a reset).
    for (i, stream) in idle.iter_mut().take(10).enumerate() {
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 512];
        let closed = match stream.read(&mut buf) {
            Ok(n) => n == 0 || (i == 0 && buf[..n].starts_with(b"HTTP/1.1 408")),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "idle connection {i} is still open");
    }
}
