//! What a cache fill actually read, and what it holds: the bypass rules apply to every
//! relation the fill read (foreign and subscribed partitions, another session's temporary
//! inheritance child, tables read by built-in functions under row-level security), anonymous
//! record values never travel between sessions, and a huge result costs an ERROR at worst,
//! never the whole server.

use pitstop_tests::cache_call::cached;
use pitstop_tests::query::scalar_i64;
use pitstop_tests::{cache_stats as stats, poll_until, ClusterOptions, PgCluster};
use postgres::Client;
use std::process::Command;
use std::time::Duration;

fn count(c: &mut Client, query: &str) -> i64 {
    c.query_one("SELECT n FROM pitstop.cached($1) AS t(n bigint)", &[&query]).unwrap().get(0)
}

/// Every cached read so far bypassed the cache (at least three times for `reason`, none a hit),
/// while `other` (counting `n`) is cached: its second read is the one hit.
fn only_bypassed_for(c: &mut Client, reason: &str, other: &str, n: i64) {
    let s = stats(c);
    assert_eq!(s.hits, 0, "{s:?}");
    assert!(s.reason(reason) >= 3, "{s:?}");
    assert_eq!(count(c, other), n);
    assert_eq!(count(c, other), n);
    assert_eq!(stats(c).hits, 1);
}

// ---- finding 2: anonymous records --------------------------------------------------------

#[test]
fn anonymous_records_are_never_served_to_another_session() {
    let (cluster, mut a) = PgCluster::with_extension("");
    let query = "SELECT ROW(x, 'payload'::text) FROM (VALUES (1::int8)) v(x)";
    assert_eq!(cached(&mut a, query, "r record"), ["(1,payload)"]);
    assert_eq!(cached(&mut a, query, "r record"), ["(1,payload)"]);
    let arrays = "SELECT array_agg(ROW(x, 'payload'::text)) FROM (VALUES (1::int8), (2)) v(x)";
    assert_eq!(cached(&mut a, arrays, "r record[]"), [r#"{"(1,payload)","(2,payload)"}"#]);
    // Session B registers its own first anonymous record type, of another shape, before it
    // asks: a shared entry would be decoded with B's type.
    let mut b = cluster.connect();
    b.batch_execute("SELECT ROW('a'::text, 'b'::text)").unwrap();
    assert_eq!(cached(&mut b, query, "r record"), ["(1,payload)"]);
    assert_eq!(cached(&mut b, arrays, "r record[]"), [r#"{"(1,payload)","(2,payload)"}"#]);
    let s = stats(&mut b);
    assert_eq!(s.reason("anonymous_record"), 5, "{s:?}");
    assert_eq!((s.fills, s.hits), (0, 0), "nothing holding an anonymous record is stored: {s:?}");

    // Nothing crashed: the first session is still connected, and the server never restarted.
    assert_eq!(scalar_i64(&mut a, "SELECT 1::int8"), 1);
    assert!(!cluster.log().contains("terminated by signal"), "{}", cluster.log());
}

// ---- finding 3: every relation the fill read ---------------------------------------------

#[test]
fn a_foreign_partition_is_never_served_stale() {
    let (cluster, mut a) = PgCluster::with_extension("CREATE DATABASE remote");
    let mut remote = cluster.connect_as("postgres", "remote");
    remote.batch_execute("CREATE TABLE orders_us(id int, region text); INSERT INTO orders_us VALUES (1, 'us'), (2, 'us');").unwrap();
    a.batch_execute(&format!(
        "CREATE EXTENSION postgres_fdw;
         CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '{}', dbname 'remote');
         CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
         CREATE TABLE orders(id int, region text) PARTITION BY LIST (region);
         CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
         CREATE FOREIGN TABLE orders_us PARTITION OF orders FOR VALUES IN ('us') SERVER loopback OPTIONS (table_name 'orders_us');
         INSERT INTO orders_eu VALUES (3, 'eu');",
        cluster.port
    ))
    .unwrap();
    let query = "select count(*) from orders where region = 'us'";
    assert_eq!(count(&mut a, query), 2);
    assert_eq!(count(&mut a, query), 2);
    remote.batch_execute("INSERT INTO orders_us VALUES (4, 'us')").unwrap();
    assert_eq!(count(&mut a, query), 3, "a write on the remote side must be seen");
    // The local partition alone is still cached.
    only_bypassed_for(
        &mut a,
        "foreign_table",
        "select count(*) from orders where region = 'eu'",
        1,
    );
}

#[test]
fn a_subscribed_partition_is_never_cached_through_its_parent() {
    let options = ClusterOptions {
        settings: vec![("wal_level", "logical".into())],
        ..ClusterOptions::default()
    };
    let (cluster, mut a) = PgCluster::with_pitstop(options, "CREATE DATABASE publisher");
    let mut publisher = cluster.connect_as("postgres", "publisher");
    publisher
        .batch_execute("CREATE TABLE m_a(id int PRIMARY KEY, r text); INSERT INTO m_a VALUES (1, 'a'); CREATE PUBLICATION p FOR TABLE m_a;")
        .unwrap();
    publisher.batch_execute("SELECT pg_create_logical_replication_slot('s', 'pgoutput')").unwrap();
    // The subscription names the local leaf; queries name its parent. (A subscription in the
    // same cluster needs its slot made beforehand.)
    a.batch_execute(
        "CREATE TABLE m(id int, r text) PARTITION BY LIST (r);
         CREATE TABLE m_a PARTITION OF m FOR VALUES IN ('a');
         CREATE TABLE m_b PARTITION OF m FOR VALUES IN ('b');",
    )
    .unwrap();
    a.batch_execute(&format!(
        "CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 port={} user=postgres dbname=publisher'
             PUBLICATION p WITH (create_slot = false, slot_name = 's')",
        cluster.port
    ))
    .unwrap();
    assert!(
        poll_until(Duration::from_secs(30), || scalar_i64(&mut a, "SELECT count(*) FROM m") == 1
            && scalar_i64(
                &mut a,
                "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'"
            ) == 0),
        "initial sync did not finish: {}",
        cluster.log()
    );
    let query = "select count(*) from m";
    assert_eq!(count(&mut a, query), 1);
    assert_eq!(count(&mut a, query), 1);
    publisher.batch_execute("INSERT INTO m_a VALUES (2, 'a')").unwrap();
    assert!(
        poll_until(Duration::from_secs(30), || scalar_i64(&mut a, "SELECT count(*) FROM m") == 2),
        "not replicated"
    );
    assert_eq!(count(&mut a, query), 2, "the apply worker's write must be seen");
    // A query on the partition nobody subscribes to is cached.
    only_bypassed_for(&mut a, "logical_replication_subscriber", "select count(*) from m_b", 0);
    a.batch_execute("ALTER SUBSCRIPTION sub DISABLE; ALTER SUBSCRIPTION sub SET (slot_name = NONE); DROP SUBSCRIPTION sub").unwrap();
}

#[test]
fn another_sessions_temporary_child_is_never_shared() {
    let (cluster, mut setup) =
        PgCluster::with_extension("CREATE TABLE p(v text); INSERT INTO p VALUES ('public');");
    let query = "select v from p order by v";
    let mut a = cluster.connect();
    a.batch_execute("CREATE TEMP TABLE c () INHERITS (p); INSERT INTO c VALUES ('secret');")
        .unwrap();
    assert_eq!(cached(&mut a, query, "v text"), ["public", "secret"]);
    assert_eq!(cached(&mut a, query, "v text"), ["public", "secret"]);
    let mut b = cluster.connect();
    assert_eq!(cached(&mut b, query, "v text"), ["public"], "B must never get A's temporary rows");
    assert_eq!(cached(&mut b, query, "v text"), ["public"]);
    // Nor A B's answer: its own temporary rows are part of its plain answer.
    assert_eq!(cached(&mut a, query, "v text"), ["public", "secret"]);
    let s = stats(&mut setup);
    assert_eq!(s.hits, 0, "{s:?}");
    assert!(s.reason("temporary_table") >= 3, "{s:?}");
}

#[test]
fn tables_read_by_builtin_functions_keep_row_level_security() {
    let (cluster, _admin) = PgCluster::with_extension(
        "CREATE ROLE app LOGIN;
         GRANT USAGE ON SCHEMA pitstop TO app;
         CREATE TABLE docs(tenant int, body text);
         INSERT INTO docs VALUES (1, 'tenant one secret'), (2, 'tenant two note');
         ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
         CREATE POLICY by_tenant ON docs USING (tenant = current_setting('app.tenant')::int);
         GRANT SELECT ON docs TO app;",
    );
    let mut app = cluster.connect_as("app", "postgres");
    let xml = |c: &mut Client, tenant: i32| -> String {
        c.batch_execute(&format!("SET app.tenant = {tenant}")).unwrap();
        c.query_one(
            "SELECT x::text FROM pitstop.cached($1) AS t(x xml)",
            &[&"select table_to_xml('docs', true, false, '')"],
        )
        .unwrap()
        .get(0)
    };
    let one = xml(&mut app, 1);
    assert!(one.contains("tenant one secret") && !one.contains("tenant two"), "{one}");
    assert_eq!(xml(&mut app, 1), one);
    let two = xml(&mut app, 2);
    assert!(!two.contains("tenant one"), "tenant 2 got tenant 1's rows: {two}");
    assert!(two.contains("tenant two note"), "{two}");
    let s = stats(&mut app);
    assert_eq!(s.hits, 0, "{s:?}");
    // table_to_xml reads the table through SPI, out of the analysed query's sight: it is a
    // bypass by name (stable_function) before any fill could read the table.
    assert!(s.reason("stable_function") >= 3, "{s:?}");
}

// ---- finding 4: out of memory ------------------------------------------------------------

/// Restarts `cluster` with its postmaster, and so every backend it forks, limited to `bytes`
/// of address space (`ulimit -v`).
fn restart_with_memory_limit(cluster: &PgCluster, bytes: u64) {
    cluster.stop();
    let data = cluster.data_dir();
    let status = Command::new("prlimit")
        .arg(format!("--as={bytes}"))
        .args(pitstop_tests::postgres_argv("pg_ctl"))
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(data.parent().unwrap().join("server.log"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run prlimit");
    assert!(status.success(), "the cluster did not start under the limit:\n{}", cluster.log());
}

#[test]
fn a_huge_result_under_a_memory_limit_never_restarts_the_server() {
    let (cluster, _) = PgCluster::with_extension("");
    // The review's `ulimit -v 3000000`.
    restart_with_memory_limit(&cluster, 3_000_000_000);
    let mut a = cluster.connect();
    let started: String =
        a.query_one("SELECT pg_postmaster_start_time()::text", &[]).unwrap().get(0);
    let mut big = cluster.connect();
    let outcome = big.query_one(
        "SELECT count(*) FROM pitstop.cached($$select repeat('x', 1000000) from generate_series(1, 1500)$$) AS t(v text)",
        &[],
    );
    match outcome {
        Ok(row) => assert_eq!(row.get::<_, i64>(0), 1500),
        Err(e) => assert_eq!(e.code(), Some(&postgres::error::SqlState::OUT_OF_MEMORY), "{e:?}"),
    }
    // The other session survived, the server did not restart, and new sessions work.
    let now: String = a
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .expect("the other session survived")
        .get(0);
    assert_eq!(now, started, "the postmaster restarted:\n{}", cluster.log());
    assert_eq!(scalar_i64(&mut cluster.connect(), "SELECT 2::int8"), 2);
    assert!(!cluster.log().contains("terminated by signal"), "{}", cluster.log());
}
