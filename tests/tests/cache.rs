//! pitstop's result cache on a real cluster: transactional invalidation across sessions,
//! every write path that must invalidate, bypasses, the key, the outbox, the memory bound,
//! bad input, and a concurrent torture test that hunts for stale reads.

use pitstop_tests::{cache_stats as stats, ClusterOptions, PgCluster};
use postgres::error::SqlState;
use postgres::Client;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- helpers ---------------------------------------------------------------------------

fn cluster(setup: &str) -> (PgCluster, Client) {
    PgCluster::with_pitstop(ClusterOptions::default(), setup)
}

fn params_of(params: &[&str]) -> Option<Vec<String>> {
    (!params.is_empty()).then(|| params.iter().map(|p| p.to_string()).collect())
}

/// Column names of a column definition list such as `id int, v bigint`.
fn column_names(coldef: &str) -> Vec<&str> {
    coldef.split(',').map(|c| c.split_whitespace().next().unwrap()).collect()
}

/// How each row is shown: the value as text for one column, the row's text form
/// (`(1,10)`) for several.
fn row_text(coldef: &str) -> String {
    match column_names(coldef).as_slice() {
        [one] => format!("t.{one}::text"),
        _ => "t::text".to_string(),
    }
}

/// `pitstop.cached(query, params)` with the column list `coldef`; each row as text.
fn try_cached(
    c: &mut Client,
    query: &str,
    params: &[&str],
    coldef: &str,
) -> Result<Vec<String>, postgres::Error> {
    let sql = format!("SELECT {} FROM pitstop.cached($1, $2) AS t({coldef})", row_text(coldef));
    Ok(c.query(&sql, &[&query, &params_of(params)])?
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into()))
        .collect())
}

fn cached(c: &mut Client, query: &str, coldef: &str) -> Vec<String> {
    try_cached(c, query, &[], coldef)
        .unwrap_or_else(|e| panic!("pitstop.cached({query:?}) failed: {e:?}"))
}

/// `pitstop.cached_json(query, params)` as text.
fn try_cached_json(
    c: &mut Client,
    query: &str,
    params: &[&str],
) -> Result<serde_json::Value, postgres::Error> {
    let text: Option<String> = c
        .query_one("SELECT pitstop.cached_json($1, $2)::text", &[&query, &params_of(params)])?
        .get(0);
    Ok(text.map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(serde_json::Value::Null))
}

fn cached_json(c: &mut Client, query: &str) -> serde_json::Value {
    try_cached_json(c, query, &[])
        .unwrap_or_else(|e| panic!("pitstop.cached_json({query:?}) failed: {e:?}"))
}

/// The plain, uncached answer (same text form as `cached`).
fn plain(c: &mut Client, query: &str, coldef: &str) -> Vec<String> {
    let sql = format!(
        "SELECT {} FROM ({query}) AS t({})",
        row_text(coldef),
        column_names(coldef).join(", ")
    );
    c.query(&sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into()))
        .collect()
}

fn scalar_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Calls `cached` and asserts both its answer and whether it was served from the cache.
fn expect_cached(c: &mut Client, query: &str, coldef: &str, expected: &[&str], hit: bool) {
    expect_cached_with(c, query, &[], coldef, expected, hit)
}

fn expect_cached_with(
    c: &mut Client,
    query: &str,
    params: &[&str],
    coldef: &str,
    expected: &[&str],
    hit: bool,
) {
    let before = stats(c);
    let got = try_cached(c, query, params, coldef)
        .unwrap_or_else(|e| panic!("pitstop.cached({query:?}, {params:?}): {e:?}"));
    let after = stats(c);
    assert_eq!(got, expected, "pitstop.cached({query:?}, {params:?})");
    let hits = after.hits - before.hits;
    assert_eq!(
        hits,
        i64::from(hit),
        "{query:?}: expected {}; stats before {before:?} after {after:?}",
        if hit { "a hit" } else { "no hit" }
    );
}

/// Makes sure `query` is cached (whether or not it was) and checks that a call hits.
fn ensure_cached(c: &mut Client, query: &str, coldef: &str, expected: &[&str]) {
    assert_eq!(cached(c, query, coldef), expected, "pitstop.cached({query:?})");
    expect_cached(c, query, coldef, expected, true);
}

/// Fills the cache with `query` (a miss) and checks that the next call is a hit.
fn warm(c: &mut Client, query: &str, coldef: &str, expected: &[&str]) {
    let before = stats(c);
    expect_cached(c, query, coldef, expected, false);
    let after = stats(c);
    assert_eq!(after.misses - before.misses, 1, "first call must be a miss: {before:?} {after:?}");
    assert_eq!(after.fills - before.fills, 1, "first call must fill: {before:?} {after:?}");
    expect_cached(c, query, coldef, expected, true);
}

fn sqlstate(err: &postgres::Error) -> Option<&SqlState> {
    err.code()
}

fn expect_error(
    result: Result<impl std::fmt::Debug, postgres::Error>,
    code: &SqlState,
    what: &str,
) -> postgres::Error {
    match result {
        Ok(v) => panic!("{what}: expected error {code:?}, got {v:?}"),
        Err(e) => {
            assert_eq!(sqlstate(&e), Some(code), "{what}: wrong SQLSTATE: {e:?}");
            e
        }
    }
}

/// One invalidation path: A caches `query` (a miss, then a hit), B runs `write`
/// (autocommit), and A's next call must return `after` — not the cached `before`.
fn invalidation_case(
    cluster: &PgCluster,
    a: &mut Client,
    query: &str,
    coldef: &str,
    before: &[&str],
    write: impl FnOnce(&mut Client),
    after: &[&str],
) {
    ensure_cached(a, query, coldef, before);
    let mut b = cluster.connect();
    let s0 = stats(a);
    write(&mut b);
    assert_eq!(
        plain(a, query, coldef),
        after,
        "the write did not have the effect the test expects"
    );
    let got = cached(a, query, coldef);
    let s1 = stats(a);
    assert_eq!(
        got, after,
        "stale cached result for {query:?} after the write; stats {s0:?} -> {s1:?}"
    );
    assert_eq!(s1.hits, s0.hits, "the call after the write must not be a hit: {s0:?} -> {s1:?}");
    // And the fresh answer is cached again.
    expect_cached(a, query, coldef, after, true);
}

// ---- 1. commit and rollback ------------------------------------------------------------

#[test]
fn commit_invalidates_and_rollback_keeps_the_entry() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10), (2, 5);",
    );
    let q = "select v from t where id = 1";
    let col = "v bigint";
    warm(&mut a, q, col, &["10"]);
    let s = stats(&mut a);
    assert!(s.entries >= 1 && s.bytes_used > 0, "{s:?}");

    let mut b = cluster.connect();
    b.batch_execute("BEGIN; UPDATE t SET v = 20 WHERE id = 1;").unwrap();
    // B has not committed: A gets the committed value (from the cache).
    expect_cached(&mut a, q, col, &["10"], true);
    // Another session reading it uncached would also see 10; a fresh fill must not see 20.
    let mut c = cluster.connect();
    assert_eq!(cached(&mut c, "select v from t where id = 1 ", col), ["10"]);
    let inval_before = stats(&mut a).invalidations;
    b.batch_execute("COMMIT").unwrap();
    assert!(stats(&mut a).invalidations > inval_before, "commit must count an invalidation");
    // After the commit A never sees 10 again.
    for _ in 0..3 {
        assert_eq!(cached(&mut a, q, col), ["20"]);
        assert_eq!(cached(&mut c, "select v from t where id = 1 ", col), ["20"]);
    }
    expect_cached(&mut a, q, col, &["20"], true);

    // A rolled-back write moves nothing: A keeps hitting the entry.
    b.batch_execute("BEGIN; UPDATE t SET v = 30 WHERE id = 1; ROLLBACK;").unwrap();
    expect_cached(&mut a, q, col, &["20"], true);
    // Same for a write that failed inside an autocommit statement.
    assert!(b.batch_execute("UPDATE t SET v = v / 0 WHERE id = 1").is_err());
    assert_eq!(cached(&mut a, q, col), ["20"]);

    // Writing another row of the same table invalidates too (table granularity), and the
    // answer stays right.
    b.batch_execute("UPDATE t SET v = 6 WHERE id = 2").unwrap();
    assert_eq!(cached(&mut a, q, col), ["20"]);
    let entries: i64 = a
        .query_one("SELECT count(*) FROM pitstop.cache_entries WHERE query = $1", &[&q])
        .unwrap()
        .get(0);
    assert_eq!(entries, 1, "one entry per key");
    let rels: String = a
        .query_one("SELECT relations::text FROM pitstop.cache_entries WHERE query = $1", &[&q])
        .unwrap()
        .get(0);
    assert_eq!(rels, "{t}");
}

// ---- 2. invalidation paths -------------------------------------------------------------

#[test]
fn write_through_a_trigger_on_another_table_invalidates() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE x(id int);
         CREATE TABLE y(n bigint);
         INSERT INTO y VALUES (0);
         CREATE FUNCTION bump_y() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN UPDATE y SET n = n + 1; RETURN NULL; END $$;
         CREATE TRIGGER x_bumps_y AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION bump_y();",
    );
    invalidation_case(
        &cluster,
        &mut a,
        "select n from y",
        "n bigint",
        &["0"],
        |b| {
            b.batch_execute("INSERT INTO x VALUES (1)").unwrap();
        },
        &["1"],
    );
    // A function called from a plain SELECT that writes counts as a write too.
    a.batch_execute(
        "CREATE FUNCTION write_y() RETURNS int LANGUAGE sql AS $$ UPDATE y SET n = n + 100; SELECT 1 $$;",
    )
    .unwrap();
    invalidation_case(
        &cluster,
        &mut a,
        "select n from y",
        "n bigint",
        &["1"],
        |b| {
            b.batch_execute("SELECT write_y()").unwrap();
        },
        &["101"],
    );
    // A foreign key's ON DELETE CASCADE writes the referencing table.
    a.batch_execute(
        "CREATE TABLE parent_t(id int PRIMARY KEY);
         CREATE TABLE child_t(id int, parent int REFERENCES parent_t ON DELETE CASCADE);
         INSERT INTO parent_t VALUES (1), (2); INSERT INTO child_t VALUES (1, 1), (2, 2);",
    )
    .unwrap();
    invalidation_case(
        &cluster,
        &mut a,
        "select count(*) from child_t",
        "n bigint",
        &["2"],
        |b| {
            b.batch_execute("DELETE FROM parent_t WHERE id = 1").unwrap();
        },
        &["1"],
    );
}

fn partitioned_setup() -> &'static str {
    "CREATE TABLE p(k int, v text) PARTITION BY RANGE (k);
     CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
     CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);
     INSERT INTO p VALUES (1, 'a'), (150, 'b');"
}

#[test]
fn writing_a_partition_directly_invalidates_a_query_on_the_parent() {
    let (cluster, mut a) = cluster(partitioned_setup());
    let q = "select k, v from p order by k";
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,a)", "(150,b)"],
        |b| {
            b.batch_execute("UPDATE p2 SET v = 'B'").unwrap();
        },
        &["(1,a)", "(150,B)"],
    );
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,a)", "(150,B)"],
        |b| {
            b.batch_execute("INSERT INTO p1 VALUES (2, 'c')").unwrap();
        },
        &["(1,a)", "(2,c)", "(150,B)"],
    );
    // A query the planner prunes to one partition, and a direct write to that partition.
    invalidation_case(
        &cluster,
        &mut a,
        "select v from p where k = 1",
        "v text",
        &["a"],
        |b| {
            b.batch_execute("UPDATE p1 SET v = 'A' WHERE k = 1").unwrap();
        },
        &["A"],
    );
}

#[test]
fn writing_through_the_parent_invalidates_a_query_on_a_partition() {
    let (cluster, mut a) = cluster(partitioned_setup());
    let q = "select k, v from p1 order by k";
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,a)"],
        |b| {
            b.batch_execute("UPDATE p SET v = 'z' WHERE k = 1").unwrap();
        },
        &["(1,z)"],
    );
    // An INSERT routed through the parent.
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,z)"],
        |b| {
            b.batch_execute("INSERT INTO p VALUES (5, 'e')").unwrap();
        },
        &["(1,z)", "(5,e)"],
    );
    // An UPDATE that moves a row from p2 into p1.
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,z)", "(5,e)"],
        |b| {
            b.batch_execute("UPDATE p SET k = 7 WHERE k = 150").unwrap();
        },
        &["(1,z)", "(5,e)", "(7,b)"],
    );
    // A DELETE through the parent.
    invalidation_case(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,z)", "(5,e)", "(7,b)"],
        |b| {
            b.batch_execute("DELETE FROM p WHERE k = 5").unwrap();
        },
        &["(1,z)", "(7,b)"],
    );
}

#[test]
fn writing_the_base_table_of_a_view_invalidates_a_query_on_the_view() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE base(id int, v int); INSERT INTO base VALUES (1, 1), (2, -2);
         CREATE VIEW vw AS SELECT id, v FROM base WHERE v > 0;
         CREATE VIEW vw2 AS SELECT sum(v)::bigint AS s FROM vw;",
    );
    invalidation_case(
        &cluster,
        &mut a,
        "select * from vw order by id",
        "id int, v int",
        &["(1,1)"],
        |b| {
            b.batch_execute("UPDATE base SET v = 2 WHERE id = 2").unwrap();
        },
        &["(1,1)", "(2,2)"],
    );
    // A view over a view.
    invalidation_case(
        &cluster,
        &mut a,
        "select s from vw2",
        "s bigint",
        &["3"],
        |b| {
            b.batch_execute("INSERT INTO base VALUES (3, 10)").unwrap();
        },
        &["13"],
    );
}

#[test]
fn truncate_invalidates() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 10);");
    invalidation_case(
        &cluster,
        &mut a,
        "select count(*) from t",
        "n bigint",
        &["10"],
        |b| {
            b.batch_execute("TRUNCATE t").unwrap();
        },
        &["0"],
    );
    // TRUNCATE inside an explicit transaction that commits.
    a.batch_execute("INSERT INTO t VALUES (1), (2)").unwrap();
    invalidation_case(
        &cluster,
        &mut a,
        "select count(*) from t",
        "n bigint",
        &["2"],
        |b| {
            b.batch_execute("BEGIN; SELECT 1; TRUNCATE t; SELECT 2; COMMIT;").unwrap();
        },
        &["0"],
    );
}

#[test]
fn copy_from_stdin_invalidates() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int, name text); INSERT INTO t VALUES (1, 'one');");
    invalidation_case(
        &cluster,
        &mut a,
        "select count(*) from t",
        "n bigint",
        &["1"],
        |b| {
            let mut writer = b.copy_in("COPY t (id, name) FROM STDIN").unwrap();
            writer.write_all(b"2\ttwo\n3\tthree\n4\tfour\n").unwrap();
            assert_eq!(writer.finish().unwrap(), 3);
        },
        &["4"],
    );
    // COPY inside an explicit transaction.
    invalidation_case(
        &cluster,
        &mut a,
        "select max(id) from t",
        "n int",
        &["4"],
        |b| {
            let mut tx = b.transaction().unwrap();
            let mut writer = tx.copy_in("COPY t FROM STDIN WITH (FORMAT csv)").unwrap();
            writer.write_all(b"9,nine\n").unwrap();
            writer.finish().unwrap();
            tx.commit().unwrap();
        },
        &["9"],
    );
}

#[test]
fn alter_table_never_serves_the_old_shape() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int, v bigint); INSERT INTO t VALUES (1, 10);");
    let mut b = cluster.connect();

    // ADD COLUMN with a DEFAULT (no table rewrite): `select *` now has a third column.
    let q = "select * from t order by id";
    let json_before = cached_json(&mut a, q);
    assert_eq!(json_before, serde_json::json!([{"id": 1, "v": 10}]));
    assert_eq!(cached_json(&mut a, q), json_before);
    let s0 = stats(&mut a);
    b.batch_execute("ALTER TABLE t ADD COLUMN w int DEFAULT 7").unwrap();
    let json_after = cached_json(&mut a, q);
    let s1 = stats(&mut a);
    assert_eq!(
        json_after,
        serde_json::json!([{"id": 1, "v": 10, "w": 7}]),
        "stale shape; stats {s0:?} -> {s1:?}"
    );

    // The rows flavor with the old column list: the stored 2-column rows must not come back.
    let q2 = "select * from t where id = 1";
    b.batch_execute("ALTER TABLE t DROP COLUMN w").unwrap();
    warm(&mut a, q2, "id int, v bigint", &["(1,10)"]);
    b.batch_execute("ALTER TABLE t ADD COLUMN w int DEFAULT 7").unwrap();
    let after = try_cached(&mut a, q2, &[], "id int, v bigint");
    let err = expect_error(after, &SqlState::DATATYPE_MISMATCH, "old column list after ADD COLUMN");
    let db = err.as_db_error().unwrap();
    assert!(db.detail().unwrap_or("").contains("3 column"), "{db:?}");
    assert_eq!(cached(&mut a, q2, "id int, v bigint, w int"), ["(1,10,7)"]);

    // ALTER COLUMN ... TYPE (a table rewrite): bigint becomes numeric.
    let q3 = "select id, v from t order by id";
    warm(&mut a, q3, "id int, v bigint", &["(1,10)"]);
    b.batch_execute("ALTER TABLE t ALTER COLUMN v TYPE numeric USING v * 1.5").unwrap();
    let after = try_cached(&mut a, q3, &[], "id int, v bigint");
    expect_error(after, &SqlState::DATATYPE_MISMATCH, "old column list after ALTER COLUMN TYPE");
    assert_eq!(cached(&mut a, q3, "id int, v numeric"), ["(1,15.0)"]);

    // A rename of the column read by the query: the query itself no longer works.
    let q4 = "select v from t";
    warm(&mut a, q4, "v numeric", &["15.0"]);
    b.batch_execute("ALTER TABLE t RENAME COLUMN v TO v2").unwrap();
    expect_error(
        try_cached(&mut a, q4, &[], "v numeric"),
        &SqlState::UNDEFINED_COLUMN,
        "renamed column",
    );
}

#[test]
fn refresh_materialized_view_invalidates() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE t(v int); INSERT INTO t VALUES (1), (2);
         CREATE MATERIALIZED VIEW mv AS SELECT sum(v)::bigint AS s FROM t;
         CREATE UNIQUE INDEX ON mv (s);",
    );
    warm(&mut a, "select s from mv", "s bigint", &["3"]);
    let mut b = cluster.connect();
    // The base table changes, the materialized view does not: its cached answer is right.
    b.batch_execute("INSERT INTO t VALUES (10)").unwrap();
    assert_eq!(cached(&mut a, "select s from mv", "s bigint"), ["3"]);
    invalidation_case(
        &cluster,
        &mut a,
        "select s from mv",
        "s bigint",
        &["3"],
        |b| {
            b.batch_execute("REFRESH MATERIALIZED VIEW mv").unwrap();
        },
        &["13"],
    );
    invalidation_case(
        &cluster,
        &mut a,
        "select s from mv",
        "s bigint",
        &["13"],
        |b| {
            b.batch_execute(
                "INSERT INTO t VALUES (100); REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            )
            .unwrap();
        },
        &["113"],
    );
}

// ---- 3. own uncommitted writes ---------------------------------------------------------

#[test]
fn own_uncommitted_write_is_seen_by_its_transaction_only() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);");
    let q = "select v from t where id = 1";
    let col = "v bigint";
    warm(&mut a, q, col, &["10"]);
    let mut other = cluster.connect();

    let before = stats(&mut other).reason("own_uncommitted_write");
    a.batch_execute("BEGIN; UPDATE t SET v = 99 WHERE id = 1;").unwrap();
    // A cached entry exists for this key: it must not be served to the writing transaction.
    assert_eq!(cached(&mut a, q, col), ["99"]);
    // A key not cached yet: filled inside the writing transaction, must not be stored.
    let q_new = "select v * 2 from t where id = 1";
    assert_eq!(cached(&mut a, q_new, "v bigint"), ["198"]);
    assert_eq!(cached_json(&mut a, q), serde_json::json!([{"v": 99}]));
    let during = stats(&mut other);
    assert!(during.reason("own_uncommitted_write") >= before + 3, "{during:?}");
    // Meanwhile other sessions see the committed value, from the cache or not.
    assert_eq!(cached(&mut other, q, col), ["10"]);
    assert_eq!(cached(&mut other, q_new, "v bigint"), ["20"]);
    assert_eq!(cached_json(&mut other, q), serde_json::json!([{"v": 10}]));
    a.batch_execute("ROLLBACK").unwrap();

    assert_eq!(cached(&mut other, q, col), ["10"]);
    assert_eq!(cached(&mut other, q_new, "v bigint"), ["20"]);
    assert_eq!(cached(&mut a, q, col), ["10"]);
    assert_eq!(cached(&mut a, q_new, "v bigint"), ["20"]);
    assert_eq!(cached_json(&mut a, q), serde_json::json!([{"v": 10}]));

    // A write in a rolled-back savepoint still makes the transaction bypass (conservative),
    // and nothing it saw is stored.
    a.batch_execute("BEGIN; SAVEPOINT s; UPDATE t SET v = 55 WHERE id = 1;").unwrap();
    assert_eq!(cached(&mut a, "select v + 1 from t where id = 1", "v bigint"), ["56"]);
    a.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    assert_eq!(cached(&mut a, "select v + 2 from t where id = 1", "v bigint"), ["12"]);
    // Checked before A commits (its commit would invalidate t anyway).
    assert_eq!(cached(&mut other, "select v + 1 from t where id = 1", "v bigint"), ["11"]);
    assert_eq!(cached(&mut other, "select v + 2 from t where id = 1", "v bigint"), ["12"]);
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(cached(&mut other, "select v + 1 from t where id = 1", "v bigint"), ["11"]);
    assert_eq!(cached(&mut a, "select v + 2 from t where id = 1", "v bigint"), ["12"]);
}

// ---- 4. REPEATABLE READ ----------------------------------------------------------------

#[test]
fn repeatable_read_bypasses_and_keeps_its_snapshot() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);");
    let q = "select v from t where id = 1";
    let col = "v bigint";
    warm(&mut a, q, col, &["10"]);
    let mut b = cluster.connect();
    let mut c = cluster.connect();

    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        let start: i64 = scalar_i64(&mut a, "SELECT v FROM t WHERE id = 1");
        let rr_before = stats(&mut b).reason("repeatable_read");
        a.batch_execute(&format!("BEGIN ISOLATION LEVEL {level}")).unwrap();
        let s = start.to_string();
        let hits_before = stats(&mut b).hits;
        assert_eq!(cached(&mut a, q, col), [s.as_str()]);
        b.batch_execute("UPDATE t SET v = v + 1 WHERE id = 1").unwrap();
        // Another session fills the cache with the new value...
        let new = (start + 1).to_string();
        assert_eq!(cached(&mut c, q, col), [new.as_str()]);
        assert_eq!(cached(&mut c, q, col), [new.as_str()]);
        // ...and A's snapshot still says the old one.
        assert_eq!(
            cached(&mut a, q, col),
            [s.as_str()],
            "{level}: the cache must not leak a newer value"
        );
        assert_eq!(cached_json(&mut a, q), serde_json::json!([{"v": start}]));
        assert_eq!(scalar_i64(&mut a, "SELECT v FROM t WHERE id = 1"), start);
        let hits_a = stats(&mut a);
        a.batch_execute("COMMIT").unwrap();
        assert!(hits_a.reason("repeatable_read") >= rr_before + 3, "{level}: {hits_a:?}");
        assert_eq!(hits_a.hits - hits_before, 1, "{level}: only C's second call hits: {hits_a:?}");
        assert_eq!(cached(&mut a, q, col), [new.as_str()]);
    }
}

// ---- 5. prepared transactions ----------------------------------------------------------

#[test]
fn commit_prepared_invalidates() {
    let options = ClusterOptions {
        settings: vec![("max_prepared_transactions", "5".into())],
        ..Default::default()
    };
    let (cluster, mut a) = PgCluster::with_pitstop(
        options,
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);",
    );
    let q = "select v from t where id = 1";
    let col = "v bigint";
    warm(&mut a, q, col, &["10"]);

    let mut b = cluster.connect();
    b.batch_execute("BEGIN; UPDATE t SET v = 20 WHERE id = 1; PREPARE TRANSACTION 'x';").unwrap();
    drop(b);
    expect_cached(&mut a, q, col, &["10"], true);
    let mut c = cluster.connect();
    c.batch_execute("COMMIT PREPARED 'x'").unwrap();
    assert_eq!(cached(&mut a, q, col), ["20"]);
    expect_cached(&mut a, q, col, &["20"], true);

    // ROLLBACK PREPARED changes nothing; the value stays right either way.
    let mut b = cluster.connect();
    b.batch_execute("BEGIN; UPDATE t SET v = 30 WHERE id = 1; PREPARE TRANSACTION 'y';").unwrap();
    assert_eq!(cached(&mut a, q, col), ["20"]);
    c.batch_execute("ROLLBACK PREPARED 'y'").unwrap();
    assert_eq!(cached(&mut a, q, col), ["20"]);

    // A prepared transaction committed by the session that prepared it.
    b.batch_execute("BEGIN; UPDATE t SET v = 40 WHERE id = 1; PREPARE TRANSACTION 'z';").unwrap();
    assert_eq!(cached(&mut a, q, col), ["20"]);
    b.batch_execute("COMMIT PREPARED 'z'").unwrap();
    assert_eq!(cached(&mut a, q, col), ["40"]);
}

// ---- 6. the key: role, search_path, settings -------------------------------------------

#[test]
fn role_is_part_of_the_key() {
    let (cluster, mut admin) = cluster(
        "CREATE TABLE t(v int); INSERT INTO t VALUES (1);
         CREATE TABLE secret(v text); INSERT INTO secret VALUES ('s3cr3t');
         CREATE ROLE r1 LOGIN; CREATE ROLE r2 LOGIN;
         GRANT USAGE ON SCHEMA pitstop TO r1, r2;
         GRANT SELECT ON t TO r1, r2;
         GRANT SELECT ON secret TO r1;",
    );
    let mut r1 = cluster.connect_as("r1", "postgres");
    let mut r2 = cluster.connect_as("r2", "postgres");
    let q = "select current_user::text as u, v from t";
    warm(&mut r1, q, "u text, v int", &["(r1,1)"]);
    assert_eq!(cached(&mut r2, q, "u text, v int"), ["(r2,1)"]);
    assert_eq!(cached(&mut r2, q, "u text, v int"), ["(r2,1)"]);
    assert_eq!(cached(&mut r1, q, "u text, v int"), ["(r1,1)"]);
    let roles: Vec<String> = admin
        .query("SELECT role::text FROM pitstop.cache_entries WHERE query = $1 ORDER BY role", &[&q])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, ["r1", "r2"]);

    // A role without SELECT never gets another role's cached rows.
    warm(&mut r1, "select v from secret", "v text", &["s3cr3t"]);
    expect_error(
        try_cached(&mut r2, "select v from secret", &[], "v text"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "r2 on secret",
    );
    expect_error(
        try_cached_json(&mut r2, "select v from secret", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "r2 json",
    );
    // SET ROLE changes the key as well.
    admin.batch_execute("GRANT r2 TO postgres").unwrap();
    warm(&mut admin, "select v from secret", "v text", &["s3cr3t"]);
    admin.batch_execute("SET ROLE r2").unwrap();
    expect_error(
        try_cached(&mut admin, "select v from secret", &[], "v text"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "SET ROLE r2",
    );
    admin.batch_execute("RESET ROLE").unwrap();
    // Revoking a privilege takes effect for cached results.
    admin.batch_execute("REVOKE SELECT ON secret FROM r1").unwrap();
    expect_error(
        try_cached(&mut r1, "select v from secret", &[], "v text"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "after REVOKE",
    );
}

#[test]
fn search_path_is_part_of_the_key() {
    let (_cluster, mut a) = cluster(
        "CREATE SCHEMA s1; CREATE SCHEMA s2;
         CREATE TABLE s1.items(v text); INSERT INTO s1.items VALUES ('one');
         CREATE TABLE s2.items(v text); INSERT INTO s2.items VALUES ('two');",
    );
    let q = "select v from items";
    a.batch_execute("SET search_path = s1").unwrap();
    warm(&mut a, q, "v text", &["one"]);
    a.batch_execute("SET search_path = s2").unwrap();
    assert_eq!(cached(&mut a, q, "v text"), ["two"]);
    assert_eq!(cached(&mut a, q, "v text"), ["two"]);
    assert_eq!(cached_json(&mut a, q), serde_json::json!([{"v": "two"}]));
    a.batch_execute("SET search_path = s1").unwrap();
    expect_cached(&mut a, q, "v text", &["one"], true);
    assert_eq!(cached_json(&mut a, q), serde_json::json!([{"v": "one"}]));
    // Set for one transaction only.
    a.batch_execute("BEGIN; SET LOCAL search_path = s2").unwrap();
    assert_eq!(cached(&mut a, q, "v text"), ["two"]);
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(cached(&mut a, q, "v text"), ["one"]);
    // A table that appears earlier on the path later: same search_path string, new answer.
    a.batch_execute("SET search_path = s2, s1").unwrap();
    assert_eq!(cached(&mut a, q, "v text"), ["two"]);
    a.batch_execute("DROP TABLE s2.items").unwrap();
    assert_eq!(cached(&mut a, q, "v text"), ["one"]);
}

#[test]
fn timezone_and_datestyle_are_part_of_the_key() {
    let (_cluster, mut a) = cluster(
        "CREATE TABLE ev(ts timestamptz); INSERT INTO ev VALUES ('2024-01-01 12:00:00+00');",
    );
    let q = "select ts from ev";
    a.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let utc = cached_json(&mut a, q);
    assert_eq!(utc, serde_json::json!([{"ts": "2024-01-01T12:00:00+00:00"}]));
    assert_eq!(cached_json(&mut a, q), utc);
    a.batch_execute("SET TimeZone = 'Asia/Tokyo'").unwrap();
    let tokyo = cached_json(&mut a, q);
    assert_eq!(tokyo, serde_json::json!([{"ts": "2024-01-01T21:00:00+09:00"}]));
    assert_eq!(cached_json(&mut a, q), tokyo);
    a.batch_execute("SET TimeZone = 'UTC'").unwrap();
    assert_eq!(cached_json(&mut a, q), utc);

    // Rendered to text inside the query.
    let q2 = "select ts::text from ev";
    a.batch_execute("SET TimeZone = 'UTC'").unwrap();
    warm(&mut a, q2, "ts text", &["2024-01-01 12:00:00+00"]);
    a.batch_execute("SET TimeZone = 'America/New_York'").unwrap();
    assert_eq!(cached(&mut a, q2, "ts text"), ["2024-01-01 07:00:00-05"]);
    a.batch_execute("SET DateStyle = 'SQL, DMY'").unwrap();
    assert_eq!(cached(&mut a, q2, "ts text"), ["01/01/2024 07:00:00 EST"]);
    a.batch_execute("RESET DateStyle; SET TimeZone = 'UTC'").unwrap();
    expect_cached(&mut a, q2, "ts text", &["2024-01-01 12:00:00+00"], true);
}

// ---- 7. concurrent torture -------------------------------------------------------------

#[test]
fn concurrent_readers_never_see_stale_or_rolled_back_values() {
    const WRITERS: usize = 3;
    const READERS: usize = 3;
    const OPS: usize = 1000;
    const POISON: i64 = 1_000_000;
    let (cluster, mut setup) = cluster(
        "CREATE TABLE counter(id int PRIMARY KEY, v bigint); INSERT INTO counter VALUES (1, 0);",
    );
    let q = "select v from counter where id = 1";
    let cached_sql =
        "SELECT v FROM pitstop.cached('select v from counter where id = 1') AS t(v bigint)";
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let reads = AtomicU64::new(0);
    let problems: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let s0 = stats(&mut setup);

    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (cluster, committed, problems) = (&cluster, &committed, &problems);
            writers.push(scope.spawn(move || {
                let mut c = cluster.connect();
                for i in 0..OPS {
                    match (i + w) % 8 {
                        3 => {
                            // One increment kept, one rolled back to a savepoint.
                            c.batch_execute("BEGIN").unwrap();
                            c.execute("UPDATE counter SET v = v + 1 WHERE id = 1", &[]).unwrap();
                            c.batch_execute("SAVEPOINT s").unwrap();
                            c.execute("UPDATE counter SET v = v + $1 WHERE id = 1", &[&POISON])
                                .unwrap();
                            // The transaction sees its own write, through the cache too.
                            let own: i64 = c.query_one(cached_sql, &[]).unwrap().get(0);
                            if own < POISON {
                                problems
                                    .lock()
                                    .unwrap()
                                    .push(format!("writer {w} did not see its own write: {own}"));
                            }
                            c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
                            c.batch_execute("COMMIT").unwrap();
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                        5 => {
                            c.batch_execute("BEGIN").unwrap();
                            c.execute("UPDATE counter SET v = v + $1 WHERE id = 1", &[&POISON])
                                .unwrap();
                            let own: i64 = c.query_one(cached_sql, &[]).unwrap().get(0);
                            if own < POISON {
                                problems
                                    .lock()
                                    .unwrap()
                                    .push(format!("writer {w} did not see its own write: {own}"));
                            }
                            c.batch_execute("ROLLBACK").unwrap();
                        }
                        _ => {
                            c.execute("UPDATE counter SET v = v + 1 WHERE id = 1", &[]).unwrap();
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if i % 16 == 0 {
                        // Leave the readers some quiet moments so that hits happen.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }));
        }
        let mut readers = Vec::new();
        for r in 0..READERS {
            let (cluster, done, reads, problems) = (&cluster, &done, &reads, &problems);
            readers.push(scope.spawn(move || {
                let mut c = cluster.connect();
                let mut last = 0i64;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let floor: i64 = c.query_one(q, &[]).unwrap().get(0);
                    let got: i64 = c.query_one(cached_sql, &[]).unwrap().get(0);
                    let ceiling: i64 = c.query_one(q, &[]).unwrap().get(0);
                    reads.fetch_add(1, Ordering::Relaxed);
                    if got < floor || got > ceiling || got >= POISON || got < last {
                        problems.lock().unwrap().push(format!(
                            "reader {r}: floor {floor} cached {got} ceiling {ceiling} previous {last}"
                        ));
                    }
                    last = got;
                    if finished || started.elapsed() > Duration::from_secs(40) {
                        break;
                    }
                }
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    });

    let expected = committed.load(Ordering::SeqCst) as i64;
    let final_plain = scalar_i64(&mut setup, q);
    let final_cached: i64 = setup.query_one(cached_sql, &[]).unwrap().get(0);
    let s1 = stats(&mut setup);
    let problems = problems.into_inner().unwrap();
    println!(
        "torture: {} reads, {} committed increments, {:?}; hits {} misses {} fills {} bypasses {} invalidations {}; \
         {} stale/wrong reads",
        reads.load(Ordering::Relaxed),
        expected,
        started.elapsed(),
        s1.hits - s0.hits,
        s1.misses - s0.misses,
        s1.fills - s0.fills,
        s1.bypasses - s0.bypasses,
        s1.invalidations - s0.invalidations,
        problems.len()
    );
    assert_eq!(final_plain, expected);
    assert_eq!(final_cached, expected);
    assert!(
        problems.is_empty(),
        "{} stale or wrong reads, first ones:\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(reads.load(Ordering::Relaxed) >= 500, "too few reads to mean anything");
    assert!(s1.hits > s0.hits, "the cache was never used: {s1:?}");
}

// ---- 8. outbox -------------------------------------------------------------------------

fn outbox_count(c: &mut Client) -> i64 {
    scalar_i64(c, "SELECT count(*) FROM pitstop.invalidation_outbox")
}

fn next_notification(c: &mut Client, wait: Duration) -> Option<postgres::Notification> {
    use postgres::fallible_iterator::FallibleIterator;
    c.notifications().timeout_iter(wait).next().unwrap()
}

#[test]
fn outbox_records_committed_writes_of_tracked_tables() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE orders(id int, v int);
         CREATE TABLE other(id int);
         SELECT pitstop.cache_track('orders', ARRAY['orders-list', 'tenant:1']);",
    );
    let tracked: Vec<(String, Vec<String>)> = a
        .query("SELECT relation::text, tags FROM pitstop.cache_tracked", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let tags = vec!["postgres.public.orders".to_string(), "orders-list".into(), "tenant:1".into()];
    assert_eq!(tracked, [("orders".to_string(), tags.clone())]);

    let mut listener = cluster.connect();
    listener.batch_execute("LISTEN pitstop_invalidation").unwrap();
    let mut b = cluster.connect();

    // An INSERT of several rows: one outbox row, after commit, with one notification.
    b.batch_execute("BEGIN; INSERT INTO orders SELECT g, g FROM generate_series(1, 5) g;").unwrap();
    assert!(
        next_notification(&mut listener, Duration::from_millis(300)).is_none(),
        "notified before commit"
    );
    assert_eq!(outbox_count(&mut a), 0, "uncommitted outbox row visible");
    b.batch_execute("COMMIT").unwrap();
    let row = a
        .query_one(
            "SELECT id, database::text, relation, relid = 'orders'::regclass, tags, xid::text::bigint > 0
             FROM pitstop.invalidation_outbox",
            &[],
        )
        .unwrap();
    let id: i64 = row.get(0);
    assert_eq!(row.get::<_, String>(1), "postgres");
    assert_eq!(row.get::<_, String>(2), "public.orders");
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Vec<String>>(4), tags);
    assert!(row.get::<_, bool>(5));
    let n = next_notification(&mut listener, Duration::from_secs(5))
        .expect("no notification after commit");
    assert_eq!(n.channel(), "pitstop_invalidation");
    let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(payload, serde_json::json!({"id": id, "relation": "public.orders"}));

    // A rolled-back UPDATE leaves no row and no notification.
    b.batch_execute("BEGIN; UPDATE orders SET v = v + 1; ROLLBACK;").unwrap();
    assert_eq!(outbox_count(&mut a), 1);
    assert!(
        next_notification(&mut listener, Duration::from_millis(300)).is_none(),
        "notified for a rollback"
    );
    // Writes to an untracked table add nothing.
    b.batch_execute("INSERT INTO other VALUES (1)").unwrap();
    assert_eq!(outbox_count(&mut a), 1);

    // UPDATE, DELETE and TRUNCATE append too (one row per statement).
    b.batch_execute(
        "UPDATE orders SET v = v + 1; DELETE FROM orders WHERE id = 1; TRUNCATE orders;",
    )
    .unwrap();
    let relations: Vec<String> = a
        .query("SELECT relation FROM pitstop.invalidation_outbox WHERE id > $1 ORDER BY id", &[&id])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(relations, ["public.orders"; 3]);
    let mut ids = Vec::new();
    while let Some(n) = next_notification(&mut listener, Duration::from_secs(2)) {
        ids.push(
            serde_json::from_str::<serde_json::Value>(n.payload()).unwrap()["id"].as_i64().unwrap(),
        );
        if ids.len() == 3 {
            break;
        }
    }
    assert_eq!(ids.len(), 3, "one notification per writing statement: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > id, "{ids:?}");

    // Untracking stops it.
    assert!(a.query_one("SELECT pitstop.cache_untrack('orders')", &[]).unwrap().get::<_, bool>(0));
    assert!(!a.query_one("SELECT pitstop.cache_untrack('orders')", &[]).unwrap().get::<_, bool>(0));
    assert_eq!(scalar_i64(&mut a, "SELECT count(*) FROM pitstop.cache_tracked"), 0);
    let count = outbox_count(&mut a);
    b.batch_execute("INSERT INTO orders VALUES (7, 7)").unwrap();
    assert_eq!(outbox_count(&mut a), count);
    assert!(next_notification(&mut listener, Duration::from_millis(300)).is_none());
}

#[test]
fn outbox_works_for_an_application_role_without_outbox_privileges() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE orders(id int, v int);
         CREATE ROLE app LOGIN;
         GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app;
         SELECT pitstop.cache_track('orders');",
    );
    let mut app = cluster.connect_as("app", "postgres");
    // The application cannot touch the outbox directly...
    expect_error(
        app.query("SELECT * FROM pitstop.invalidation_outbox", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "read outbox",
    );
    expect_error(
        app.execute(
            "INSERT INTO pitstop.invalidation_outbox(relation, relid, tags) VALUES ('x', 0, '{}')",
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "forge outbox row",
    );
    // ...but its writes to the tracked table are recorded.
    app.batch_execute("INSERT INTO orders VALUES (1, 1)").unwrap();
    app.batch_execute("UPDATE orders SET v = 2").unwrap();
    let rows: Vec<(String, Vec<String>)> = a
        .query("SELECT relation, tags FROM pitstop.invalidation_outbox ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = ("public.orders".to_string(), vec!["postgres.public.orders".to_string()]);
    assert_eq!(rows, [expected.clone(), expected]);
    // A search_path trick in the writer's session does not redirect the trigger's insert.
    app.batch_execute("SET search_path = pg_temp, public; UPDATE orders SET v = 3").unwrap();
    assert_eq!(outbox_count(&mut a), 3);

    // Bad arguments are clear errors.
    a.batch_execute("CREATE VIEW ov AS SELECT * FROM orders").unwrap();
    expect_error(
        a.query("SELECT pitstop.cache_track('ov')", &[]),
        &SqlState::WRONG_OBJECT_TYPE,
        "track a view",
    );
    expect_error(
        a.query("SELECT pitstop.cache_track('orders', ARRAY['ok', ''])", &[]),
        &SqlState::INVALID_PARAMETER_VALUE,
        "empty tag",
    );
    expect_error(
        a.query("SELECT pitstop.cache_track(NULL)", &[]),
        &SqlState::NULL_VALUE_NOT_ALLOWED,
        "NULL rel",
    );
}

// ---- 9. memory bound -------------------------------------------------------------------

#[test]
fn cache_stays_within_its_memory_and_evicts() {
    let options =
        ClusterOptions { settings: vec![("pitstop.cache_size", "2".into())], ..Default::default() };
    let (_cluster, mut a) = PgCluster::with_pitstop(options, "SELECT 1");
    let q = "select repeat('x', 50000) || $1";
    let configured = stats(&mut a).bytes_configured;
    assert!(configured > 0 && configured <= 2 * 1024 * 1024, "bytes_configured {configured}");
    let check = |c: &mut Client, i: usize| {
        let param = i.to_string();
        let got = try_cached(c, q, &[param.as_str()], "s text").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 50000 + i.to_string().len(), "call {i}");
        assert!(got[0].starts_with("xxxx") && got[0].ends_with(&format!("x{i}")), "call {i}");
    };
    for i in 1..=150 {
        check(&mut a, i);
        if i % 5 == 0 {
            let s = stats(&mut a);
            assert!(s.bytes_used <= s.bytes_configured, "after {i} calls: {s:?}");
            assert_eq!(s.bytes_configured, configured);
        }
    }
    let s = stats(&mut a);
    println!("memory bound: {s:?}");
    assert!(s.evictions > 0, "{s:?}");
    assert!(s.fills >= 150, "every distinct result was stored: {s:?}");
    assert!(s.entries > 0 && s.entries < 150, "{s:?}");
    assert!(s.entries * 50_000 <= s.bytes_configured, "{s:?}");
    assert_eq!(
        s.reason("cache_full") + s.reason("result_too_large") + s.reason("internal_error"),
        0,
        "{s:?}"
    );
    // Recent results are served from the cache, evicted ones recomputed, all correct.
    let before = stats(&mut a);
    for i in (1..=150).rev() {
        check(&mut a, i);
    }
    let after = stats(&mut a);
    assert!(after.hits > before.hits, "{after:?}");
    assert!(after.bytes_used <= after.bytes_configured, "{after:?}");
    let listed: i64 =
        scalar_i64(&mut a, "SELECT coalesce(sum(bytes), 0)::bigint FROM pitstop.cache_entries");
    assert!(listed <= after.bytes_configured, "entries list {listed} bytes: {after:?}");

    // A result larger than pitstop.cache_max_entry is returned, uncached.
    a.batch_execute("SET pitstop.cache_max_entry = '10kB'").unwrap();
    let too_large = stats(&mut a).reason("result_too_large");
    check(&mut a, 9999);
    check(&mut a, 9999);
    assert_eq!(stats(&mut a).reason("result_too_large"), too_large + 2);
}

// ---- 10. bad input ---------------------------------------------------------------------

/// Statements `pitstop.cached` must reject, with the SQLSTATE expected.
fn bad_inputs(
    col: &'static str,
) -> Vec<(&'static str, &'static [&'static str], &'static str, SqlState)> {
    vec![
        ("insert into t values (5, 5)", &[], col, SqlState::FEATURE_NOT_SUPPORTED),
        ("update t set v = 0", &[], col, SqlState::FEATURE_NOT_SUPPORTED),
        ("delete from t", &[], col, SqlState::FEATURE_NOT_SUPPORTED),
        (
            "do $$ begin insert into t values (6, 6); end $$",
            &[],
            col,
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        ("create table made_by_cached(a int)", &[], col, SqlState::FEATURE_NOT_SUPPORTED),
        ("select 1; insert into t values (7, 7)", &[], col, SqlState::SYNTAX_ERROR),
        ("select 1; select 2", &[], col, SqlState::SYNTAX_ERROR),
        (
            "with w as (insert into t values (8, 8) returning id) select id from w",
            &[],
            col,
            SqlState::FEATURE_NOT_SUPPORTED,
        ),
        ("explain analyze insert into t values (9, 9)", &[], col, SqlState::FEATURE_NOT_SUPPORTED),
        ("selec 1", &[], col, SqlState::SYNTAX_ERROR),
        ("select from where", &[], col, SqlState::SYNTAX_ERROR),
        ("", &[], col, SqlState::SYNTAX_ERROR),
        ("select nope from t", &[], col, SqlState::UNDEFINED_COLUMN),
        ("select v from missing_table", &[], col, SqlState::UNDEFINED_TABLE),
        ("select id from t where id = $1", &["1", "2"], col, SqlState::INVALID_PARAMETER_VALUE),
        ("select id from t where id = $1", &[], col, SqlState::INVALID_PARAMETER_VALUE),
        (
            "select id from t where id = $1 and v = $2",
            &["1"],
            col,
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        ("select id from t where id = $1", &["abc"], col, SqlState::INVALID_TEXT_REPRESENTATION),
        (
            "select id from t where id = $1",
            &["99999999999"],
            col,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        ),
    ]
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let (cluster, mut a) =
        cluster("CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);");
    let col = "x int";
    let count = |c: &mut Client| scalar_i64(c, "SELECT count(*) FROM t");
    let mut cases = bad_inputs(col);
    cases.extend([
        ("select v from t", &[][..], "v int", SqlState::DATATYPE_MISMATCH),
        ("select id, v from t", &[], "id int", SqlState::DATATYPE_MISMATCH),
        ("select id from t", &[], "id int, v bigint", SqlState::DATATYPE_MISMATCH),
    ]);
    let mut failures = Vec::new();
    for (query, params, coldef, code) in &cases {
        let result = try_cached(&mut a, query, params, coldef);
        match &result {
            Err(e) if e.code() == Some(code) => {
                let db = e.as_db_error().unwrap();
                assert!(!db.message().is_empty());
            }
            other => failures.push(format!(
                "{query:?} {params:?} AS ({coldef}): expected {code:?}, got {other:?}"
            )),
        }
    }
    assert_eq!(
        count(&mut a),
        1,
        "a rejected statement wrote rows: {:?}",
        a.query("SELECT * FROM t", &[]).unwrap()
    );
    assert_eq!(scalar_i64(&mut a, "SELECT v FROM t WHERE id = 1"), 10);
    assert_eq!(
        scalar_i64(&mut a, "SELECT count(*) FROM pg_class WHERE relname = 'made_by_cached'"),
        0
    );

    // NULL query, a negative ttl, and no column list.
    let e = a.query("SELECT * FROM pitstop.cached(NULL) AS t(x int)", &[]).unwrap_err();
    if e.code() != Some(&SqlState::NULL_VALUE_NOT_ALLOWED) {
        failures.push(format!("NULL query: {e:?}"));
    }
    let e = a
        .query("SELECT * FROM pitstop.cached('select 1', NULL, '-1 second') AS t(x int)", &[])
        .unwrap_err();
    if e.code() != Some(&SqlState::INVALID_PARAMETER_VALUE) {
        failures.push(format!("negative ttl: {e:?}"));
    }
    let e = a.query("SELECT pitstop.cached('select 1')", &[]).unwrap_err();
    if e.code() != Some(&SqlState::DATATYPE_MISMATCH)
        && e.code() != Some(&SqlState::FEATURE_NOT_SUPPORTED)
    {
        failures.push(format!("no column list: {e:?}"));
    }

    // The session (and its transaction) still works after all those errors, and so does
    // the cache.
    a.batch_execute("BEGIN").unwrap();
    assert!(try_cached(&mut a, "selec 1", &[], col).is_err());
    a.batch_execute("ROLLBACK").unwrap();
    expect_cached_with(&mut a, "select id from t where id = $1", &["1"], "id int", &["1"], false);
    expect_cached_with(&mut a, "select id from t where id = $1", &["1"], "id int", &["1"], true);
    expect_cached_with(&mut a, "select id from t where id = $1", &["2"], "id int", &[], false);
    let mut b = cluster.connect();
    assert_eq!(
        try_cached(&mut b, "select id from t where id = $1", &["1"], "id int").unwrap(),
        ["1"]
    );
    let s = stats(&mut a);
    assert_eq!(s.reason("internal_error"), 0, "{s:?}");
    assert!(failures.is_empty(), "wrong errors:\n{}", failures.join("\n"));
}

/// `cached_json` wraps the query; its rejections must be as clear as those of `cached`.
#[test]
fn cached_json_rejects_bad_input_like_cached() {
    let (_cluster, mut a) =
        cluster("CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);");
    let mut failures = Vec::new();
    for (query, params, _, code) in &bad_inputs("x int") {
        match try_cached_json(&mut a, query, params) {
            Err(e) if e.code() == Some(code) => {}
            Err(e) => failures.push(format!(
                "cached_json({query:?}, {params:?}): expected {code:?}, got {:?}: {}",
                e.code(),
                e.as_db_error().map(|d| d.message()).unwrap_or("")
            )),
            Ok(v) => failures
                .push(format!("cached_json({query:?}, {params:?}): expected {code:?}, got {v}")),
        }
    }
    assert_eq!(scalar_i64(&mut a, "SELECT count(*) FROM t"), 1, "a rejected statement wrote rows");
    assert_eq!(
        scalar_i64(&mut a, "SELECT count(*) FROM pg_class WHERE relname = 'made_by_cached'"),
        0
    );
    assert!(failures.is_empty(), "wrong errors:\n{}", failures.join("\n"));
}

// ---- extra: bypasses and management -----------------------------------------------------

#[test]
fn uncacheable_queries_bypass_and_management_functions_work() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);
         CREATE TEMP TABLE tmp(v int);",
    );
    let bypassed = |a: &mut Client, query: &str, coldef: &str, reason: &str| {
        let before = stats(a);
        try_cached(a, query, &[], coldef).unwrap_or_else(|e| panic!("{query}: {e:?}"));
        try_cached(a, query, &[], coldef).unwrap();
        let after = stats(a);
        assert_eq!(after.reason(reason), before.reason(reason) + 2, "{query}: {after:?}");
        assert_eq!(after.hits, before.hits, "{query} hit: {after:?}");
        assert_eq!(after.fills, before.fills, "{query} filled: {after:?}");
    };
    bypassed(&mut a, "select random() as r", "r float8", "volatile_function");
    bypassed(&mut a, "select now() as n", "n timestamptz", "stable_function");
    bypassed(&mut a, "select v from t for update", "v bigint", "for_update");
    bypassed(&mut a, "select v from tmp", "v int", "temporary_table");
    bypassed(&mut a, "select count(*) from pg_class", "n bigint", "system_catalog");
    a.batch_execute("SET pitstop.cache_enabled = off").unwrap();
    bypassed(&mut a, "select v from t", "v bigint", "disabled");
    a.batch_execute("RESET pitstop.cache_enabled").unwrap();

    // cache_invalidate makes the entry stale, cache_clear removes everything.
    warm(&mut a, "select v from t", "v bigint", &["10"]);
    // A write that bypasses executor hooks (none here): simulate with cache_invalidate.
    assert!(a.query_one("SELECT pitstop.cache_invalidate('t')", &[]).unwrap().get::<_, bool>(0));
    expect_cached(&mut a, "select v from t", "v bigint", &["10"], false);
    let fresh: bool = a
        .query_one("SELECT fresh FROM pitstop.cache_entries WHERE query = 'select v from t'", &[])
        .unwrap()
        .get(0);
    assert!(fresh);
    let cleared: i64 = a.query_one("SELECT pitstop.cache_clear()", &[]).unwrap().get(0);
    assert!(cleared >= 1);
    assert_eq!(stats(&mut a).entries, 0);
    expect_cached(&mut a, "select v from t", "v bigint", &["10"], false);

    // A ttl expires an entry.
    let q = "select v + 1 from t";
    let c = a
        .query("SELECT v FROM pitstop.cached($1, NULL, '200 milliseconds') AS t(v bigint)", &[&q])
        .unwrap();
    assert_eq!(c[0].get::<_, i64>(0), 11);
    std::thread::sleep(Duration::from_millis(400));
    let before = stats(&mut a);
    a.query("SELECT v FROM pitstop.cached($1, NULL, '200 milliseconds') AS t(v bigint)", &[&q])
        .unwrap();
    let after = stats(&mut a);
    assert_eq!(after.hits, before.hits, "expired entry served: {after:?}");
    assert_eq!(after.stale, before.stale + 1, "{after:?}");

    // Another database has its own entries and versions.
    a.batch_execute("CREATE DATABASE other").unwrap();
    let dsn = format!("host=127.0.0.1 port={} user=postgres dbname=other", cluster.port);
    let mut o = Client::connect(&dsn, postgres::NoTls).unwrap();
    o.batch_execute("CREATE EXTENSION pitstop; CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 77);")
        .unwrap();
    assert_eq!(cached(&mut o, "select v from t", "v bigint"), ["77"]);
    assert_eq!(cached(&mut a, "select v from t", "v bigint"), ["10"]);
    o.batch_execute("UPDATE t SET v = 78").unwrap();
    assert_eq!(cached(&mut o, "select v from t", "v bigint"), ["78"]);
    assert_eq!(cached(&mut a, "select v from t", "v bigint"), ["10"]);
}

// ---- extra: definitions that change an answer without writing the relations read --------

#[test]
fn a_table_created_earlier_on_the_search_path_is_seen() {
    let (cluster, mut a) = cluster(
        "CREATE SCHEMA s1; CREATE SCHEMA s2;
         CREATE TABLE s1.items(v text); INSERT INTO s1.items VALUES ('one');",
    );
    let q = "select v from items";
    a.batch_execute("SET search_path = s2, s1").unwrap();
    warm(&mut a, q, "v text", &["one"]);
    let mut b = cluster.connect();
    b.batch_execute("CREATE TABLE s2.items(v text); INSERT INTO s2.items VALUES ('shadow');")
        .unwrap();
    assert_eq!(plain(&mut a, q, "v text"), ["shadow"]);
    assert_eq!(
        cached(&mut a, q, "v text"),
        ["shadow"],
        "the result of the shadowed table was served"
    );
}

#[test]
fn replacing_a_function_used_by_a_cached_query_is_seen() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE t(v int); INSERT INTO t VALUES (10);
         CREATE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1';",
    );
    let q = "select f(v) from t";
    warm(&mut a, q, "v int", &["11"]);
    let mut b = cluster.connect();
    b.batch_execute(
        "CREATE OR REPLACE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 2'",
    )
    .unwrap();
    assert_eq!(plain(&mut a, q, "v int"), ["12"]);
    assert_eq!(cached(&mut a, q, "v int"), ["12"], "the old function's result was served");
}

#[test]
fn losing_a_privilege_through_role_membership_stops_cached_reads() {
    let (cluster, mut admin) = cluster(
        "CREATE TABLE secret(v text); INSERT INTO secret VALUES ('s3cr3t');
         CREATE ROLE readers; GRANT SELECT ON secret TO readers;
         CREATE ROLE r1 LOGIN IN ROLE readers;
         GRANT USAGE ON SCHEMA pitstop TO r1;",
    );
    let mut r1 = cluster.connect_as("r1", "postgres");
    warm(&mut r1, "select v from secret", "v text", &["s3cr3t"]);
    admin.batch_execute("REVOKE readers FROM r1").unwrap();
    expect_error(
        r1.query("SELECT v FROM secret", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "plain read after REVOKE",
    );
    expect_error(
        try_cached(&mut r1, "select v from secret", &[], "v text"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "cached read after REVOKE readers FROM r1",
    );
}

#[test]
fn losing_usage_on_the_schema_stops_cached_reads() {
    let (cluster, mut admin) = cluster(
        "CREATE SCHEMA vault; CREATE TABLE vault.secret(v text); INSERT INTO vault.secret VALUES ('s3cr3t');
         CREATE ROLE r1 LOGIN;
         GRANT USAGE ON SCHEMA vault, pitstop TO r1; GRANT SELECT ON vault.secret TO r1;",
    );
    let mut r1 = cluster.connect_as("r1", "postgres");
    warm(&mut r1, "select v from vault.secret", "v text", &["s3cr3t"]);
    admin.batch_execute("REVOKE USAGE ON SCHEMA vault FROM r1").unwrap();
    expect_error(
        r1.query("SELECT v FROM vault.secret", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "plain read after REVOKE",
    );
    expect_error(
        try_cached(&mut r1, "select v from vault.secret", &[], "v text"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "cached read after REVOKE USAGE ON SCHEMA vault",
    );
}

#[test]
fn sequences_read_by_a_cached_query_are_not_served_stale() {
    let (cluster, mut a) = cluster("CREATE SEQUENCE s; SELECT nextval('s');");
    let q = "select last_value from s";
    assert_eq!(cached(&mut a, q, "v bigint"), ["1"]);
    assert_eq!(cached(&mut a, q, "v bigint"), ["1"]);
    let mut b = cluster.connect();
    b.batch_execute("SELECT nextval('s'); SELECT nextval('s');").unwrap();
    assert_eq!(plain(&mut a, q, "v bigint"), ["3"]);
    assert_eq!(cached(&mut a, q, "v bigint"), ["3"], "stale sequence value served");
}

#[test]
fn writing_an_inheritance_parent_invalidates_a_query_on_its_child() {
    let (cluster, mut a) = cluster(
        "CREATE TABLE animals(name text, legs int);
         CREATE TABLE dogs() INHERITS (animals);
         INSERT INTO dogs VALUES ('rex', 4);",
    );
    // Reading the parent sees the children too (writes to a child invalidate it).
    invalidation_case(
        &cluster,
        &mut a,
        "select name, legs from animals",
        "name text, legs int",
        &["(rex,4)"],
        |b| {
            b.batch_execute("UPDATE dogs SET legs = 3").unwrap();
        },
        &["(rex,3)"],
    );
    // An UPDATE through the parent changes the child's rows.
    invalidation_case(
        &cluster,
        &mut a,
        "select name, legs from dogs",
        "name text, legs int",
        &["(rex,3)"],
        |b| {
            b.batch_execute("UPDATE animals SET legs = 5").unwrap();
        },
        &["(rex,5)"],
    );
}
