//! Per-statement latency percentiles (pitstop.query_latency) on a real cluster: accuracy
//! against known pg_sleep durations, eviction with more statements than slots, reset and
//! who sees which rows. Top-level statements only, so they run from a client here.

use pitstop_tests::query::{first_column, scalar_i64};
use pitstop_tests::{ClusterOptions, PgCluster};
use postgres::error::SqlState;
use postgres::Client;

/// The statement's queryid as pg_stat_statements knows it.
fn queryid_of(c: &mut Client, query_like: &str) -> i64 {
    c.query_one(
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE $1 AND toplevel ORDER BY calls DESC LIMIT 1",
        &[&query_like],
    )
    .unwrap_or_else(|e| panic!("{query_like} not in pg_stat_statements: {e}"))
    .get(0)
}

#[test]
fn percentiles_of_known_sleeps_are_within_the_error_bound() {
    let (cluster, mut c) = PgCluster::with_extension("CREATE EXTENSION pg_stat_statements");
    let mut app = cluster.connect();
    // One statement (constants are normalised away): 20 × 10 ms, 5 × 50 ms, 1 × 200 ms.
    for (n, seconds) in [(20, 0.01f64), (5, 0.05), (1, 0.2)] {
        for _ in 0..n {
            app.execute("SELECT pg_sleep($1)", &[&seconds]).unwrap();
        }
    }
    let queryid = queryid_of(&mut c, "SELECT pg_sleep(%");
    let row = c
        .query_one(
            "SELECT l.calls, l.p50, l.p90, l.p95, l.p99, l.p999, l.max, s.calls, s.max_exec_time
             FROM pitstop.query_latency l JOIN pg_stat_statements s USING (dbid, userid, queryid)
             WHERE l.queryid = $1 AND s.toplevel",
            &[&queryid],
        )
        .unwrap();
    let (calls, pss_calls): (i64, i64) = (row.get(0), row.get(7));
    assert_eq!((calls, pss_calls), (26, 26));
    let [p50, p90, p95, p99, p999, max, pss_max]: [f64; 7] =
        [1, 2, 3, 4, 5, 6, 8].map(|i| row.get::<_, f64>(i));
    // Nearest rank ceil(q·26) of the 26 sorted durations: p50 is a 10 ms call, p90 and p95 a
    // 50 ms call, p99 and p99.9 the 200 ms one. pg_sleep sleeps at least as long as asked; on
    // a busy 2-core test machine a wakeup may come a few ms late, so each is checked within
    // 2 % of [asked, asked + 5 ms].
    let within = |got: f64, asked: f64| got >= asked * 0.98 && got <= (asked + 5.0) * 1.02;
    assert!(within(p50, 10.0), "p50 {p50}");
    for (name, p) in [("p90", p90), ("p95", p95)] {
        assert!(within(p, 50.0), "{name} {p}");
    }
    for (name, p) in [("p99", p99), ("p999", p999)] {
        assert!(within(p, 200.0), "{name} {p}");
    }
    // The maximum is exact: the same execution time pg_stat_statements measured.
    assert!(within(max, 200.0), "max {max}");
    assert!((max - pss_max).abs() <= pss_max * 1e-9, "max {max} vs pg_stat_statements {pss_max}");
}

#[test]
fn more_statements_than_slots_evict_and_are_counted() {
    let options = ClusterOptions {
        settings: vec![("pitstop.latency_max_statements", "10".into())],
        ..Default::default()
    };
    let setup: String = std::iter::once("CREATE EXTENSION pg_stat_statements;".to_string())
        .chain((0..30).map(|i| format!("CREATE TABLE t{i} (id int);")))
        .collect();
    let (_cluster, mut c) = PgCluster::with_pitstop(options, &setup);
    for i in 0..30 {
        c.batch_execute(&format!("SELECT * FROM t{i}")).unwrap();
    }
    let last = queryid_of(&mut c, "SELECT * FROM t29");
    let row = c
        .query_one("SELECT statements, capacity, evictions FROM pitstop.latency_stats()", &[])
        .unwrap();
    let (statements, capacity, evictions): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(capacity, 10);
    assert!(statements <= 10, "{statements} statements in 10 slots");
    // 30 distinct statements (and the harness's own) went through 10 slots.
    assert!(evictions >= 20, "{evictions} evictions");
    let kept: i64 = c
        .query_one("SELECT count(*) FROM pitstop.query_latency WHERE queryid = $1", &[&last])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "the most recently used statement is never the one evicted");
}

#[test]
fn reset_and_visibility_follow_pg_read_all_stats() {
    let (cluster, mut c) = PgCluster::with_extension("CREATE ROLE app LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_read_all_stats; CREATE TABLE public.orders (id int);
         GRANT SELECT ON public.orders TO app; GRANT USAGE ON SCHEMA pitstop TO app, watcher;
         GRANT SELECT ON pitstop.query_latency TO app, watcher; GRANT EXECUTE ON FUNCTION pitstop.query_latency_histogram() TO app",
    );
    c.batch_execute("SELECT count(*) FROM public.orders").unwrap();
    let mut app = cluster.connect_as("app", "postgres");
    app.batch_execute("SELECT id FROM public.orders").unwrap();

    let roles = |c: &mut Client| -> Vec<String> {
        first_column(c, "SELECT DISTINCT rolname FROM pitstop.query_latency ORDER BY 1", &[])
    };
    assert_eq!(
        roles(&mut app),
        ["app"],
        "a role without pg_read_all_stats sees only its own statements"
    );
    let histograms = scalar_i64(
        &mut app,
        "SELECT count(*) FROM pitstop.query_latency_histogram() WHERE userid <> 'app'::regrole",
    );
    assert_eq!(histograms, 0);
    let mut watcher = cluster.connect_as("watcher", "postgres");
    let seen = roles(&mut watcher);
    assert!(
        seen.contains(&"app".to_string()) && seen.contains(&"postgres".to_string()),
        "{seen:?}"
    );

    let err = app.query_one("SELECT pitstop.query_latency_reset()", &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));

    // compute_query_id off: the statement has no queryid and is only counted.
    let before: i64 =
        c.query_one("SELECT no_queryid FROM pitstop.latency_stats()", &[]).unwrap().get(0);
    c.batch_execute("SET compute_query_id = off; SELECT 1; SET compute_query_id = on").unwrap();
    let after: i64 =
        c.query_one("SELECT no_queryid FROM pitstop.latency_stats()", &[]).unwrap().get(0);
    assert!(after > before, "no_queryid {before} -> {after}");

    let removed: i64 = c.query_one("SELECT pitstop.query_latency_reset()", &[]).unwrap().get(0);
    assert!(removed >= 2, "{removed}");
    let left =
        scalar_i64(&mut c, "SELECT count(*) FROM pitstop.query_latency WHERE rolname = 'app'");
    assert_eq!(left, 0);
}

#[test]
fn the_snapshot_job_stores_each_statements_histogram() {
    let (cluster, mut c) = PgCluster::with_extension("CREATE EXTENSION pg_stat_statements");
    for _ in 0..3 {
        c.execute("SELECT pg_sleep($1)", &[&0.02f64]).unwrap();
    }
    let queryid = queryid_of(&mut c, "SELECT pg_sleep(%");
    pitstop_tests::run_snapshot_job(&cluster.dsn());
    let row = c
        .query_one(
            "SELECT (latency->>'calls')::bigint, (latency->>'max_ms')::float8,
                    (SELECT sum(n::bigint)::bigint FROM jsonb_array_elements_text(latency->'counts') AS n)
             FROM pitstop.query_snapshots WHERE queryid = $1",
            &[&queryid],
        )
        .unwrap();
    let (calls, max_ms, in_buckets): (i64, f64, i64) =
        (row.get(0), row.get(1), row.get::<_, Option<i64>>(2).unwrap_or(0));
    assert_eq!((calls, in_buckets), (3, 3));
    assert!(max_ms >= 20.0 * 0.98, "{max_ms}");
}
