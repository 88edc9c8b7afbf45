//! `/metrics` of real daemons against a cluster with the extension: the extension's signals
//! (cache, slow statements, latency table, maintenance runs, vacuum, wraparound, bloat) read
//! with a `pg_monitor` role have values; a role that may not read a source gets no samples of
//! it and a scrape error instead; `process_*` describe the daemon; `promtool check metrics`
//! accepts the scrape and `promtool check rules` the rules file in contrib/; and every metric
//! the Grafana dashboard in contrib/ queries is in a real scrape (a primary's and a standby's,
//! for the replication lag only a standby always has).

use pitstop_tests::{poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The daemon's role as docs/daemon.md ("Grants") sets it up for the monitor and maintenance,
/// `pg_monitor` included unless `monitor` is false.
fn daemon_role(db: &mut postgres::Client, name: &str, monitor: bool) {
    db.batch_execute(&format!(
        "CREATE ROLE {name} LOGIN;
         GRANT USAGE ON SCHEMA pitstop TO {name};
         GRANT INSERT, DELETE ON pitstop.host_metrics TO {name};
         GRANT SELECT, INSERT, UPDATE ON pitstop.alerts TO {name};
         GRANT USAGE ON SEQUENCE pitstop.alerts_id_seq TO {name};
         GRANT INSERT, UPDATE ON pitstop.maintenance_log TO {name};
         GRANT USAGE ON SEQUENCE pitstop.maintenance_log_id_seq TO {name};
         GRANT DELETE ON pitstop.host_metrics, pitstop.alerts, pitstop.maintenance_log, pitstop.query_snapshots TO {name};"
    ))
    .unwrap();
    if monitor {
        db.batch_execute(&format!("GRANT pg_monitor TO {name}")).unwrap();
    }
}

fn config(dsn: &str) -> String {
    DaemonConfig::new(dsn, "")
        .set("monitor", "sample_interval = \"200ms\"")
        .set("monitor", "write_interval = \"400ms\"")
        .toml()
        + "\n[[maintenance.jobs]]\nname = \"prune-often\"\nkind = \"prune\"\nschedule = \"* * * * * *\"\nkeep = \"30d\"\n"
}

/// Every sample of a scrape: (name, labels text, value).
fn samples(scrape: &str) -> Vec<(String, String, f64)> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = series
                .split_once('{')
                .map_or((series, ""), |(n, rest)| (n, rest.trim_end_matches('}')));
            (
                name.to_string(),
                labels.to_string(),
                value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

fn value(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    samples(scrape).into_iter().find(|(n, l, _)| n == name && l.contains(labels)).map(|(_, _, v)| v)
}

fn families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The metric names a PromQL expression reads (pitstop's and the standard `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("pitstop_") || word.starts_with("process_") {
                names.push(word.clone());
            }
            word.clear();
        }
    }
    names
}

/// Every PromQL expression of a dashboard: panel targets (rows' nested panels too) and the
/// template variables' queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().into_iter().flatten());
        for t in p["targets"].as_array().into_iter().flatten() {
            found.push(
                t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("target without expr in {}", p["title"]))
                    .to_string(),
            );
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(d) = v["definition"].as_str() {
            found.push(d.to_string());
        }
    }
    found
}

#[test]
fn extension_signals_reach_metrics_promtool_accepts_them_and_grafana_resolves() {
    let (cluster, mut db) = PgCluster::with_pitstop(
        ClusterOptions {
            settings: vec![("pitstop.slow_query_ms", "0".into())],
            ..Default::default()
        },
        "CREATE TABLE churn (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
         INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;
         DELETE FROM churn WHERE id <= 120000;
         ANALYZE churn;",
    );
    daemon_role(&mut db, "pitstop", true);
    daemon_role(&mut db, "weak", false);
    // Bloat is estimated from pg_stats, which shows a role only the tables it may read.
    db.batch_execute("GRANT SELECT ON churn TO pitstop").unwrap();
    // The cache: a fill, a hit, and a bypass (a volatile function is never cached).
    for _ in 0..2 {
        db.query_one("SELECT pitstop.cached_json('SELECT count(*) FROM churn')", &[]).unwrap();
    }
    db.query_one("SELECT pitstop.cached_json('SELECT random()')", &[]).unwrap();
    let standby = PgCluster::start_standby(&cluster, ClusterOptions::default());
    // The dead tuples are in the statistics before the daemon reads them (vacuum is read once a minute).
    let flushed = poll_until(Duration::from_secs(10), || {
        db.query_one("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'", &[])
            .unwrap()
            .get::<_, i64>(0)
            >= 3000
    });
    assert!(flushed, "the DELETE's dead tuples never reached the statistics");

    let as_role = |role: &str, c: &PgCluster| {
        format!("host=127.0.0.1 port={} user={role} dbname=postgres", c.port)
    };
    let daemon = Daemon::start(&config(&as_role("pitstop", &cluster)), &[]);
    let weak = Daemon::start(&config(&as_role("weak", &cluster)), &[]);
    let on_standby = Daemon::start(
        &DaemonConfig::new(&as_role("postgres", &standby), "")
            .set("monitor", "sample_interval = \"200ms\"")
            .toml(),
        &[],
    );

    // A maintenance run has finished and been read, and the cache and the host were sampled.
    let mut scrape = String::new();
    let ready = poll_until(Duration::from_secs(30), || {
        scrape = daemon.get("/metrics").1;
        value(&scrape, "pitstop_maintenance_runs_total", "outcome=\"ok\"").is_some_and(|v| v >= 1.0)
            && value(&scrape, "pitstop_cache_hits_total", "").is_some_and(|v| v >= 1.0)
            && scrape.contains("# TYPE pitstop_host_cpu_usage_ratio ")
            && scrape.contains("# TYPE pitstop_postgres_process_resident_bytes ")
    });
    assert!(ready, "no maintenance run or cache hit on /metrics:\n{scrape}\n{}", daemon.log());

    // Read with pg_monitor, every source works.
    for source in
        ["cache", "slow_queries", "latency", "maintenance", "vacuum", "wraparound", "bloat"]
    {
        let labels = format!("source=\"{source}\"");
        assert_eq!(
            value(&scrape, "pitstop_extension_source_up", &labels),
            Some(1.0),
            "{source}:\n{scrape}\n{}",
            daemon.log()
        );
        assert_eq!(
            value(&scrape, "pitstop_extension_scrape_errors_total", &labels),
            Some(0.0),
            "{source}"
        );
    }
    let at_least = |name: &str, labels: &str, min: f64| {
        let v = value(&scrape, name, labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{scrape}"));
        assert!(v >= min, "{name}{{{labels}}} = {v}, expected at least {min}");
    };
    at_least("pitstop_cache_fills_total", "", 1.0);
    at_least("pitstop_cache_misses_total", "", 1.0);
    at_least("pitstop_cache_bypasses_total", "reason=\"volatile_function\"", 1.0);
    at_least("pitstop_cache_entries", "", 1.0);
    at_least("pitstop_cache_used_bytes", "", 1.0);
    at_least("pitstop_cache_size_bytes", "", 1024.0 * 1024.0);
    at_least("pitstop_slow_queries_captured_total", "", 1.0);
    at_least("pitstop_slow_queries_capacity", "", 10.0);
    at_least("pitstop_latency_statements", "", 1.0);
    at_least("pitstop_latency_capacity", "", 10.0);
    at_least("pitstop_latency_recorded_total", "", 1.0);
    at_least("pitstop_maintenance_last_success_timestamp_seconds", "", 1.6e9);
    at_least("pitstop_vacuum_dead_tuples", "database=\"postgres\"", 3000.0);
    at_least("pitstop_vacuum_tables", "database=\"postgres\",status=\"vacuum_overdue\"", 1.0);
    at_least("pitstop_database_xid_age", "database=\"template1\"", 0.0);
    // About 17 MB of churn's 28 MB are dead space (table_bloat lists relations from 20 % and 10 MB).
    at_least("pitstop_bloat_relations", "database=\"postgres\",kind=\"table\"", 1.0);
    at_least("pitstop_bloat_bytes", "database=\"postgres\",kind=\"table\"", 10.0 * 1024.0 * 1024.0);
    at_least(
        "pitstop_bloat_size_bytes",
        "database=\"postgres\",kind=\"table\"",
        20.0 * 1024.0 * 1024.0,
    );
    at_least("pitstop_postgres_transactions_total", "", 1.0);
    at_least("pitstop_postgres_blocks_hit_total", "", 1.0);
    at_least("process_resident_memory_bytes", "", 1e6);
    at_least("process_open_fds", "", 3.0);
    at_least("process_start_time_seconds", "", 1.6e9);
    assert!(value(&scrape, "process_cpu_seconds_total", "").is_some(), "{scrape}");
    let ratio =
        value(&scrape, "pitstop_database_xid_wraparound_ratio", "database=\"postgres\"").unwrap();
    assert!((0.0..1.0).contains(&ratio), "a ratio, not a percentage: {ratio}");
    // Per database at most: no label names a table, index or statement.
    for (name, labels, _) in samples(&scrape) {
        for key in ["table", "relation", "index_name", "query", "queryid"] {
            assert!(!labels.contains(&format!("{key}=")), "{name}{{{labels}}}");
        }
    }
    // The names the audit flagged are gone from /metrics.
    for gone in [
        "pitstop_postgres_transactions_per_second",
        "pitstop_postgres_cache_hit_ratio",
        "_bytes_per_hour",
    ] {
        assert!(!scrape.contains(gone), "{gone} is still exported");
    }

    // Without pg_monitor: what the role cannot read is absent, and counted as a scrape error.
    let mut weak_scrape = String::new();
    let counted = poll_until(Duration::from_secs(20), || {
        weak_scrape = weak.get("/metrics").1;
        value(&weak_scrape, "pitstop_extension_scrape_errors_total", "source=\"maintenance\"")
            .is_some_and(|v| v >= 1.0)
    });
    assert!(counted, "no scrape error for the maintenance log:\n{weak_scrape}\n{}", weak.log());
    assert_eq!(
        value(&weak_scrape, "pitstop_extension_source_up", "source=\"maintenance\""),
        Some(0.0)
    );
    assert!(!weak_scrape.contains("pitstop_maintenance_runs_total{"), "{weak_scrape}");
    assert!(weak.log().contains("cannot read extension source maintenance"), "{}", weak.log());
    assert_eq!(
        value(&weak_scrape, "pitstop_extension_source_up", "source=\"cache\""),
        Some(1.0),
        "cache_stats() is PUBLIC:\n{weak_scrape}"
    );

    let mut standby_scrape = String::new();
    let lagged = poll_until(Duration::from_secs(20), || {
        standby_scrape = on_standby.get("/metrics").1;
        standby_scrape.contains("pitstop_postgres_replication_lag_seconds ")
    });
    assert!(lagged, "no replication lag on the standby:\n{standby_scrape}\n{}", on_standby.log());

    // promtool lints each scrape and checks the rules file.
    for (who, text) in
        [("primary", &scrape), ("weak role", &weak_scrape), ("standby", &standby_scrape)]
    {
        let (ok, out) = promtool(&["check", "metrics"], text);
        assert!(ok, "promtool check metrics on the {who}'s scrape:\n{out}\n{text}");
    }
    let rules = repo_path("contrib/prometheus/pitstop-rules.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], "");
    assert!(ok && out.contains("SUCCESS"), "{out}");

    // Every metric the dashboard queries is in a real scrape.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("contrib/grafana/pitstop.json")).unwrap(),
    )
    .unwrap();
    let exported: BTreeSet<String> =
        families(&scrape).union(&families(&standby_scrape)).cloned().collect();
    let exprs = expressions(&dashboard);
    assert!(exprs.len() > 30, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr:?} reads no pitstop metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "the dashboard queries {name} ({expr}), which no scrape has"
            );
            used.insert(name);
        }
    }
    for family in [
        "pitstop_cache_hits_total",
        "pitstop_relay_delivered_total",
        "pitstop_host_cpu_usage_ratio",
        "pitstop_maintenance_runs_total",
    ] {
        assert!(used.contains(family), "the dashboard does not show {family}");
    }
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(titles, ["Overview", "Cache", "Relay", "Host", "Maintenance"]);
}
