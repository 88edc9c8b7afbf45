//! What the cache must treat as unstable or as written, on a real cluster: the session user
//! and the connection (not the current role), date/time words that read the clock, COPY
//! FROM's target while the COPY runs, relations created by EXPLAIN ANALYZE, and a COMMIT
//! PREPARED whose backend is terminated while it waits.

use pitstop_tests::cache_call::cached_hit;
use pitstop_tests::{cache_stats as stats, poll_until, ClusterOptions, PgCluster};
use postgres::Client;
use std::io::Write;
use std::time::Duration;

/// A cluster with these settings, `CREATE EXTENSION pitstop` and `setup` done.
fn start(settings: &[(&'static str, &str)], setup: &str) -> (PgCluster, Client) {
    let options = ClusterOptions {
        settings: settings.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..Default::default()
    };
    PgCluster::with_pitstop(options, setup)
}

/// `pitstop.cached(query, params)` of one column `coldef`, each value as text, and whether the
/// call was served from the cache.
fn call(c: &mut Client, query: &str, params: &[&str], coldef: &str) -> (Vec<String>, bool) {
    cached_hit(c, query, params, coldef)
        .unwrap_or_else(|e| panic!("pitstop.cached({query:?}, {params:?}): {e:?}"))
}

/// Asserts that `query` (one column `coldef`) reads the one value `expected`, and whether it
/// was served from the cache (`hit`).
fn expect_one(c: &mut Client, query: &str, coldef: &str, expected: &str, hit: bool) {
    assert_eq!(call(c, query, &[], coldef), (vec![expected.to_string()], hit), "{query}");
}

fn text(c: &mut Client, sql: &str) -> String {
    c.query_one(sql, &[]).unwrap().get(0)
}

// ---- finding 5: the session user and the connection --------------------------------------

#[test]
fn logins_sharing_a_role_never_see_each_others_session_user_results() {
    let (cluster, _admin) = start(
        &[],
        "CREATE ROLE app NOLOGIN; CREATE ROLE alice LOGIN IN ROLE app; CREATE ROLE bob LOGIN IN ROLE app;
         GRANT USAGE ON SCHEMA pitstop TO app;
         CREATE TABLE notes(owner name, body text); INSERT INTO notes VALUES ('alice', 'a1'), ('bob', 'b1');
         CREATE VIEW my_notes AS SELECT body FROM notes WHERE owner = session_user;
         GRANT SELECT ON my_notes TO app;",
    );
    let mut alice = cluster.connect_as("alice", "postgres");
    let mut bob = cluster.connect_as("bob", "postgres");
    for c in [&mut alice, &mut bob] {
        c.batch_execute("SET ROLE app").unwrap();
    }
    let bypassed = stats(&mut alice).reason("stable_function");
    for _ in 0..2 {
        expect_one(&mut alice, "select body from my_notes", "body text", "a1", false);
        expect_one(&mut alice, "select session_user::text", "u text", "alice", false);
    }
    expect_one(&mut bob, "select body from my_notes", "body text", "b1", false);
    expect_one(&mut bob, "select session_user::text", "u text", "bob", false);
    assert_eq!(stats(&mut bob).reason("stable_function"), bypassed + 6);

    // The client's address and port belong to the connection.
    let port = |c: &mut Client| text(c, "SELECT inet_client_port()::text");
    let (alice_port, bob_port) = (port(&mut alice), port(&mut bob));
    assert_ne!(alice_port, bob_port);
    assert_eq!(call(&mut alice, "select inet_client_port()", &[], "p int").0, [alice_port]);
    assert_eq!(call(&mut bob, "select inet_client_port()", &[], "p int"), (vec![bob_port], false));

    // The current role is in the key: still cached, per role.
    assert_eq!(call(&mut alice, "select current_user::text", &[], "u text").0, ["app"]);
    expect_one(&mut bob, "select current_user::text", "u text", "app", true);
}

#[test]
fn names_resolved_through_a_sessions_temporary_schema_are_not_shared() {
    let (cluster, mut a) = start(&[], "CREATE TABLE t(id int);");
    let mut b = cluster.connect();
    // A's temporary t shadows the permanent one; pg_temp.f is another function in each session.
    a.batch_execute("CREATE TEMP TABLE t(id int); CREATE FUNCTION pg_temp.f() RETURNS int IMMUTABLE LANGUAGE sql AS 'select 1'").unwrap();
    b.batch_execute("CREATE FUNCTION pg_temp.f() RETURNS int IMMUTABLE LANGUAGE sql AS 'select 2'")
        .unwrap();
    let bypassed = stats(&mut a).reason("temporary_table");
    for query in [
        "select 't'::regclass::oid::bigint",
        "select pg_temp.f()::bigint",
        "select 'pg_temp.f'::regproc::oid::bigint",
    ] {
        let of = |c: &mut Client| text(c, &format!("SELECT ({query})::text"));
        let (in_a, in_b) = (of(&mut a), of(&mut b));
        assert_ne!(in_a, in_b, "{query}");
        for _ in 0..2 {
            assert_eq!(
                call(&mut a, query, &[], "n bigint").0,
                std::slice::from_ref(&in_a),
                "{query} in A"
            );
            assert_eq!(
                call(&mut b, query, &[], "n bigint").0,
                std::slice::from_ref(&in_b),
                "{query} in B"
            );
        }
    }
    // All but B's 't'::regclass (B's t is the permanent table: cacheable).
    assert_eq!(stats(&mut a).reason("temporary_table"), bypassed + 10);
}

/// A temporary view that shadows a permanent one reads other rows in its session. From
/// PostgreSQL 16 on the rewriter leaves a view in the range table only as a subquery that
/// keeps its OID (the cache fuzzer found a temporary view's rows served to another session on
/// 17, where only tables were checked).
#[test]
fn a_temporary_view_shadowing_a_view_is_never_shared() {
    let (cluster, mut a) = start(
        &[],
        "CREATE TABLE pub(v text); INSERT INTO pub VALUES ('public');
         CREATE TABLE other(v text); INSERT INTO other VALUES ('temporary view');
         CREATE VIEW v AS SELECT v FROM pub;",
    );
    let mut b = cluster.connect();
    a.batch_execute("CREATE TEMP VIEW v AS SELECT v FROM other").unwrap();
    let bypassed = stats(&mut a).reason("temporary_table");
    for _ in 0..2 {
        expect_one(&mut a, "select v from v", "v text", "temporary view", false);
        assert_eq!(
            call(&mut b, "select v from v", &[], "v text").0,
            ["public"],
            "B must never get A's temporary view's rows"
        );
        // Also as a view read inside another view or a subquery.
        assert_eq!(
            call(&mut a, "select v from (select v from v) s union all select 'x'", &[], "v text").0,
            ["temporary view", "x"]
        );
    }
    assert_eq!(stats(&mut a).reason("temporary_table"), bypassed + 4);
    // B's own reads of the permanent view are cached.
    expect_one(&mut b, "select v from v", "v text", "public", true);
}

// ---- finding 6: 'now', 'today', 'tomorrow', 'yesterday' ----------------------------------

#[test]
fn relative_date_and_time_words_are_read_on_every_call() {
    let (_cluster, mut c) = start(
        &[],
        "CREATE TABLE events(at timestamptz, label text, doc jsonb);
         INSERT INTO events VALUES (now() - interval '1 hour', 'today', '{\"d\": \"today\"}'),
                                   (now() - interval '3 days', 'older', '{\"d\": \"2000-01-01\"}');",
    );
    // The review's reproduction: a second later the answer is another one.
    for (query, params) in
        [("select 'now'::timestamptz", &[][..]), ("select $1::timestamptz", &["now"][..])]
    {
        let (first, _) = call(&mut c, query, params, "ts timestamptz");
        std::thread::sleep(Duration::from_millis(1100));
        let (second, hit) = call(&mut c, query, params, "ts timestamptz");
        assert!(!hit, "{query}");
        assert_ne!(first, second, "{query} {params:?} was frozen");
    }

    let relative = |c: &mut Client| stats(c).reason("relative_time");
    let today = text(&mut c, "SELECT current_date::text");
    let before = relative(&mut c);
    for _ in 0..2 {
        assert_eq!(
            call(&mut c, "select $1::date", &["today"], "d date"),
            (vec![today.clone()], false)
        );
    }
    assert_eq!(relative(&mut c), before + 2);

    // Literals the parser turns into a time, and text read as a time when the query runs.
    let cases = [
        ("select count(*) from events where at > 'yesterday'", "n bigint"),
        ("select count(*) from events where at > ' Yesterday  '::timestamptz", "n bigint"),
        ("select (timestamp 'TODAY')::text", "v text"),
        ("select ('{now}'::timestamptz[])[1] > now() - interval '1 hour'", "v bool"),
        ("select '[today,)'::daterange", "v daterange"),
        ("select 'tomorrow'::date - current_date", "v int"),
        ("select x.d from jsonb_to_record('{\"d\": \"today\"}') as x(d date)", "v date"),
        ("select count(*) from events e, jsonb_to_record(e.doc) as x(d date) where x.d > date '2001-01-01'", "n bigint"),
        ("select max(label::date) from events where label = 'today'", "v date"),
        ("select ('tomorrow'::text)::date", "v date"),
    ];
    for (query, coldef) in cases {
        let before = relative(&mut c);
        let name = coldef.split_whitespace().next().unwrap();
        let plain = text(&mut c, &format!("SELECT t.{name}::text FROM ({query}) AS t({name})"));
        for _ in 0..2 {
            assert_eq!(call(&mut c, query, &[], coldef), (vec![plain.clone()], false), "{query}");
        }
        assert_eq!(relative(&mut c), before + 2, "{query}");
    }

    // The same words as plain text, and constant date/time words, stay cached.
    for (query, params, coldef) in [
        ("select count(*) from events where label = 'today'", &[][..], "n bigint"),
        ("select count(*) from events where label = $1", &["today"][..], "n bigint"),
        ("select count(*) from events where label = any($1)", &["{now,today}"][..], "n bigint"),
        ("select 'now'::text", &[][..], "v text"),
        ("select 'epoch'::timestamptz::text || 'infinity'::date::text", &[][..], "v text"),
    ] {
        call(&mut c, query, params, coldef);
        assert!(
            call(&mut c, query, params, coldef).1,
            "{query} {params:?} should be served from the cache"
        );
    }
}

// ---- finding 7: COPY FROM --------------------------------------------------------------

#[test]
fn copy_from_is_a_write_while_its_rows_go_in() {
    let (cluster, mut a) = start(
        &[],
        "CREATE TABLE t(v int);
         CREATE FUNCTION peek() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM * FROM pitstop.cached('select count(*) from t') AS x(n bigint); RETURN NULL; END $$;
         CREATE TRIGGER peek AFTER INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION peek();",
    );
    let mut b = cluster.connect();
    let count = "select count(*) from t";
    let mut tx = a.transaction().unwrap();
    let mut writer = tx.copy_in("COPY t FROM STDIN").unwrap();
    writer.write_all(b"1\n2\n3\n").unwrap();
    assert_eq!(writer.finish().unwrap(), 3);
    // The trigger asked for the count inside the COPY: nothing uncommitted may be stored.
    for _ in 0..2 {
        assert_eq!(call(&mut b, count, &[], "n bigint").0, ["0"], "B saw A's uncommitted COPY");
    }
    tx.rollback().unwrap();
    let plain = text(&mut b, "SELECT count(*)::text FROM t");
    assert_eq!(call(&mut b, count, &[], "n bigint").0, std::slice::from_ref(&plain));
    assert_eq!(call(&mut b, count, &[], "n bigint"), (vec![plain], true));
}

// ---- finding 10: EXPLAIN ANALYZE creating a relation ------------------------------------

#[test]
fn a_relation_created_by_explain_analyze_that_shadows_another_is_seen() {
    let (cluster, mut setup) =
        start(&[], "CREATE SCHEMA a; CREATE SCHEMA b; CREATE TABLE b.t AS SELECT 1 AS v;");
    let mut c = cluster.connect();
    let mut reader = cluster.connect();
    for session in [&mut c, &mut reader] {
        session.batch_execute("SET search_path = a, b").unwrap();
    }
    let query = "select v from t";
    for (create, expected) in [
        ("EXPLAIN ANALYZE CREATE TABLE a.t AS SELECT 2 AS v", "2"),
        ("EXPLAIN (ANALYZE, COSTS OFF) SELECT 3 AS v INTO a.t", "3"),
        ("EXPLAIN (ANALYZE true) CREATE MATERIALIZED VIEW a.t AS SELECT 4 AS v", "4"),
    ] {
        assert_eq!(call(&mut reader, query, &[], "v int").0, ["1"]);
        expect_one(&mut reader, query, "v int", "1", true);
        c.batch_execute(create).unwrap();
        assert_eq!(
            text(&mut reader, "SELECT v::text FROM t"),
            expected,
            "{create} did not shadow b.t"
        );
        assert_eq!(call(&mut reader, query, &[], "v int").0, [expected], "after {create}");
        setup.batch_execute("DROP SCHEMA a CASCADE; CREATE SCHEMA a;").unwrap();
    }
}

// ---- COMMIT PREPARED whose backend is terminated -----------------------------------------

#[test]
fn a_commit_prepared_terminated_while_it_waits_leaves_the_cache_serving() {
    // Synchronous replication to a standby that never comes: a COMMIT PREPARED run with
    // synchronous_commit = on waits (the harness turns it off for everyone else).
    let (cluster, mut a) = start(
        &[("max_prepared_transactions", "5"), ("synchronous_standby_names", "nobody")],
        "CREATE TABLE t(id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10);",
    );
    let query = "select v from t where id = 1";
    call(&mut a, query, &[], "v int");
    expect_one(&mut a, query, "v int", "10", true);
    cluster
        .connect()
        .batch_execute("BEGIN; UPDATE t SET v = 20 WHERE id = 1; PREPARE TRANSACTION 'p';")
        .unwrap();

    let mut committer = cluster.connect();
    let pid: i32 = committer.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    committer.batch_execute("SET synchronous_commit = on").unwrap();
    let waiting = std::thread::spawn(move || committer.batch_execute("COMMIT PREPARED 'p'"));
    let waits = poll_until(Duration::from_secs(20), || {
        a.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'",
            &[&pid],
        )
        .unwrap()
        .get::<_, i64>(0)
            == 1
    });
    assert!(waits, "COMMIT PREPARED did not wait for the standby");
    // While it is under way nothing is served (its writes cannot be attributed).
    assert!(!call(&mut a, query, &[], "v int").1);

    assert!(a.query_one("SELECT pg_terminate_backend($1)", &[&pid]).unwrap().get::<_, bool>(0));
    let _ = waiting.join().unwrap();
    let gone = poll_until(Duration::from_secs(20), || {
        a.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .unwrap()
            .get::<_, i64>(0)
            == 0
    });
    assert!(gone, "the terminated backend did not exit");
    // The commit happened locally; the mark is gone: the new value is cached and served.
    assert_eq!(call(&mut a, query, &[], "v int").0, ["20"]);
    expect_one(&mut a, query, "v int", "20", true);
}
