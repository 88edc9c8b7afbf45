//! Integration harness: private PostgreSQL clusters (with the installed pitstop extension
//! preloaded), private redis-servers and Redis Clusters (`redis_server`) and `pitstop run`
//! daemons (`daemon`) on free loopback ports, removed on drop — also when a test panics — and
//! swept up on the next run if a test process was killed outright.

#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod cache_call;
pub mod cache_fuzz;
mod cache_stats;
mod daemon;
pub mod fixtures;
pub mod markdown;
pub mod query;
mod redis_server;

pub use cache_stats::{cache_stats, CacheStats};
pub use daemon::{
    console_paths, http_get, Daemon, DaemonConfig, NotifySocket, SIGHUP, SIGINT, SIGKILL, SIGTERM,
};
pub use redis_server::{
    tag_version, Received, RedisCluster, RedisOptions, RedisServer, Subscriber,
};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Where test instances live; each records its owner's pid so stale ones can be swept.
fn base_dir() -> PathBuf {
    std::env::var_os("PITSTOP_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/pitstop-tests"))
}

/// Whether this process runs as root: its effective uid, the second field of `Uid:` in
/// /proc/self/status.
fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"));
    uid.and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
}

/// How to run PostgreSQL's program `name` as the `postgres` OS user (Postgres refuses root):
/// through sudo when we are root, unless the bindir's programs switch user themselves (the
/// chroot wrappers of scripts/pgchroot.sh, marked by a `.runs-as-postgres` file).
pub fn postgres_argv(name: &str) -> Vec<std::ffi::OsString> {
    let program = pg_bin(name);
    let switches_itself =
        program.parent().is_some_and(|dir| dir.join(".runs-as-postgres").exists());
    if is_root() && !switches_itself {
        vec!["sudo".into(), "-u".into(), "postgres".into(), "--".into(), program.into()]
    } else {
        vec![program.into()]
    }
}

/// PostgreSQL's program `name`, run as the `postgres` OS user.
pub fn as_postgres(name: &str) -> Command {
    let argv = postgres_argv(name);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

/// Runs `cmd` (`what`, for the message); panics with its output unless it succeeds.
pub fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A fresh instance directory, owned by `postgres` when we are root.
fn instance_dir(kind: &str) -> PathBuf {
    let base = base_dir();
    fs::create_dir_all(&base).expect("create test base dir");
    sweep_stale(&base);
    let dir = base.join(format!(
        "{kind}-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create instance dir");
    fs::write(dir.join("owner.pid"), std::process::id().to_string()).expect("write owner.pid");
    if is_root() {
        run(Command::new("chown").args(["-R", "postgres"]).arg(&dir), "chown instance dir");
    }
    dir
}

/// Stops and removes instances whose test process no longer exists.
fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner =
            fs::read_to_string(dir.join("owner.pid")).ok().and_then(|s| s.trim().parse().ok());
        if owner.is_some_and(pid_alive) {
            continue;
        }
        // Another test thread may have just created it and not yet written owner.pid.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 60));
        if owner.is_none() && young {
            continue;
        }
        if dir.join("data/postmaster.pid").exists() {
            let _ = as_postgres("pg_ctl")
                .args(["stop", "-m", "immediate", "-D"])
                .arg(dir.join("data"))
                .output();
        }
        // Helper processes (redis-servers, daemons) record their pids as `*.pid`.
        let pid_files = fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path());
        for pid_file in pid_files
            .filter(|p| p.extension().is_some_and(|e| e == "pid") && !p.ends_with("owner.pid"))
        {
            if let Ok(pid) = fs::read_to_string(&pid_file) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).output();
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// PostgreSQL's program `name` of the major under test: the bindir of `$PG_CONFIG` (the
/// Makefile's; `pg_config` on the PATH when unset).
pub fn pg_bin(name: &str) -> PathBuf {
    static BINDIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let bindir = BINDIR.get_or_init(|| {
        let pg_config = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
        let out = run(Command::new(pg_config).arg("--bindir"), "pg_config --bindir");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    bindir.join(name)
}

/// How a test cluster is set up.
pub struct ClusterOptions {
    pub preload: Vec<&'static str>,
    pub settings: Vec<(&'static str, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { preload: vec!["pg_stat_statements", "pitstop"], settings: Vec::new() }
    }
}

/// A private PostgreSQL cluster on 127.0.0.1:`port`, stopped and deleted on drop.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// A cluster with pg_stat_statements and pitstop preloaded.
    pub fn start() -> PgCluster {
        Self::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> PgCluster {
        let dir = instance_dir("pg");
        let data = dir.join("data");
        run(
            as_postgres("initdb").args(["-D"]).arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]),
            "initdb",
        );
        Self::start_on_free_port(dir, &options, |port, dir| {
            format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 40\n",
                dir.display()
            )
        })
    }

    /// Appends `base(port, dir)`, the preload list and `options.settings` to the cluster's
    /// postgresql.conf and starts it. A port can be taken between choosing and binding it:
    /// retries a few times with fresh ports (later lines win over earlier ones).
    fn start_on_free_port(
        dir: PathBuf,
        options: &ClusterOptions,
        base: impl Fn(u16, &Path) -> String,
    ) -> PgCluster {
        let data = dir.join("data");
        for attempt in 0..5 {
            let port = free_port();
            let mut conf = base(port, &dir);
            conf.push_str(&format!("shared_preload_libraries = '{}'\n", options.preload.join(",")));
            for (name, value) in &options.settings {
                conf.push_str(&format!("{name} = '{value}'\n"));
            }
            let mut file =
                fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
            file.write_all(conf.as_bytes()).unwrap();
            let status = as_postgres("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .stdout(Stdio::null())
                .status()
                .expect("pg_ctl start");
            if status.success() {
                return PgCluster { dir, port };
            }
            eprintln!(
                "cluster did not start on port {port} (attempt {attempt}); log:\n{}",
                Self::log_of(&dir)
            );
        }
        panic!("cluster did not start; log:\n{}", Self::log_of(&dir));
    }

    /// A hot standby streaming from `primary`: a `pg_basebackup -R` of it, started with
    /// `options` on its own port; stopped and deleted on drop like any cluster.
    pub fn start_standby(primary: &PgCluster, options: ClusterOptions) -> PgCluster {
        let dir = instance_dir("pg");
        let data = dir.join("data");
        run(
            as_postgres("pg_basebackup").arg("-D").arg(&data).args([
                "-R",
                "-c",
                "fast",
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ]),
            "pg_basebackup",
        );
        // Appended after the primary's copied settings, so these win.
        Self::start_on_free_port(dir, &options, |port, dir| {
            format!(
                "port = {port}\nunix_socket_directories = '{}'\nhot_standby = on\n",
                dir.display()
            )
        })
    }

    fn log_of(dir: &Path) -> String {
        fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        Self::log_of(&self.dir)
    }

    pub fn dsn(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.dsn(), postgres::NoTls).expect("connect to test cluster")
    }

    /// A default cluster (`start`) with `CREATE EXTENSION pitstop` done and `setup` run by the
    /// superuser; returns that superuser's connection.
    pub fn with_extension(setup: &str) -> (PgCluster, postgres::Client) {
        Self::with_pitstop(ClusterOptions::default(), setup)
    }

    /// A cluster started with `options`, `CREATE EXTENSION pitstop` done and `setup` run by
    /// the superuser; returns that superuser's connection.
    pub fn with_pitstop(options: ClusterOptions, setup: &str) -> (PgCluster, postgres::Client) {
        let cluster = PgCluster::start_with(options);
        let mut client = cluster.connect();
        client.batch_execute("CREATE EXTENSION pitstop").unwrap();
        client.batch_execute(setup).unwrap();
        (cluster, client)
    }

    /// A connection as another login role (trust authentication), to database `dbname`.
    pub fn connect_as(&self, user: &str, dbname: &str) -> postgres::Client {
        let dsn = format!("host=127.0.0.1 port={} user={user} dbname={dbname}", self.port);
        postgres::Client::connect(&dsn, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect as {user} to {dbname}: {e}"))
    }

    /// Restarts the server (for settings that need it), keeping data and port.
    pub fn restart(&self) {
        self.pg_ctl_logged(&["restart", "-w", "-m", "fast"], "pg_ctl restart");
    }

    /// `pg_ctl <args>` on this cluster, the server logging to its `server.log`.
    fn pg_ctl_logged(&self, args: &[&str], what: &str) {
        run(
            as_postgres("pg_ctl")
                .args(args)
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .stdout(Stdio::null()),
            what,
        );
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the server (fast shutdown), keeping data and port; `start_again` brings it back.
    pub fn stop(&self) {
        run(
            as_postgres("pg_ctl")
                .args(["stop", "-w", "-m", "fast", "-D"])
                .arg(self.dir.join("data"))
                .stdout(Stdio::null()),
            "pg_ctl stop",
        );
    }

    pub fn start_again(&self) {
        self.pg_ctl_logged(&["start", "-w", "-t", "60"], "pg_ctl start");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `pitstop` binary built from this workspace.
pub fn pitstop_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PITSTOP_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/pitstop");
    assert!(
        bin.exists(),
        "{} missing: build it with `cargo build -p pitstop-daemon`",
        bin.display()
    );
    bin
}

/// Runs `pitstop` with arguments; returns (exit code, stdout, stderr).
pub fn pitstop(args: &[&str]) -> (i32, String, String) {
    pitstop_env(args, &[])
}

/// Runs `pitstop` with arguments and environment variables (no other `PITSTOP_*` ones).
/// Runs `pitstop args`, asserts that it failed with exit code 1; its stderr.
pub fn pitstop_error(args: &[&str]) -> String {
    let (code, out, err) = pitstop(args);
    assert_eq!(code, 1, "pitstop {args:?}:\n{out}\n{err}");
    err
}

pub fn pitstop_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(pitstop_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PITSTOP_") && k != "PITSTOP_BIN" {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().expect("run pitstop");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A new empty directory for a test's own files (configs, scripts), removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!(
            "pitstop-{name}-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs the daemon's statement snapshot job once through the CLI (`pitstop maintenance --job`),
/// against `dsn`; panics with the output when it fails.
pub fn run_snapshot_job(dsn: &str) {
    let dir = ScratchDir::new("snapshot-job");
    let config = dir.path().join("pitstop.toml");
    std::fs::write(
        &config,
        "[[maintenance.jobs]]\nname = \"snap\"\nkind = \"snapshot\"\nschedule = \"0 * * * *\"\n",
    )
    .unwrap();
    let (code, out, err) = pitstop(&[
        "--dsn",
        dsn,
        "maintenance",
        "--job",
        "snap",
        "--yes",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// Asserts that `text` (`what`, for the message) contains each of `parts`.
pub fn assert_contains_all(text: &str, what: &str, parts: &[&str]) {
    let missing: Vec<&str> = parts.iter().copied().filter(|p| !text.contains(p)).collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}:\n{text}");
}

/// Polls `condition` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
