//! `pitstop run` as a systemd service and `pitstop check-config`: readiness through a test
//! NOTIFY_SOCKET, the watchdog, reload on SIGHUP (a broken file is rejected and the running
//! configuration kept), prompt exit on SIGTERM/SIGINT, the HTTP endpoints, and every kind of
//! bad configuration — in the file or the environment — named by its key.

use pitstop_tests::{
    assert_contains_all, pitstop_env, poll_until, Daemon, DaemonConfig, NotifySocket, PgCluster,
    ScratchDir, SIGHUP, SIGINT, SIGTERM,
};
use std::time::{Duration, Instant};

fn write_config(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// `pitstop check-config --config <file with text>` with `env`.
fn check_config(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = ScratchDir::new("check");
    let path = dir.path().join("pitstop.toml");
    write_config(&path, text);
    pitstop_env(&["check-config", "--config", path.to_str().unwrap()], env)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

// ---- systemd -----------------------------------------------------------------------------

#[test]
fn ready_only_once_postgres_is_reachable_then_sigterm_exits_zero() {
    let (cluster, _) = PgCluster::with_extension("");
    cluster.stop();
    let mut notify = NotifySocket::bind();
    let socket = notify.path.display().to_string();
    let mut daemon =
        Daemon::start(&DaemonConfig::new(&cluster.dsn(), "").toml(), &[("NOTIFY_SOCKET", &socket)]);

    // Postgres is down: alive, not ready, saying why.
    assert_eq!(daemon.get("/healthz").0, 200);
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(poll_until(Duration::from_secs(10), || daemon.status()["components"]["postgres"]
        ["state"]
        == "down"));
    assert!(
        notify.wait_for_prefix("STATUS=", Duration::from_secs(5)),
        "no STATUS= line: {:?}",
        notify.messages()
    );
    assert!(!notify.has("READY=1"), "READY=1 before Postgres was reachable");
    assert_eq!(daemon.metric("pitstop_postgres_up"), 0.0);

    cluster.start_again();
    assert!(
        notify.wait_for("READY=1", Duration::from_secs(20)),
        "no READY=1 after Postgres came up: {:?}\n{}",
        notify.messages(),
        daemon.log()
    );
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["redis"], "disabled", "{ready}");
    assert_eq!(daemon.metric("pitstop_postgres_up"), 1.0);

    // Without Redis the relay is off, and the log says so once.
    assert_eq!(
        daemon.log().matches("relay: disabled (no redis.url configured)").count(),
        1,
        "{}",
        daemon.log()
    );
    let status = daemon.status();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["profile"], "balanced");
    assert_eq!(status["extension"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["components"]["relay"]["state"], "disabled");
    assert!(status["uptime_seconds"].as_f64().unwrap() > 0.0);
    assert!(status["relay"]["lag_seconds"].is_number(), "{status}");

    let (_, metrics) = daemon.get("/metrics");
    assert_contains_all(
        &metrics,
        "/metrics",
        &[
            "pitstop_build_info{version=",
            "pitstop_relay_delivered_total ",
            "pitstop_relay_lag_seconds ",
            "pitstop_relay_batches_total ",
            "pitstop_redis_up ",
        ],
    );

    let asked = Instant::now();
    daemon.signal(SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(5)).expect("still running 5 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(notify.has("STOPPING=1"), "{:?}", notify.messages());
}

#[test]
fn pitstop_status_shows_each_component_and_exits_3_when_one_is_down() {
    let (cluster, _) = PgCluster::with_extension("");
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), "").toml(), &[]);
    assert!(
        poll_until(Duration::from_secs(20), || daemon.get("/readyz").0 == 200),
        "{}",
        daemon.log()
    );
    let url = format!("http://127.0.0.1:{}/status", daemon.http_port());

    let (code, out, err) = pitstop_env(&["status", "--url", &url], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with(&format!("pitstop {}, up ", env!("CARGO_PKG_VERSION"))), "{out}");
    assert!(out.lines().any(|l| l.contains("postgres") && l.contains(" up ")), "{out}");
    let (code, out, _) = pitstop_env(&["status", "--url", &url, "--json"], &[]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["components"]["postgres"]["state"], "up", "{status}");
    assert_eq!(status["components"]["relay"]["state"], "disabled", "{status}");

    // PostgreSQL goes away: the daemon still answers, and says which component is down.
    cluster.stop();
    assert!(poll_until(Duration::from_secs(10), || daemon.status()["components"]["postgres"]
        ["state"]
        == "down"));
    let (code, out, _) = pitstop_env(&["status", "--url", &url], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.lines().any(|l| l.contains("postgres") && l.contains(" down ")), "{out}");

    // No daemon there: exit 1 with the address tried and a hint.
    let nobody = format!("http://127.0.0.1:{}/status", pitstop_tests::free_port());
    let (code, _, err) = pitstop_env(&["status", "--url", &nobody], &[]);
    assert_eq!(code, 1);
    assert!(err.contains(&nobody) && err.contains("HINT"), "{err}");
}

#[test]
fn sighup_applies_a_good_config_and_rejects_a_broken_one() {
    let (cluster, _) = PgCluster::with_extension("");
    let mut notify = NotifySocket::bind();
    let socket = notify.path.display().to_string();
    let config = DaemonConfig::new(&cluster.dsn(), "");
    let mut daemon = Daemon::start(&config.toml(), &[("NOTIFY_SOCKET", &socket)]);
    assert!(notify.wait_for("READY=1", Duration::from_secs(20)), "{}", daemon.log());

    let broken =
        config.clone().set("relay", "bogus = 1").set("http", "listen = \"127.0.0.1:99999\"");
    write_config(&daemon.config_path, &broken.toml());
    daemon.signal(SIGHUP);
    assert!(
        daemon.wait_for_log("configuration reload rejected", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains("http.listen: bad port 99999") && log.contains("relay.bogus: unknown key"),
        "{log}"
    );
    assert!(notify.wait_for("RELOADING=1", Duration::from_secs(5)));
    assert_eq!(daemon.status()["profile"], "balanced", "the running configuration must stay");
    assert_eq!(daemon.metric("pitstop_config_reloads_total{result=\"rejected\"}"), 1.0);

    write_config(&daemon.config_path, &config.set("", "profile = \"aggressive\"").toml());
    daemon.signal(SIGHUP);
    assert!(
        daemon.wait_for_log("configuration reloaded; changed: profile", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.status()["profile"], "aggressive");
    assert_eq!(daemon.metric("pitstop_config_reloads_total{result=\"applied\"}"), 1.0);

    daemon.signal(SIGINT);
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()), Some(0));
}

#[test]
fn watchdog_is_pinged_when_systemd_asks() {
    // No Postgres at all: the watchdog is about the process, not its connections.
    let mut notify = NotifySocket::bind();
    let socket = notify.path.display().to_string();
    let dsn =
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", pitstop_tests::free_port());
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "200000"),
        ("PITSTOP_LOG_FORMAT", "json"),
    ];
    let daemon = Daemon::start(&DaemonConfig::new(&dsn, "").toml(), &env);
    let pinged = poll_until(Duration::from_secs(5), || {
        notify.messages().iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count() >= 3
    });
    assert!(pinged, "{:?}\n{}", notify.messages(), daemon.log());
    assert!(!notify.has("READY=1"));

    // Logs were JSON on request, one object per line, saying why Postgres is unreachable.
    let log = daemon.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"].as_str().is_some_and(|m| m.starts_with("postgres: cannot connect"))),
        "{log}"
    );
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{log}");
}

// ---- configuration -------------------------------------------------------------------------

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let text =
        "profile = \"low-overhead\"\n[postgres]\ndsn = \"host=db user=app password=pg-secret\"\n\
                [redis]\nurl = \"redis://:redis-secret@cache:6379/0\"\n";
    let (code, out, err) = check_config(text, &[("PITSTOP_HTTP_LISTEN", "127.0.0.1:9999")]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("secret"), "a secret was printed:\n{out}");
    assert_contains_all(
        &out,
        "check-config",
        &[
            "password=********",
            "redis://:********@cache:6379/0",
            "listen = \"127.0.0.1:9999\"",
            "# from PITSTOP_HTTP_LISTEN",
        ],
    );
    assert!(out.contains("poll_interval = \"5s\""), "low-overhead profile not applied:\n{out}");

    let (code, out, _) = check_config("", &[("PITSTOP_PROFILE", "aggressive")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("profile = \"aggressive\"") && out.contains("poll_interval = \"200ms\""),
        "{out}"
    );
    assert!(out.contains("the Redis relay will not run (no redis.url configured)"), "{out}");
}

#[test]
fn check_config_reports_every_bad_value_and_unknown_key() {
    let text = "profile = \"turbo\"\nverbose = true\n\
                [postgres]\ndsn = \"host=db port=notaport\"\nstatement_timeout = \"5 parsecs\"\n\
                [redis]\nurl = \"http://cache:6379\"\n\
                [relay]\nbatch_sise = 10\npoll_interval = 5\n\
                [http]\nlisten = \"127.0.0.1:70000\"\n";
    let (code, out, err) = check_config(text, &[]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "nothing is printed as effective when invalid:\n{out}");
    for key in [
        "profile: \"turbo\" is not one of",
        "verbose: unknown key",
        "postgres.dsn: not a valid connection string",
        "postgres.statement_timeout: \"5 parsecs\" is not a duration",
        "redis.url: \"http://cache:6379\" is not a redis://",
        "relay.batch_sise: unknown key",
        "relay.poll_interval: expected a duration",
        "http.listen: bad port 70000",
    ] {
        assert!(err.contains(key), "missing {key:?} in:\n{err}");
    }
    assert!(err.contains("invalid configuration (8 problems)"), "{err}");
}

#[test]
fn bad_environment_values_are_errors_naming_the_key_and_variable() {
    let (code, _, err) = check_config(
        "",
        &[
            ("PITSTOP_HTTP_LISTEN", "nonsense"),
            ("PITSTOP_RELAY_BATCH_SIZE", "lots"),
            ("PITSTOP_REDIS_PASWORD", "x"),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("http.listen: \"nonsense\" is not an address:port")
            && err.contains("(from PITSTOP_HTTP_LISTEN)"),
        "{err}"
    );
    assert!(
        err.contains(
            "relay.batch_size: \"lots\" is not a whole number (from PITSTOP_RELAY_BATCH_SIZE)"
        ),
        "{err}"
    );
    assert!(err.contains("redis.pasword: unknown key (from PITSTOP_REDIS_PASWORD)"), "{err}");
}

#[test]
fn check_config_with_a_missing_or_malformed_file() {
    let (code, _, err) =
        pitstop_env(&["check-config", "--config", "/nonexistent/pitstop.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/pitstop.toml: cannot read the configuration file"), "{err}");
    let (code, _, err) = check_config("[http\nlisten = 1\n", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("not valid TOML") && err.contains("line 1"), "{err}");
}

#[test]
fn the_daemon_refuses_to_start_half_configured() {
    let mut notify = NotifySocket::bind();
    let socket = notify.path.display().to_string();
    let mut daemon = Daemon::start(
        &DaemonConfig::new("host=127.0.0.1", "").set("relay", "batch_size = 0").toml(),
        &[("NOTIFY_SOCKET", &socket), ("PITSTOP_REDIS_URL", "redis://x:notaport")],
    );
    let status = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("the daemon kept running with a bad configuration");
    assert_eq!(status.code(), Some(78), "EX_CONFIG expected; log:\n{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("relay.batch_size: 0 is outside 1..=100000"), "{log}");
    assert!(log.contains("redis.url:") && log.contains("(from PITSTOP_REDIS_URL)"), "{log}");
    assert!(
        !log.contains("http: listening"),
        "HTTP started before the configuration was valid:\n{log}"
    );
    assert!(notify.messages().is_empty(), "{:?}", notify.messages());
}

// ---- the unit file ---------------------------------------------------------------------------

#[test]
fn systemd_unit_is_a_hardened_notify_service_that_systemd_analyze_accepts() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../daemon/systemd/pitstop.service"
    ))
    .unwrap();
    for directive in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "WatchdogSec=",
        "User=pitstop",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(directive), "pitstop.service lacks {directive:?}");
    }
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output()
    else {
        eprintln!("systemd-analyze is not installed: only the directives were checked");
        return;
    };
    assert!(version.status.success());
    // verify needs ExecStart's binary to exist: point the unit at the one just built.
    let dir =
        std::env::temp_dir().join(format!("pitstop-unit-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pitstop.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pitstop", &pitstop_tests::pitstop_bin().display().to_string()),
    )
    .unwrap();
    let out =
        std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}
