//! pitstop's result cache where writes bypass the executor hooks: on a physical standby
//! (WAL replay) and for tables a logical-replication subscription applies changes to. In
//! both cases every call must bypass the cache (and count why), and never serve a stale
//! answer — unless the caller asks for TTL-only serving (pitstop.cache_replica_ttl_only and
//! an explicit ttl): then it gets answers at most ttl old, and nobody else does.

use pitstop_tests::cache_call::{cached_with, try_cached_ttl};
use pitstop_tests::{cache_stats as stats, poll_until, ClusterOptions, PgCluster};
use postgres::Client;
use std::time::Duration;

const QUERY: &str = "select v from t where id = $1";
const TIMEOUT: Duration = Duration::from_secs(30);

/// `pitstop.cached(query, params) AS t(v text)`: every row's `v`.
fn cached(c: &mut Client, query: &str, params: &[&str]) -> Vec<String> {
    cached_with(c, query, params, "v text")
}

/// `pitstop.cached(query, params, ttl)`.
fn cached_ttl(c: &mut Client, query: &str, params: &[&str], ttl: &str) -> Vec<String> {
    try_cached_ttl(c, query, params, Some(ttl), "v text")
        .unwrap_or_else(|e| panic!("pitstop.cached({query:?}, {params:?}, {ttl}): {e:?}"))
}

/// The plain, uncached `v`s of `query` with `id` as its only parameter (NULL as `NULL`).
fn plain(c: &mut Client, query: &str, id: i32) -> Vec<String> {
    let rows = c.query(query, &[&id]).unwrap();
    rows.iter().map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into())).collect()
}

fn some(v: &str) -> Vec<String> {
    vec![v.to_string()]
}

/// Opted-in TTL-only serving where pitstop cannot see the writes: `replicate(value)` changes
/// row 1 upstream and waits until it is visible here. The opted-in session gets the cached
/// (older) answer until its ttl passes; a session that did not opt in never does, and
/// neither does a call without a ttl or a query with another reason to bypass.
fn ttl_only_serving(
    s: &mut Client,
    other: &mut Client,
    reason: &str,
    mut replicate: impl FnMut(&mut Client, &str),
) {
    s.batch_execute("SET pitstop.cache_replica_ttl_only = on").unwrap();
    let current = plain(s, QUERY, 1);
    expect_bypass(s, QUERY, &["1"], &current, reason);
    let volatile = "select v || (random() * 0)::int::text from t where id = $1";
    let before = stats(s);
    cached_ttl(s, volatile, &["1"], "1 hour");
    cached_ttl(s, volatile, &["1"], "1 hour");
    let after = stats(s);
    assert_eq!(
        (after.fills, after.hits, after.bypasses - before.bypasses),
        (before.fills, before.hits, 2),
        "volatile: {before:?} {after:?}"
    );

    let before = stats(s);
    assert_eq!(cached_ttl(s, QUERY, &["1"], "3 seconds"), current);
    let filled = std::time::Instant::now();
    assert_eq!(cached_ttl(s, QUERY, &["1"], "3 seconds"), current);
    let after = stats(s);
    assert_eq!(
        (after.fills - before.fills, after.hits - before.hits, after.ttl_only - before.ttl_only),
        (1, 1, 2),
        "{before:?} {after:?}"
    );

    replicate(s, "changed");
    if filled.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            cached_ttl(s, QUERY, &["1"], "3 seconds"),
            current,
            "within its ttl the opted-in caller is served the cached answer"
        );
    }
    expect_bypass(other, QUERY, &["1"], &some("changed"), reason);
    assert!(
        poll_until(Duration::from_secs(10), || cached_ttl(s, QUERY, &["1"], "3 seconds")
            == some("changed")),
        "the entry outlived its ttl"
    );
    assert!(
        filled.elapsed() >= Duration::from_secs(3),
        "served the new value before the ttl passed: not from the cache?"
    );
    s.batch_execute("RESET pitstop.cache_replica_ttl_only").unwrap();
}

/// Calls `cached` and checks its answer and that it bypassed the cache for `reason` (one
/// bypass, no hit, no fill).
fn expect_bypass(c: &mut Client, query: &str, params: &[&str], expected: &[String], reason: &str) {
    let before = stats(c);
    let got = cached(c, query, params);
    let after = stats(c);
    assert_eq!(
        got, expected,
        "pitstop.cached({query:?}, {params:?}); stats before {before:?} after {after:?}"
    );
    assert_eq!(
        after.reason(reason) - before.reason(reason),
        1,
        "{query:?}: expected a {reason} bypass; before {before:?} after {after:?}"
    );
    assert_eq!(
        after.bypasses - before.bypasses,
        1,
        "{query:?}: bypasses; before {before:?} after {after:?}"
    );
    assert_eq!(
        after.hits, before.hits,
        "{query:?}: must not hit; before {before:?} after {after:?}"
    );
    assert_eq!(
        after.fills, before.fills,
        "{query:?}: must not fill; before {before:?} after {after:?}"
    );
}

/// Calls `cached` and checks its answer and whether it was a hit.
fn expect_cached(c: &mut Client, query: &str, params: &[&str], expected: &[String], hit: bool) {
    let before = stats(c);
    let got = cached(c, query, params);
    let after = stats(c);
    assert_eq!(got, expected, "pitstop.cached({query:?}, {params:?})");
    assert_eq!(
        after.hits - before.hits,
        i64::from(hit),
        "{query:?}: expected hit = {hit}; before {before:?} after {after:?}"
    );
    assert_eq!(
        after.bypasses, before.bypasses,
        "{query:?}: must not bypass; before {before:?} after {after:?}"
    );
}

fn scalar_bool(c: &mut Client, sql: &str) -> bool {
    c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}")).get(0)
}

#[test]
fn standby_bypasses_the_cache_and_follows_replay() {
    let (primary, mut p) = PgCluster::with_extension(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'one'), (2, 'two');",
    );

    let standby = PgCluster::start_standby(&primary, ClusterOptions::default());
    let mut s = standby.connect();
    assert!(
        scalar_bool(&mut s, "SELECT pg_is_in_recovery()"),
        "the standby is not in recovery; log:\n{}",
        standby.log()
    );

    // Both calls bypass (the second finds nothing cached either), with the right answer.
    let before = stats(&mut s);
    expect_bypass(&mut s, QUERY, &["1"], &some("one"), "standby");
    expect_bypass(&mut s, QUERY, &["1"], &some("one"), "standby");
    let after = stats(&mut s);
    assert_eq!(
        after.reason("standby") - before.reason("standby"),
        2,
        "before {before:?} after {after:?}"
    );

    // A change replayed from WAL (no executor on the standby) shows at once.
    p.batch_execute("UPDATE t SET v = 'uno' WHERE id = 1").unwrap();
    // The insert position: with synchronous_commit = off the commit record may not be
    // written yet, so pg_current_wal_lsn() can still be before it.
    let lsn: String = p.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).unwrap().get(0);
    let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
    assert!(
        poll_until(TIMEOUT, || scalar_bool(&mut s, &replayed)),
        "the standby did not replay up to {lsn}; standby log:\n{}",
        standby.log()
    );
    expect_bypass(&mut s, QUERY, &["1"], &some("uno"), "standby");
    expect_bypass(&mut s, QUERY, &["2"], &some("two"), "standby");
    assert_eq!(plain(&mut s, QUERY, 1), some("uno"));

    let mut other = standby.connect();
    ttl_only_serving(&mut s, &mut other, "standby", |s, value| {
        p.execute("UPDATE t SET v = $1 WHERE id = 1", &[&value]).unwrap();
        let lsn: String =
            p.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).unwrap().get(0);
        let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        assert!(
            poll_until(TIMEOUT, || scalar_bool(s, &replayed)),
            "no replay; log:\n{}",
            standby.log()
        );
    });
}

#[test]
fn subscribed_tables_bypass_the_cache_and_follow_the_publisher() {
    let publisher = PgCluster::start_with(ClusterOptions {
        settings: vec![("wal_level", "logical".into())],
        ..Default::default()
    });
    let mut p = publisher.connect();
    p.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, 'one'), (2, 'two');
         CREATE PUBLICATION p FOR TABLE t;",
    )
    .unwrap();

    let (subscriber, mut s) = PgCluster::with_extension(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u VALUES (1, 'local');",
    );

    // Another session caches t (still empty and local) before the subscription exists: its
    // entry and remembered analysis must not outlive the subscription.
    let mut early = subscriber.connect();
    expect_cached(&mut early, QUERY, &["1"], &[], false);
    expect_cached(&mut early, QUERY, &["1"], &[], true);

    s.batch_execute(&format!(
        "CREATE SUBSCRIPTION s CONNECTION '{}' PUBLICATION p",
        publisher.dsn()
    ))
    .unwrap();
    let synced = "SELECT count(*) = 1 AND bool_and(srsubstate = 'r') FROM pg_subscription_rel";
    assert!(
        poll_until(TIMEOUT, || scalar_bool(&mut s, synced)),
        "initial sync did not finish; subscriber log:\n{}\npublisher log:\n{}",
        subscriber.log(),
        publisher.log()
    );
    assert_eq!(plain(&mut s, QUERY, 1), some("one"));

    let before = stats(&mut s);
    expect_bypass(&mut s, QUERY, &["1"], &some("one"), "logical_replication_subscriber");
    expect_bypass(&mut s, QUERY, &["1"], &some("one"), "logical_replication_subscriber");
    let after = stats(&mut s);
    assert_eq!(
        after.reason("logical_replication_subscriber")
            - before.reason("logical_replication_subscriber"),
        2,
        "before {before:?} after {after:?}"
    );
    // The session that cached t before the subscription sees the synced row too.
    expect_bypass(&mut early, QUERY, &["1"], &some("one"), "logical_replication_subscriber");
    // A query that also reads the subscribed table bypasses as well.
    let join = "select u.v || '/' || t.v from u join t using (id) where id = $1";
    expect_bypass(&mut s, join, &["1"], &some("local/one"), "logical_replication_subscriber");

    // A table the subscription does not touch is still cached.
    let local = "select v from u where id = $1";
    expect_cached(&mut s, local, &["1"], &some("local"), false);
    expect_cached(&mut s, local, &["1"], &some("local"), true);

    // A change applied by the apply worker (no executor hooks) shows at once.
    p.batch_execute("UPDATE t SET v = 'uno' WHERE id = 1").unwrap();
    assert!(
        poll_until(TIMEOUT, || plain(&mut s, QUERY, 1) == some("uno")),
        "the update did not reach the subscriber; subscriber log:\n{}",
        subscriber.log()
    );
    expect_bypass(&mut s, QUERY, &["1"], &some("uno"), "logical_replication_subscriber");
    expect_bypass(&mut early, QUERY, &["1"], &some("uno"), "logical_replication_subscriber");
    expect_bypass(&mut s, join, &["1"], &some("local/uno"), "logical_replication_subscriber");
    expect_cached(&mut s, local, &["1"], &some("local"), true);

    ttl_only_serving(&mut s, &mut early, "logical_replication_subscriber", |s, value| {
        p.execute("UPDATE t SET v = $1 WHERE id = 1", &[&value]).unwrap();
        assert!(
            poll_until(TIMEOUT, || plain(s, QUERY, 1) == some(value)),
            "no apply; log:\n{}",
            subscriber.log()
        );
    });

    drop(early);
    s.batch_execute("DROP SUBSCRIPTION s").unwrap();
}
