//! The Redis invalidation relay end to end: a real cluster with the pitstop extension, a real
//! redis-server (or a three-node Redis Cluster), and `pitstop run`. The fault tests count:
//! every committed transaction writes its own tracked table, so each has its own tag, and
//! afterwards every committed tag must have a version key in Redis — zero lost — while no
//! rolled-back one may.

use pitstop_tests::query::first_column;
use pitstop_tests::{
    poll_until, tag_version, Daemon, DaemonConfig, PgCluster, RedisCluster, RedisOptions,
    RedisServer, Subscriber, SIGKILL,
};
use postgres::Client;
use redis::Commands;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

// ---- helpers ---------------------------------------------------------------------------

/// A cluster with the extension and tables `t0`…`t{tables-1}`, each tracked (own tag).
fn cluster_with_tables(tables: usize) -> (PgCluster, Client) {
    let (cluster, mut client) = PgCluster::with_extension("");
    client
        .batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 0..{} LOOP
                 EXECUTE format('CREATE TABLE t%s (v int)', i);
                 PERFORM pitstop.cache_track(format('t%s', i)::regclass);
             END LOOP; END $$",
            tables as i64 - 1
        ))
        .unwrap();
    (cluster, client)
}

fn tag(i: usize) -> String {
    format!("postgres.public.t{i}")
}

/// Waits until the relay reports itself delivering.
fn wait_relay_up(daemon: &Daemon) {
    let up = poll_until(Duration::from_secs(20), || {
        daemon.status()["components"]["relay"]["state"] == "up"
    });
    assert!(up, "relay never came up: {}\n{}", daemon.status(), daemon.log());
}

/// What the writer saw.
#[derive(Default, Debug)]
struct Outcome {
    acknowledged: Vec<usize>,
    rolled_back: Vec<usize>,
}

/// Commits (or, every tenth, rolls back) one transaction per table `t0`…`t{n-1}`, about one
/// every `pace`; reconnects after errors (a transaction whose COMMIT failed is neither
/// acknowledged nor rolled back: the outbox decides). `progress` counts attempts.
fn start_writer(
    dsn: String,
    n: usize,
    pace: Duration,
    progress: Arc<AtomicUsize>,
) -> JoinHandle<Outcome> {
    std::thread::spawn(move || {
        let mut outcome = Outcome::default();
        let mut client: Option<Client> = None;
        for i in 0..n {
            if client.is_none() {
                poll_until(Duration::from_secs(30), || {
                    client = Client::connect(&dsn, postgres::NoTls).ok();
                    client.is_some()
                });
            }
            let Some(c) = client.as_mut() else { panic!("writer cannot reconnect") };
            let rollback = i % 10 == 9;
            let end = if rollback { "ROLLBACK" } else { "COMMIT" };
            match c.batch_execute(&format!("BEGIN; INSERT INTO t{i} VALUES ({i}); {end}")) {
                Ok(()) if rollback => outcome.rolled_back.push(i),
                Ok(()) => outcome.acknowledged.push(i),
                Err(_) => client = None,
            }
            progress.store(i + 1, Ordering::SeqCst);
            std::thread::sleep(pace);
        }
        outcome
    })
}

/// Starts WRITES paced transactions and returns once a third of them ran.
fn stream_until_a_third(cluster: &PgCluster) -> (Arc<AtomicUsize>, JoinHandle<Outcome>) {
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = start_writer(cluster.dsn(), WRITES, PACE, progress.clone());
    wait_progress(&progress, WRITES / 3);
    (progress, writer)
}

fn wait_progress(progress: &AtomicUsize, at_least: usize) {
    assert!(
        poll_until(Duration::from_secs(60), || progress.load(Ordering::SeqCst) >= at_least),
        "writer stalled"
    );
}

/// Every tag with an outbox row (that is, every committed write) gets a version key in
/// Redis; acknowledged commits are among them; rolled-back ones are not and have no key.
fn assert_nothing_lost(
    pg: &mut Client,
    redis: &mut impl redis::ConnectionLike,
    outcome: &Outcome,
    daemon: &Daemon,
) {
    let committed: BTreeSet<String> =
        first_column(pg, "SELECT DISTINCT unnest(tags) FROM pitstop.invalidation_outbox", &[]);
    for i in &outcome.acknowledged {
        assert!(committed.contains(&tag(*i)), "acknowledged commit t{i} has no outbox row");
    }
    for i in &outcome.rolled_back {
        assert!(!committed.contains(&tag(*i)), "rolled-back t{i} has an outbox row");
    }
    let mut missing = Vec::new();
    let delivered = poll_until(Duration::from_secs(30), || {
        missing = committed.iter().filter(|t| !version_exists(redis, t)).cloned().collect();
        missing.is_empty()
    });
    assert!(
        delivered,
        "{} of {} committed invalidations never reached Redis: {missing:?}\n{}",
        missing.len(),
        committed.len(),
        daemon.log()
    );
    for i in &outcome.rolled_back {
        assert!(!version_exists(redis, &tag(*i)), "rolled-back t{i} reached Redis");
    }
    assert!(committed.len() >= outcome.acknowledged.len());
}

fn version_exists(redis: &mut impl redis::ConnectionLike, tag: &str) -> bool {
    redis::cmd("EXISTS").arg(format!("pitstop:ver:{tag}")).query::<i64>(redis).unwrap_or(0) == 1
}

/// Delivered rows are pruned at once.
fn pruning_config(dsn: &str, redis_url: &str) -> DaemonConfig {
    DaemonConfig::new(dsn, redis_url)
        .set("relay", "retention = \"0s\"")
        .set("relay", "prune_interval = \"200ms\"")
        .set("relay", "save_interval = \"0s\"")
}

fn wait_outbox_pruned(pg: &mut Client, daemon: &Daemon) {
    let emptied = poll_until(Duration::from_secs(10), || {
        pg.query_one("SELECT count(*) FROM pitstop.invalidation_outbox", &[])
            .unwrap()
            .get::<_, i64>(0)
            == 0
    });
    assert!(emptied, "delivered rows were not pruned; log:\n{}", daemon.log());
}

/// The JSON messages on `pitstop:invalidations` once `done` holds for them (or after 10 s).
fn published(
    subscriber: &Subscriber,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let parse = |received: &[pitstop_tests::Received]| -> Vec<serde_json::Value> {
        received.iter().map(|m| serde_json::from_str(&m.payload).unwrap()).collect()
    };
    parse(&subscriber.wait(Duration::from_secs(10), |m| done(&parse(m))))
}

// ---- behaviour ---------------------------------------------------------------------------

#[test]
fn committed_write_deletes_tagged_keys_bumps_versions_and_publishes() {
    let (cluster, mut pg) = PgCluster::with_extension(
        "CREATE TABLE orders (id int PRIMARY KEY, total int);
         CREATE TABLE barrier (v int);
         SELECT pitstop.cache_track('orders', ARRAY['orders-list']);
         SELECT pitstop.cache_track('barrier');",
    );
    let redis = RedisServer::start();
    let mut r = redis.client();
    let _: () =
        r.sadd("pitstop:tag:postgres.public.orders", &["app:order:1", "app:order:2"]).unwrap();
    let _: () = r.sadd("pitstop:tag:orders-list", "app:orders").unwrap();
    for key in ["app:order:1", "app:order:2", "app:orders", "app:unrelated"] {
        let _: () = r.set(key, "cached").unwrap();
    }
    let subscriber = Subscriber::start(&redis.url(), "pitstop:invalidations");
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);

    // A rolled-back write does nothing, as the later committed barrier proves.
    pg.batch_execute("BEGIN; INSERT INTO orders VALUES (1, 10); ROLLBACK").unwrap();
    pg.batch_execute("INSERT INTO barrier VALUES (1)").unwrap();
    wait_for_version(&mut r, "postgres.public.barrier", 1, &daemon);
    assert_eq!(r.exists::<_, i64>("app:order:1").unwrap(), 1, "a rolled-back write invalidated");
    assert_eq!(tag_version(&mut r, "postgres.public.orders"), 0);

    pg.batch_execute("INSERT INTO orders VALUES (1, 10)").unwrap();
    let gone = poll_until(Duration::from_secs(10), || {
        r.exists::<_, i64>(&["app:order:1", "app:order:2", "app:orders"]).unwrap() == 0
    });
    assert!(gone, "tagged keys still there; log:\n{}", daemon.log());
    assert_eq!(r.exists::<_, i64>("app:unrelated").unwrap(), 1, "an untagged key was deleted");
    assert_eq!(
        r.exists::<_, i64>("pitstop:tag:postgres.public.orders").unwrap(),
        0,
        "the tag set must go too"
    );
    assert_eq!(tag_version(&mut r, "postgres.public.orders"), 1);
    assert_eq!(tag_version(&mut r, "orders-list"), 1);

    let messages = published(&subscriber, |m| m.iter().any(|m| m["relation"] == "public.orders"));
    let order = messages
        .iter()
        .find(|m| m["relation"] == "public.orders")
        .unwrap_or_else(|| panic!("no PUBLISH for orders: {messages:?}"));
    assert_eq!(order["database"], "postgres");
    assert_eq!(order["tags"], serde_json::json!(["postgres.public.orders", "orders-list"]));
    assert!(order["id"].as_i64().is_some_and(|id| id > 0), "{order}");
    assert!(
        messages.iter().all(|m| m["relation"] != "public.orders" || m["id"] == order["id"]),
        "rolled-back write published: {messages:?}"
    );

    // Every write path of a tracked table invalidates: UPDATE, DELETE, COPY FROM, TRUNCATE.
    for (n, sql) in [
        (2, "UPDATE orders SET total = 11"),
        (3, "DELETE FROM orders"),
        (4, "COPY orders FROM STDIN"),
        (5, "TRUNCATE orders"),
    ] {
        if sql.starts_with("COPY") {
            let mut copy = pg.copy_in(sql).unwrap();
            std::io::Write::write_all(&mut copy, b"5\t50\n").unwrap();
            copy.finish().unwrap();
        } else {
            pg.batch_execute(sql).unwrap();
        }
        assert!(
            poll_until(Duration::from_secs(10), || tag_version(&mut r, "postgres.public.orders")
                == n),
            "{sql} did not invalidate"
        );
    }
    assert!(daemon.metric("pitstop_relay_delivered_total") >= 6.0);
    // The cursor is saved in the database once Redis acknowledged.
    let saved = poll_until(Duration::from_secs(10), || {
        let sql = "SELECT horizon::text::bigint, delivered FROM pitstop.relay_state WHERE consumer = 'default'";
        let row = pg.query_one(sql, &[]).unwrap();
        row.get::<_, i64>(0) > 0 && row.get::<_, i64>(1) >= 6
    });
    assert!(saved, "cursor never saved; log:\n{}", daemon.log());
}

/// Outbox ids are taken at insert and become visible at commit: a transaction that inserted
/// first and commits last (after later transactions were delivered and the cursor saved, and
/// while the relay is down) must still be delivered.
#[test]
fn a_long_transaction_committing_after_later_ones_is_not_lost() {
    let (cluster, mut pg) = cluster_with_tables(3);
    let redis = RedisServer::start();
    let mut r = redis.client();
    let config =
        DaemonConfig::new(&cluster.dsn(), &redis.url()).set("relay", "save_interval = \"0s\"");
    let mut daemon = Daemon::start(&config.toml(), &[]);
    wait_relay_up(&daemon);

    let mut long = cluster.connect();
    long.batch_execute("BEGIN; INSERT INTO t0 VALUES (1)").unwrap(); // the smaller outbox id
    pg.batch_execute("INSERT INTO t1 VALUES (1)").unwrap();
    wait_for_version(&mut r, &tag(1), 1, &daemon);
    let rounds = daemon.metric("pitstop_relay_rounds_total");
    assert!(poll_until(Duration::from_secs(10), || daemon.metric("pitstop_relay_rounds_total")
        >= rounds + 3.0));
    let saved = |pg: &mut Client| -> i64 {
        pg.query_one(
            "SELECT horizon::text::bigint FROM pitstop.relay_state WHERE consumer = 'default'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert!(poll_until(Duration::from_secs(10), || saved(&mut pg) > 0), "cursor never saved");

    // The relay dies; the long transaction commits while it is down; nothing is lost.
    daemon.kill();
    long.batch_execute("COMMIT").unwrap();
    pg.batch_execute("INSERT INTO t2 VALUES (1)").unwrap();
    daemon.restart();
    assert!(
        poll_until(Duration::from_secs(10), || tag_version(&mut r, &tag(2)) >= 1),
        "{}",
        daemon.log()
    );
    assert_eq!(tag_version(&mut r, &tag(0)), 1, "the late commit was lost; log:\n{}", daemon.log());
    assert!(resumed_from(&daemon) > 0);

    // And while running: a transaction open across many rounds is delivered at its commit.
    long.batch_execute("BEGIN; INSERT INTO t0 VALUES (2)").unwrap();
    pg.batch_execute("INSERT INTO t1 VALUES (2)").unwrap();
    assert!(poll_until(Duration::from_secs(10), || tag_version(&mut r, &tag(1)) >= 2));
    let rounds = daemon.metric("pitstop_relay_rounds_total");
    assert!(poll_until(Duration::from_secs(10), || daemon.metric("pitstop_relay_rounds_total")
        >= rounds + 3.0));
    long.batch_execute("COMMIT").unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || tag_version(&mut r, &tag(0)) >= 2),
        "{}",
        daemon.log()
    );
}

/// Without the extension in the database the daemon still runs (and is ready); the relay
/// says why it cannot work, and starts once the extension is there.
#[test]
fn without_the_extension_the_relay_says_why_and_waits() {
    let cluster = PgCluster::start();
    let redis = RedisServer::start();
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), &redis.url()).toml(), &[]);
    let waiting = poll_until(Duration::from_secs(10), || {
        let status = daemon.status();
        status["components"]["relay"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("CREATE EXTENSION pitstop"))
    });
    assert!(waiting, "{}\n{}", daemon.status(), daemon.log());
    assert!(
        poll_until(Duration::from_secs(10), || daemon.get("/readyz").0 == 200),
        "Postgres is reachable: ready"
    );
    assert_eq!(daemon.status()["extension"], serde_json::Value::Null);

    let mut pg = cluster.connect();
    pg.batch_execute("CREATE EXTENSION pitstop; CREATE TABLE t0 (v int); SELECT pitstop.cache_track('t0'); INSERT INTO t0 VALUES (1)").unwrap();
    let mut r = redis.client();
    wait_for_version(&mut r, &tag(0), 1, &daemon);
}

/// The README's privileges for the daemon's role are enough (and it needs no superuser).
#[test]
fn relay_runs_as_a_role_with_only_the_documented_grants() {
    let (cluster, mut pg) = cluster_with_tables(1);
    pg.batch_execute(
        "CREATE ROLE pitstop_relay LOGIN;
         GRANT USAGE ON SCHEMA pitstop TO pitstop_relay;
         GRANT SELECT, DELETE ON pitstop.invalidation_outbox TO pitstop_relay;
         GRANT SELECT, INSERT, UPDATE ON pitstop.relay_state TO pitstop_relay;",
    )
    .unwrap();
    let redis = RedisServer::start();
    let dsn = format!("host=127.0.0.1 port={} user=pitstop_relay dbname=postgres", cluster.port);
    let daemon = Daemon::start(&pruning_config(&dsn, &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);
    pg.batch_execute("INSERT INTO t0 VALUES (1)").unwrap();
    let mut r = redis.client();
    wait_for_version(&mut r, &tag(0), 1, &daemon);
    wait_outbox_pruned(&mut pg, &daemon);
    assert_eq!(
        daemon.metric("pitstop_relay_errors_total{component=\"postgres\"}"),
        0.0,
        "{}",
        daemon.log()
    );
}

#[test]
fn a_key_of_the_wrong_type_does_not_stop_the_relay() {
    let (cluster, mut pg) = cluster_with_tables(2);
    let redis = RedisServer::start();
    let mut r = redis.client();
    // The application misused the tag key as a string and the version key as text.
    let _: () = r.set(format!("pitstop:tag:{}", tag(0)), "oops").unwrap();
    let _: () = r.set(format!("pitstop:ver:{}", tag(0)), "text").unwrap();
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);
    pg.batch_execute("INSERT INTO t0 VALUES (1); INSERT INTO t1 VALUES (1)").unwrap();
    wait_for_version(&mut r, &tag(1), 1, &daemon);
    assert!(daemon.wait_for_log("skipped", Duration::from_secs(5)), "{}", daemon.log());
    assert_eq!(daemon.status()["components"]["relay"]["state"], "up");
}

#[test]
fn delivered_rows_are_pruned_after_the_retention() {
    let (cluster, mut pg) = cluster_with_tables(3);
    let redis = RedisServer::start();
    let daemon = Daemon::start(&pruning_config(&cluster.dsn(), &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);
    pg.batch_execute(
        "INSERT INTO t0 VALUES (1); INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (1)",
    )
    .unwrap();
    let mut r = redis.client();
    assert!(poll_until(Duration::from_secs(10), || (0..3).all(|i| version_exists(&mut r, &tag(i)))));
    wait_outbox_pruned(&mut pg, &daemon);
    assert!(daemon.metric("pitstop_relay_pruned_total") >= 3.0);
}

// ---- faults: count, zero lost ------------------------------------------------------------

const WRITES: usize = 300;
const PACE: Duration = Duration::from_millis(5);

/// The cursor is saved after every round that delivered something, so that a fault lands
/// between saves as often as possible and the restart must resume from a real horizon.
fn fault_config(cluster: &PgCluster, redis_url: &str) -> DaemonConfig {
    DaemonConfig::new(&cluster.dsn(), redis_url).set("relay", "save_interval = \"0s\"")
}

/// The horizon the latest start resumed from.
fn resumed_from(daemon: &Daemon) -> u64 {
    let log = daemon.log();
    let tail = log.rsplit("catching up from saved horizon ").next().unwrap_or("");
    tail.split_whitespace()
        .next()
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no resume line:\n{log}"))
}

/// Waits (15 s at most) until Redis holds `version` for `tag`; fails with the daemon's log.
fn wait_for_version(r: &mut impl redis::ConnectionLike, tag: &str, version: i64, daemon: &Daemon) {
    assert!(
        poll_until(Duration::from_secs(15), || tag_version(&mut *r, tag) == version),
        "{tag} never reached version {version}:\n{}",
        daemon.log()
    );
}

/// Asserts that the daemon's latest start (after a `restart` or a `reconnect`) resumed from the
/// saved cursor.
fn assert_resumed(daemon: &Daemon, after: &str) {
    assert!(
        resumed_from(daemon) > 0,
        "the {after} should resume from the saved cursor:\n{}",
        daemon.log()
    );
}

#[test]
fn redis_down_at_start_then_started_loses_nothing() {
    let (cluster, mut pg) = cluster_with_tables(WRITES);
    let port = pitstop_tests::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    // Small batches: catching up takes many pages.
    let daemon =
        Daemon::start(&fault_config(&cluster, &url).set("relay", "batch_size = 7").toml(), &[]);
    let progress = Arc::new(AtomicUsize::new(0));
    let outcome = start_writer(cluster.dsn(), WRITES, Duration::ZERO, progress).join().unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || daemon.status()["components"]["redis"]["state"]
            == "down"),
        "{}",
        daemon.status()
    );
    let status = daemon.status();
    assert!(status["relay"]["lag_seconds"].as_f64().unwrap() > 0.0, "{status}");
    assert_eq!(daemon.metric("pitstop_redis_up"), 0.0);
    let redis = RedisServer::start_with(RedisOptions { port: Some(port), ..Default::default() });
    assert_nothing_lost(&mut pg, &mut redis.client(), &outcome, &daemon);
    assert_eq!(daemon.metric("pitstop_redis_up"), 1.0);
}

#[test]
fn redis_killed_mid_stream_and_restarted_loses_nothing() {
    let (cluster, mut pg) = cluster_with_tables(WRITES);
    let mut redis =
        RedisServer::start_with(RedisOptions { persistent: true, ..Default::default() });
    let daemon = Daemon::start(&fault_config(&cluster, &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);
    let (progress, writer) = stream_until_a_third(&cluster);
    redis.kill();
    wait_progress(&progress, 2 * WRITES / 3);
    assert!(poll_until(Duration::from_secs(10), || daemon.status()["components"]["redis"]
        ["state"]
        == "down"));
    redis.restart();
    let outcome = writer.join().unwrap();
    assert_nothing_lost(&mut pg, &mut redis.client(), &outcome, &daemon);
    assert!(daemon.metric("pitstop_relay_errors_total{component=\"redis\"}") >= 1.0);
}

#[test]
fn daemon_killed_mid_batch_and_restarted_loses_nothing() {
    let (cluster, mut pg) = cluster_with_tables(WRITES);
    let redis = RedisServer::start();
    // Small batches: a SIGKILL lands between the batches of a round.
    let config = fault_config(&cluster, &redis.url()).set("relay", "batch_size = 3");
    let mut daemon = Daemon::start(&config.toml(), &[]);
    wait_relay_up(&daemon);
    let (progress, writer) = stream_until_a_third(&cluster);
    daemon.signal(SIGKILL);
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    wait_progress(&progress, WRITES / 2);
    daemon.restart();
    let outcome = writer.join().unwrap();
    assert_nothing_lost(&mut pg, &mut redis.client(), &outcome, &daemon);
    assert_resumed(&daemon, "restart");
}

#[test]
fn postgres_restarted_mid_stream_loses_nothing() {
    let (cluster, setup) = cluster_with_tables(WRITES);
    drop(setup);
    let redis = RedisServer::start();
    let daemon = Daemon::start(&fault_config(&cluster, &redis.url()).toml(), &[]);
    wait_relay_up(&daemon);
    let (_, writer) = stream_until_a_third(&cluster);
    cluster.restart();
    let outcome = writer.join().unwrap();
    assert_nothing_lost(&mut cluster.connect(), &mut redis.client(), &outcome, &daemon);
    assert!(
        daemon.metric("pitstop_relay_errors_total{component=\"postgres\"}") >= 1.0,
        "{}",
        daemon.log()
    );
    assert!(poll_until(Duration::from_secs(20), || daemon.metric("pitstop_postgres_up") == 1.0));
    assert_resumed(&daemon, "reconnect");
}

// ---- Redis Cluster, AUTH and TLS -------------------------------------------------------------

#[test]
fn redis_cluster_receives_the_same_invalidations() {
    let (cluster, mut pg) = cluster_with_tables(40);
    let redis = RedisCluster::start(3);
    let mut rc = redis.client();
    // One tag's keys spread over slots (and so over nodes).
    let keys: Vec<String> = (0..30).map(|i| format!("app:item:{i}")).collect();
    let slots: BTreeSet<i64> = keys
        .iter()
        .map(|k| redis::cmd("CLUSTER").arg("KEYSLOT").arg(k).query(&mut rc).unwrap())
        .collect();
    assert!(
        slots.iter().any(|s| *s < 5461) && slots.iter().any(|s| *s > 10922),
        "keys should span nodes: {slots:?}"
    );
    let _: () = rc.sadd(format!("pitstop:tag:{}", tag(0)), &keys).unwrap();
    for k in &keys {
        let _: () = rc.set(k, "cached").unwrap();
    }
    let subscriber = Subscriber::start(
        &format!("redis://127.0.0.1:{}/", redis.ports[2]),
        "pitstop:invalidations",
    );
    let config = DaemonConfig::new(&cluster.dsn(), &redis.urls()).set("redis", "cluster = true");
    let daemon = Daemon::start(&config.toml(), &[]);
    wait_relay_up(&daemon);
    assert_eq!(daemon.status()["components"]["redis"]["detail"], "Redis Cluster");

    pg.batch_execute("INSERT INTO t0 VALUES (1)").unwrap();
    let gone = poll_until(Duration::from_secs(10), || {
        keys.iter().all(|k| rc.exists::<_, i64>(k).unwrap() == 0)
    });
    assert!(gone, "keys of one tag on several nodes were not all deleted; log:\n{}", daemon.log());
    assert_eq!(rc.exists::<_, i64>(format!("pitstop:tag:{}", tag(0))).unwrap(), 0);
    assert_eq!(tag_version(&mut rc, &tag(0)), 1);
    let messages = published(&subscriber, |m| !m.is_empty());
    assert_eq!(
        messages.first().map(|m| m["relation"].clone()),
        Some("public.t0".into()),
        "{messages:?}"
    );

    // Many transactions, each its own tag (its version key in its own slot): all arrive.
    let progress = Arc::new(AtomicUsize::new(0));
    let outcome = start_writer(cluster.dsn(), 40, Duration::ZERO, progress).join().unwrap();
    assert_nothing_lost(&mut pg, &mut rc, &outcome, &daemon);
}

/// A self-signed CA and a server certificate for 127.0.0.1 (openssl).
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the TLS test");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=pitstop-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn redis_with_password_over_tls() {
    let (cluster, mut pg) = cluster_with_tables(1);
    let certs = RedisServer::start(); // only for its private directory
    make_certificates(certs.dir());
    let tls_port = pitstop_tests::free_port();
    let file = |name: &str| certs.dir().join(name).display().to_string();
    let args = [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        "s3cret-pw",
    ];
    let redis = RedisServer::start_with(RedisOptions {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    });
    let config = DaemonConfig::new(&cluster.dsn(), &format!("rediss://127.0.0.1:{tls_port}/"))
        .set("redis", "password = \"s3cret-pw\"")
        .set("redis", &format!("tls_ca_file = {:?}", file("ca.crt")));
    let daemon = Daemon::start(&config.toml(), &[]);
    wait_relay_up(&daemon);
    pg.batch_execute("INSERT INTO t0 VALUES (1)").unwrap();
    let mut r = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{}/", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    wait_for_version(&mut r, &tag(0), 1, &daemon);
    assert!(!daemon.log().contains("s3cret"), "the password leaked into the log");
    assert!(!daemon.get("/status").1.contains("s3cret"));

    // A wrong password is a Redis failure, reported and retried, never a crash.
    let wrong = config.set("redis", "password = \"wrong\"");
    let bad = Daemon::start(&wrong.toml(), &[]);
    assert!(
        poll_until(Duration::from_secs(10), || bad.status()["components"]["redis"]["state"]
            == "down"),
        "{}",
        bad.log()
    );
    assert!(!bad.log().contains("wrong\""), "{}", bad.log());
}
