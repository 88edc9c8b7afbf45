//! Private redis-servers and Redis Clusters on loopback, and a subscriber that records what
//! it receives.

use super::{free_port, instance_dir, poll_until, run};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How a test redis-server runs.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// Append-only file with fsync on every write, so that a SIGKILL loses nothing that was
    /// acknowledged (for fault tests that restart Redis).
    pub persistent: bool,
    /// A fixed port (e.g. one a daemon was configured with before Redis started).
    pub port: Option<u16>,
    /// More `redis-server` arguments (`--requirepass`, TLS, …).
    pub args: Vec<String>,
}

/// The invalidation version Redis holds for `tag` (0 when none was written).
pub fn tag_version(redis: &mut impl redis::ConnectionLike, tag: &str) -> i64 {
    redis::cmd("GET")
        .arg(format!("pitstop:ver:{tag}"))
        .query::<Option<i64>>(redis)
        .unwrap()
        .unwrap_or(0)
}

/// A private redis-server on 127.0.0.1:`port`, without persistence unless asked; killed on
/// drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    options: RedisOptions,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(RedisOptions::default())
    }

    pub fn start_with(options: RedisOptions) -> RedisServer {
        let dir = instance_dir("redis");
        for _ in 0..5 {
            let port = options.port.unwrap_or_else(free_port);
            if let Some(child) = spawn_redis(&dir, port, &options, &[]) {
                return RedisServer { child: Some(child), dir, options, port };
            }
        }
        panic!("redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn ping(&self) -> bool {
        redis_ping(self.port)
    }

    /// A client connection (for the test's own commands).
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL: no shutdown save; with `persistent` every acknowledged write survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = spawn_redis(&self.dir, self.port, &self.options, &[]) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

/// Starts redis-server on `port` in `dir` and waits until it answers; None if it exited.
fn spawn_redis(dir: &Path, port: u16, options: &RedisOptions, extra: &[String]) -> Option<Child> {
    let persistence: &[&str] = if options.persistent {
        &["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--appendonly", "no"]
    };
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(persistence)
        .arg("--dir")
        .arg(dir)
        .args(&options.args)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server (is it installed? run scripts/setup.sh)");
    fs::write(dir.join(format!("redis-{port}.pid")), child.id().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis_answers(port) {
            return Some(child);
        }
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` primaries (no replicas) on loopback, all slots assigned.
pub struct RedisCluster {
    nodes: Vec<Child>,
    dir: PathBuf,
    pub ports: Vec<u16>,
}

impl RedisCluster {
    pub fn start(n: usize) -> RedisCluster {
        let dir = instance_dir("redis-cluster");
        let mut cluster = RedisCluster { nodes: Vec::new(), dir, ports: Vec::new() };
        while cluster.nodes.len() < n {
            let port = free_port();
            let conf = cluster.dir.join(format!("nodes-{port}.conf"));
            let args = [
                "--cluster-enabled".to_string(),
                "yes".into(),
                "--cluster-config-file".into(),
                conf.display().to_string(),
            ];
            let options = RedisOptions { args: args.to_vec(), ..Default::default() };
            if let Some(child) = spawn_redis(&cluster.dir, port, &options, &[]) {
                cluster.nodes.push(child);
                cluster.ports.push(port);
            }
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        run(
            Command::new("redis-cli").arg("--cluster").arg("create").args(&addrs).args([
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ]),
            "redis-cli --cluster create",
        );
        let ready = poll_until(Duration::from_secs(30), || {
            cluster.ports.iter().all(|p| {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output();
                out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            })
        });
        assert!(ready, "redis cluster did not reach cluster_state:ok");
        cluster
    }

    /// Seed URLs for `redis.url` (comma-separated).
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect::<Vec<_>>().join(",")
    }

    /// A cluster client connection (routes each command to its slot's node).
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> =
            self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect();
        redis::cluster::ClusterClient::new(nodes)
            .and_then(|c| c.get_connection())
            .expect("connect to test redis cluster")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The first line a server on `port` answers to PING over a plain socket, if any.
fn ping_reply(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"PING\r\n").ok()?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read_exact(&mut byte).is_ok() && byte[0] != b'\n' {
        reply.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&reply).trim_end().to_string())
}

/// Whether something speaking RESP answers on `port` (PONG, or an error such as NOAUTH).
fn redis_answers(port: u16) -> bool {
    ping_reply(port).is_some_and(|r| r.starts_with('+') || r.starts_with('-'))
}

fn redis_ping(port: u16) -> bool {
    ping_reply(port).as_deref() == Some("+PONG")
}

/// One message a `Subscriber` received.
#[derive(Clone, Debug)]
pub struct Received {
    pub channel: String,
    pub payload: String,
    pub at: Instant,
}

/// A Redis subscription on its own thread, collecting every message with the time it
/// arrived; unsubscribed on drop.
pub struct Subscriber {
    messages: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// SUBSCRIBE to `channel` (PSUBSCRIBE when it holds a `*`); returns once confirmed.
    pub fn start(url: &str, channel: &str) -> Subscriber {
        let mut conn =
            redis::Client::open(url).and_then(|c| c.get_connection()).expect("connect subscriber");
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (subscribed_tx, subscribed_rx) = std::sync::mpsc::channel();
        let channel = channel.to_string();
        let thread = std::thread::spawn({
            let (messages, stop) = (messages.clone(), stop.clone());
            move || {
                let mut pubsub = conn.as_pubsub();
                if channel.contains('*') {
                    pubsub.psubscribe(&channel)
                } else {
                    pubsub.subscribe(&channel)
                }
                .expect("subscribe");
                pubsub.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                subscribed_tx.send(()).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(msg) = pubsub.get_message() {
                        let at = Instant::now();
                        let payload: String = msg.get_payload().unwrap_or_default();
                        messages.lock().unwrap().push(Received {
                            channel: msg.get_channel_name().to_string(),
                            payload,
                            at,
                        });
                    }
                }
            }
        });
        subscribed_rx.recv_timeout(Duration::from_secs(10)).expect("subscription not confirmed");
        Subscriber { messages, stop, thread: Some(thread) }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    /// The messages so far, once `done` holds for them or `timeout` passed.
    pub fn wait(&self, timeout: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        poll_until(timeout, || done(&self.messages.lock().unwrap()));
        self.messages()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
