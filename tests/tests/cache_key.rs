//! pitstop's result cache key on a real cluster: the role, the search_path and the settings
//! that change an answer are part of it.

use pitstop_tests::cache_call::{
    cached, cached_json, expect_cached, expect_error, try_cached, try_cached_json, warm,
};
use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;
use postgres::error::SqlState;

// ---- 6. the key: role, search_path, settings -------------------------------------------

#[test]
fn role_is_part_of_the_key() {
    let (cluster, mut admin) = PgCluster::with_extension(
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
    let roles: Vec<String> = first_column(
        &mut admin,
        "SELECT role::text FROM pitstop.cache_entries WHERE query = $1 ORDER BY role",
        &[&q],
    );
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
    let (_cluster, mut a) = PgCluster::with_extension(
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
    let (_cluster, mut a) = PgCluster::with_extension(
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

/// to_json calls the cast to json of each value's type: one that reads a setting would serve
/// one session's answer to another with another setting. While the database has a cast to
/// json that is not IMMUTABLE, statements that make json bypass the cache; others do not.
#[test]
fn a_cast_to_json_that_reads_a_setting_keeps_json_out_of_the_cache() {
    let (cluster, mut admin) = PgCluster::with_extension(
        "CREATE TYPE label AS ENUM ('a');
         CREATE TABLE labels(l label); INSERT INTO labels VALUES ('a');",
    );
    let json = "select l from labels";
    let rows = "select l::text as l from labels";
    let mut one = cluster.connect();
    let mut two = cluster.connect();
    assert_eq!(cached_json(&mut one, json), serde_json::json!([{"l": "a"}]));
    admin
        .batch_execute(
            "CREATE FUNCTION label_json(label) RETURNS json STABLE LANGUAGE sql
                 AS $$ SELECT to_json(current_setting('app.tenant', true)) $$;
             CREATE CAST (label AS json) WITH FUNCTION label_json(label);",
        )
        .unwrap();
    one.batch_execute("SET app.tenant = 'one'").unwrap();
    two.batch_execute("SET app.tenant = 'two'").unwrap();
    assert_eq!(cached_json(&mut one, json), serde_json::json!([{"l": "one"}]));
    assert_eq!(cached_json(&mut two, json), serde_json::json!([{"l": "two"}]));
    assert_eq!(
        cached_json(&mut one, "select to_json(l) as j from labels"),
        serde_json::json!([{"j": "one"}])
    );
    assert_eq!(
        cached_json(&mut two, "select to_json(l) as j from labels"),
        serde_json::json!([{"j": "two"}])
    );
    // A statement that makes no json is still served from the cache.
    warm(&mut one, rows, "l text", &["a"]);
    expect_cached(&mut two, rows, "l text", &["a"], true);
}
