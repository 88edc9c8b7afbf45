//! pitstop's result cache and definitions that change an answer without writing the relations
//! a cached query read: an earlier table on the search_path, a replaced function, lost
//! privileges, sequences, and writes to an inheritance parent.

use pitstop_tests::cache_call::{
    cached, expect_error, invalidation_steps, plain, try_cached, warm,
};
use pitstop_tests::PgCluster;
use postgres::error::SqlState;
use postgres::Client;

// ---- extra: definitions that change an answer without writing the relations read --------

#[test]
fn a_table_created_earlier_on_the_search_path_is_seen() {
    let (cluster, mut a) = PgCluster::with_extension(
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
    let (cluster, mut a) = PgCluster::with_extension(
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

/// `query` (one text column `v`) is refused for lack of privilege, read plainly and cached.
fn expect_denied(c: &mut Client, query: &str, after: &str) {
    let denied = &SqlState::INSUFFICIENT_PRIVILEGE;
    expect_error(c.query(query, &[]), denied, &format!("plain read after {after}"));
    let cached_read = try_cached(c, query, &[], "v text");
    expect_error(cached_read, denied, &format!("cached read after {after}"));
}

/// On a cluster made with `setup`, login role r1 caches `query` (one `v text` row, 's3cr3t');
/// after `revoke` its plain and cached reads are both denied.
fn revoke_stops_cached_reads(setup: &str, query: &str, revoke: &str) {
    let (cluster, mut admin) = PgCluster::with_extension(setup);
    let mut r1 = cluster.connect_as("r1", "postgres");
    warm(&mut r1, query, "v text", &["s3cr3t"]);
    admin.batch_execute(revoke).unwrap();
    expect_denied(&mut r1, query, revoke);
}

#[test]
fn losing_a_privilege_through_role_membership_stops_cached_reads() {
    revoke_stops_cached_reads(
        "CREATE TABLE secret(v text); INSERT INTO secret VALUES ('s3cr3t');
         CREATE ROLE readers; GRANT SELECT ON secret TO readers;
         CREATE ROLE r1 LOGIN IN ROLE readers;
         GRANT USAGE ON SCHEMA pitstop TO r1;",
        "select v from secret",
        "REVOKE readers FROM r1",
    );
}

#[test]
fn losing_usage_on_the_schema_stops_cached_reads() {
    revoke_stops_cached_reads(
        "CREATE SCHEMA vault; CREATE TABLE vault.secret(v text); INSERT INTO vault.secret VALUES ('s3cr3t');
         CREATE ROLE r1 LOGIN;
         GRANT USAGE ON SCHEMA vault, pitstop TO r1; GRANT SELECT ON vault.secret TO r1;",
        "select v from vault.secret",
        "REVOKE USAGE ON SCHEMA vault FROM r1",
    );
}

#[test]
fn sequences_read_by_a_cached_query_are_not_served_stale() {
    let (cluster, mut a) = PgCluster::with_extension("CREATE SEQUENCE s; SELECT nextval('s');");
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
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE animals(name text, legs int);
         CREATE TABLE dogs() INHERITS (animals);
         INSERT INTO dogs VALUES ('rex', 4);",
    );
    // Reading the parent sees the children too (writes to a child invalidate it).
    invalidation_steps(
        &cluster,
        &mut a,
        "select name, legs from animals",
        "name text, legs int",
        &["(rex,4)"],
        &[("UPDATE dogs SET legs = 3", &["(rex,3)"])],
    );
    // An UPDATE through the parent changes the child's rows.
    invalidation_steps(
        &cluster,
        &mut a,
        "select name, legs from dogs",
        "name text, legs int",
        &["(rex,3)"],
        &[("UPDATE animals SET legs = 5", &["(rex,5)"])],
    );
}
