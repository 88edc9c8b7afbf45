//! pitstop's result cache inside transactions: a transaction's own uncommitted writes,
//! REPEATABLE READ snapshots and prepared transactions.

use pitstop_tests::cache_call::{cached, cached_json, expect_cached, warm, warmed_t};
use pitstop_tests::query::scalar_i64;
use pitstop_tests::{cache_stats as stats, ClusterOptions, PgCluster};

// ---- 3. own uncommitted writes ---------------------------------------------------------

#[test]
fn own_uncommitted_write_is_seen_by_its_transaction_only() {
    let (cluster, mut a, q, col) = warmed_t("(1, 10)");
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
    let (cluster, mut a, q, col) = warmed_t("(1, 10)");
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
