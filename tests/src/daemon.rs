//! `pitstop run` as a child process of a test, its configuration, its HTTP endpoints and a
//! stand-in for systemd's notification socket.

use super::{instance_dir, pitstop_bin, poll_until};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// `pitstop run` as a child process, with its configuration file and log (stderr) in a
/// private directory; killed on drop. The configuration should say
/// `[http] listen = "127.0.0.1:0"`: the daemon logs the port it got.
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl Daemon {
    /// Writes `config` and starts the daemon with `env`; returns once it is listening on
    /// HTTP or has exited (check with `wait_exit`).
    pub fn start(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = instance_dir("daemon");
        let config_path = dir.join("pitstop.toml");
        fs::write(&config_path, config).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut daemon =
            Daemon { child: None, log_path: dir.join("daemon.log"), dir, env, config_path };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let listening_before = self.log().matches("http: listening on").count();
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        let mut cmd = Command::new(pitstop_bin());
        cmd.arg("run").arg("--config").arg(&self.config_path);
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("PITSTOP_")
                || name == "NOTIFY_SOCKET"
                || name.starts_with("WATCHDOG_")
            {
                cmd.env_remove(&k);
            }
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pitstop run");
        fs::write(self.dir.join("daemon.pid"), child.id().to_string()).unwrap();
        self.child = Some(child);
        poll_until(Duration::from_secs(20), || {
            let listening = self.log().matches("http: listening on").count() > listening_before;
            listening || self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
        });
    }

    /// Starts the daemon again (after `kill`/`signal`), same configuration and environment.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon not running").id()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").arg(format!("-{sig}")).arg(&pid).status();
        assert!(status.as_ref().is_ok_and(|s| s.success()), "kill -{sig} {pid}: {status:?}");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status, if the daemon exits within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (counting from the latest start).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll_until(timeout, || {
            self.log().rsplit("starting (config file").next().is_some_and(|l| l.contains(needle))
        })
    }

    /// The HTTP port of the latest start.
    pub fn http_port(&self) -> u16 {
        let log = self.log();
        let line =
            log.rsplit("http: listening on ").next().filter(|_| log.contains("http: listening on"));
        // `127.0.0.1:PORT` ends the line (plain) or the message string (JSON).
        let addr = line
            .map(|l| l.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect::<String>());
        let port = addr.as_deref().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok());
        port.unwrap_or_else(|| panic!("daemon is not listening on HTTP; log:\n{log}"))
    }

    /// GET `path` from the daemon: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port(), path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}; log:\n{}", self.log()))
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "/status: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A metric's value from `/metrics` (the sample line that starts with `name`).
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find(|l| l.split(' ').next() == Some(sample))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{body}"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// GETs every page of `console_paths(queryid)`; each must answer 200.
    pub fn assert_every_page_answers(&self, queryid: i64) {
        for path in console_paths(queryid) {
            let (code, body) = self.get(&path);
            assert_eq!(code, 200, "{path}: {body}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("PITSTOP_TEST_SHOW_LOGS").is_some() {
            eprintln!("daemon log:\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every console page and its JSON, `queryid`'s statement page among them, and the daemon's
/// other endpoints.
pub fn console_paths(queryid: i64) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/",
        "/api/overview",
        "/queries",
        "/api/queries",
        "/indexes",
        "/api/indexes",
        "/vacuum",
        "/api/vacuum",
        "/settings",
        "/api/settings",
        "/connections",
        "/api/connections",
        "/cache",
        "/api/cache",
        "/maintenance",
        "/api/maintenance",
        "/api/host",
        "/metrics",
        "/status",
    ]
    .map(String::from)
    .to_vec();
    paths.push(format!("/api/queries/{queryid}"));
    paths.push(format!("/queries/{queryid}"));
    paths
}

/// A plain HTTP/1.1 GET on loopback: (status code, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    pub path: PathBuf,
    dir: PathBuf,
    received: Vec<String>,
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl NotifySocket {
    /// Binds a socket in a private directory, removed on drop.
    pub fn bind() -> NotifySocket {
        let dir = instance_dir("notify");
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        NotifySocket { socket, path, dir, received: Vec::new() }
    }

    /// Every message received so far (each may hold several `KEY=VALUE` lines).
    pub fn messages(&mut self) -> &[String] {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        &self.received
    }

    /// Waits until some received line equals `line` (e.g. `READY=1`).
    pub fn wait_for(&mut self, line: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.messages().iter().any(|m| m.lines().any(|l| l == line)))
    }

    /// Waits until some received line starts with `prefix` (e.g. `STATUS=`).
    pub fn wait_for_prefix(&mut self, prefix: &str, timeout: Duration) -> bool {
        poll_until(timeout, || {
            self.messages().iter().any(|m| m.lines().any(|l| l.starts_with(prefix)))
        })
    }

    pub fn has(&mut self, line: &str) -> bool {
        self.messages().iter().any(|m| m.lines().any(|l| l == line))
    }
}

/// A daemon configuration for tests: HTTP on a kernel-chosen loopback port, quick reconnects
/// and polls, debug logs; more `key = value` lines per section with `set`.
#[derive(Clone)]
pub struct DaemonConfig {
    sections: Vec<(String, Vec<String>)>,
}

impl DaemonConfig {
    /// `redis_url` empty: no relay.
    pub fn new(postgres_dsn: &str, redis_url: &str) -> DaemonConfig {
        let mut c = DaemonConfig { sections: Vec::new() };
        c = c.set("postgres", &format!("dsn = {postgres_dsn:?}"));
        if !redis_url.is_empty() {
            c = c.set("redis", &format!("url = {redis_url:?}"));
        }
        c.set("relay", "poll_interval = \"200ms\"")
            .set("reconnect", "initial_delay = \"50ms\"")
            .set("reconnect", "max_delay = \"500ms\"")
            .set("http", "listen = \"127.0.0.1:0\"")
            .set("log", "level = \"debug,tokio_postgres=info,hyper=info,redis=info\"")
    }

    /// Sets `line` (`key = value`) in `[section]` ("" for top-level keys), replacing that key.
    pub fn set(mut self, section: &str, line: &str) -> DaemonConfig {
        let key = line.split('=').next().unwrap_or("").trim().to_string();
        let index = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let lines = &mut self.sections[index].1;
        lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
        lines.push(line.to_string());
        self
    }

    pub fn toml(&self) -> String {
        let mut sections: Vec<&(String, Vec<String>)> = self.sections.iter().collect();
        sections.sort_by_key(|(s, _)| !s.is_empty());
        sections
            .iter()
            .map(|(s, lines)| {
                if s.is_empty() {
                    lines.join("\n") + "\n"
                } else {
                    format!("[{s}]\n{}\n", lines.join("\n"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
