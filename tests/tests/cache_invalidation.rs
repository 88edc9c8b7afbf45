//! pitstop's result cache on a real cluster: a committed write invalidates across sessions and
//! a rolled-back one does not, through every write path (triggers, partitions, views,
//! TRUNCATE, COPY, ALTER TABLE, REFRESH MATERIALIZED VIEW).

use pitstop_tests::cache_call::{
    cached, cached_json, expect_cached, expect_error, invalidation_case, invalidation_steps,
    try_cached, warm, warmed_t,
};
use pitstop_tests::{cache_stats as stats, PgCluster};
use postgres::error::SqlState;
use std::io::Write;

// ---- 1. commit and rollback ------------------------------------------------------------

#[test]
fn commit_invalidates_and_rollback_keeps_the_entry() {
    let (cluster, mut a, q, col) = warmed_t("(1, 10), (2, 5)");
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
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE x(id int);
         CREATE TABLE y(n bigint);
         INSERT INTO y VALUES (0);
         CREATE FUNCTION bump_y() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN UPDATE y SET n = n + 1; RETURN NULL; END $$;
         CREATE TRIGGER x_bumps_y AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION bump_y();",
    );
    invalidation_steps(
        &cluster,
        &mut a,
        "select n from y",
        "n bigint",
        &["0"],
        &[("INSERT INTO x VALUES (1)", &["1"])],
    );
    // A function called from a plain SELECT that writes counts as a write too.
    a.batch_execute(
        "CREATE FUNCTION write_y() RETURNS int LANGUAGE sql AS $$ UPDATE y SET n = n + 100; SELECT 1 $$;",
    )
    .unwrap();
    invalidation_steps(
        &cluster,
        &mut a,
        "select n from y",
        "n bigint",
        &["1"],
        &[("SELECT write_y()", &["101"])],
    );
    // A foreign key's ON DELETE CASCADE writes the referencing table.
    a.batch_execute(
        "CREATE TABLE parent_t(id int PRIMARY KEY);
         CREATE TABLE child_t(id int, parent int REFERENCES parent_t ON DELETE CASCADE);
         INSERT INTO parent_t VALUES (1), (2); INSERT INTO child_t VALUES (1, 1), (2, 2);",
    )
    .unwrap();
    invalidation_steps(
        &cluster,
        &mut a,
        "select count(*) from child_t",
        "n bigint",
        &["2"],
        &[("DELETE FROM parent_t WHERE id = 1", &["1"])],
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
    let (cluster, mut a) = PgCluster::with_extension(partitioned_setup());
    let q = "select k, v from p order by k";
    invalidation_steps(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,a)", "(150,b)"],
        &[
            ("UPDATE p2 SET v = 'B'", &["(1,a)", "(150,B)"]),
            ("INSERT INTO p1 VALUES (2, 'c')", &["(1,a)", "(2,c)", "(150,B)"]),
        ],
    );
    // A query the planner prunes to one partition, and a direct write to that partition.
    invalidation_steps(
        &cluster,
        &mut a,
        "select v from p where k = 1",
        "v text",
        &["a"],
        &[("UPDATE p1 SET v = 'A' WHERE k = 1", &["A"])],
    );
}

#[test]
fn writing_through_the_parent_invalidates_a_query_on_a_partition() {
    let (cluster, mut a) = PgCluster::with_extension(partitioned_setup());
    let q = "select k, v from p1 order by k";
    invalidation_steps(
        &cluster,
        &mut a,
        q,
        "k int, v text",
        &["(1,a)"],
        &[
            ("UPDATE p SET v = 'z' WHERE k = 1", &["(1,z)"]),
            // An INSERT routed through the parent.
            ("INSERT INTO p VALUES (5, 'e')", &["(1,z)", "(5,e)"]),
            // An UPDATE that moves a row from p2 into p1.
            ("UPDATE p SET k = 7 WHERE k = 150", &["(1,z)", "(5,e)", "(7,b)"]),
            // A DELETE through the parent.
            ("DELETE FROM p WHERE k = 5", &["(1,z)", "(7,b)"]),
        ],
    );
}

#[test]
fn writing_through_a_parent_of_many_partitions_invalidates_a_query_on_one() {
    // Twelve partitions written by one statement: more result relations than the executor
    // hook matches against the range table one by one.
    let mut setup = String::from("CREATE TABLE mp(k int, v text) PARTITION BY LIST (k);");
    for i in 0..12 {
        setup.push_str(&format!("CREATE TABLE mp{i} PARTITION OF mp FOR VALUES IN ({i});"));
    }
    setup.push_str("INSERT INTO mp SELECT g, 'a' FROM generate_series(0, 11) g;");
    let (cluster, mut a) = PgCluster::with_extension(&setup);
    invalidation_steps(
        &cluster,
        &mut a,
        "select v from mp7",
        "v text",
        &["a"],
        &[("UPDATE mp SET v = v || 'b'", &["ab"]), ("DELETE FROM mp WHERE v <> ''", &[])],
    );
}

#[test]
fn writing_the_base_table_of_a_view_invalidates_a_query_on_the_view() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE base(id int, v int); INSERT INTO base VALUES (1, 1), (2, -2);
         CREATE VIEW vw AS SELECT id, v FROM base WHERE v > 0;
         CREATE VIEW vw2 AS SELECT sum(v)::bigint AS s FROM vw;",
    );
    invalidation_steps(
        &cluster,
        &mut a,
        "select * from vw order by id",
        "id int, v int",
        &["(1,1)"],
        &[("UPDATE base SET v = 2 WHERE id = 2", &["(1,1)", "(2,2)"])],
    );
    // A view over a view.
    invalidation_steps(
        &cluster,
        &mut a,
        "select s from vw2",
        "s bigint",
        &["3"],
        &[("INSERT INTO base VALUES (3, 10)", &["13"])],
    );
}

#[test]
fn truncate_invalidates() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 10);",
    );
    invalidation_steps(
        &cluster,
        &mut a,
        "select count(*) from t",
        "n bigint",
        &["10"],
        &[("TRUNCATE t", &["0"])],
    );
    // TRUNCATE inside an explicit transaction that commits.
    a.batch_execute("INSERT INTO t VALUES (1), (2)").unwrap();
    invalidation_steps(
        &cluster,
        &mut a,
        "select count(*) from t",
        "n bigint",
        &["2"],
        &[("BEGIN; SELECT 1; TRUNCATE t; SELECT 2; COMMIT;", &["0"])],
    );
}

#[test]
fn copy_from_stdin_invalidates() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(id int, name text); INSERT INTO t VALUES (1, 'one');",
    );
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
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(id int, v bigint); INSERT INTO t VALUES (1, 10);",
    );
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
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(v int); INSERT INTO t VALUES (1), (2);
         CREATE MATERIALIZED VIEW mv AS SELECT sum(v)::bigint AS s FROM t;
         CREATE UNIQUE INDEX ON mv (s);",
    );
    warm(&mut a, "select s from mv", "s bigint", &["3"]);
    let mut b = cluster.connect();
    // The base table changes, the materialized view does not: its cached answer is right.
    b.batch_execute("INSERT INTO t VALUES (10)").unwrap();
    assert_eq!(cached(&mut a, "select s from mv", "s bigint"), ["3"]);
    invalidation_steps(
        &cluster,
        &mut a,
        "select s from mv",
        "s bigint",
        &["3"],
        &[("REFRESH MATERIALIZED VIEW mv", &["13"])],
    );
    invalidation_steps(
        &cluster,
        &mut a,
        "select s from mv",
        "s bigint",
        &["13"],
        &[("INSERT INTO t VALUES (100); REFRESH MATERIALIZED VIEW CONCURRENTLY mv", &["113"])],
    );
}
