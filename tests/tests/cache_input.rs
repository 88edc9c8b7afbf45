//! pitstop's result cache: its memory bound and evictions, bad input (a clear error that writes
//! nothing), the statements that bypass it and the management functions.

use pitstop_tests::cache_call::{
    cached, expect_cached, expect_cached_with, try_cached, try_cached_json, warm,
};
use pitstop_tests::query::scalar_i64;
use pitstop_tests::{cache_stats as stats, ClusterOptions, PgCluster};
use postgres::error::SqlState;
use postgres::Client;
use std::time::Duration;

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
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);",
    );
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
    let (_cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES (1, 10);",
    );
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
    let (cluster, mut a) = PgCluster::with_extension(
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
