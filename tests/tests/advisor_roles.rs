//! The advisor plans every statement of pg_stat_statements as the role that ran it, in a
//! restricted security context: planning runs functions (constant folding, selectivity
//! estimation), and those must never run with the rights of the DBA who asks for advice.

use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;

/// A cluster with pg_stat_statements and pitstop, `setup` run by the superuser, and the
/// statistics reset so that only what the test runs next is the workload.
fn advisor_cluster(setup: &str) -> (PgCluster, postgres::Client) {
    let cluster = PgCluster::start();
    let mut dba = cluster.connect();
    dba.batch_execute(&format!(
        "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pitstop; {setup}; SELECT pg_stat_statements_reset();"
    ))
    .unwrap();
    (cluster, dba)
}

fn sequence_used(client: &mut postgres::Client, sequence: &str) -> bool {
    client.query_one(&format!("SELECT is_called FROM {sequence}"), &[]).unwrap().get(0)
}

/// Resets pg_stat_statements (what ran before is not the workload), then runs `sql` `times`
/// times in `session`.
fn only_workload(
    dba: &mut postgres::Client,
    session: &mut postgres::Client,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    times: usize,
) {
    dba.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    for _ in 0..times {
        session.query(sql, params).unwrap();
    }
}

/// An advisor cluster where login role `mallory` owns schema `m`: the cluster, the DBA's
/// session and mallory's.
fn mallory_cluster() -> (PgCluster, postgres::Client, postgres::Client) {
    let (cluster, dba) =
        advisor_cluster("CREATE ROLE mallory LOGIN; CREATE SCHEMA m AUTHORIZATION mallory");
    let mallory = cluster.connect_as("mallory", "postgres");
    (cluster, dba, mallory)
}

/// The review's reproduction: an ordinary role's IMMUTABLE function, recorded by
/// pg_stat_statements, would write a file as the `postgres` OS user (COPY … TO PROGRAM) when
/// a superuser asked for index advice. It must run as its owner, who may not do that.
#[test]
fn another_roles_statement_is_planned_with_that_roles_rights() {
    let (cluster, mut dba, mut mallory) = mallory_cluster();
    let marker = cluster.data_dir().join("pwned");
    mallory
        .batch_execute(&format!(
            "CREATE SEQUENCE m.ran_as_someone_else;
             CREATE SEQUENCE m.ran_as_mallory;
             CREATE FUNCTION m.stage2() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
             BEGIN
               IF current_user <> 'mallory' THEN
                 PERFORM nextval('m.ran_as_someone_else');
                 EXECUTE 'COPY (SELECT current_user) TO PROGRAM ''cat > {}''';
               ELSE
                 PERFORM nextval('m.ran_as_mallory');
               END IF;
               RETURN 1;
             END $$;
             CREATE FUNCTION m.evil() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
               $$BEGIN PERFORM m.stage2(); RETURN 1; END$$;
             CREATE TABLE m.items(id int, sku text);
             INSERT INTO m.items SELECT g, 'sku' || g FROM generate_series(1, 20000) g;
             ANALYZE m.items;
             GRANT USAGE ON SCHEMA m TO PUBLIC;",
            marker.display()
        ))
        .unwrap();
    // The data load is not the workload (its 20,000-row INSERT would weigh as writes).
    only_workload(
        &mut dba,
        &mut mallory,
        "SELECT m.evil(), id FROM m.items WHERE sku = $1",
        &[&"sku7"],
        5,
    );
    // Run as mallory, the function only counts (the positive control of this test).
    assert!(sequence_used(&mut mallory, "m.ran_as_mallory"));
    mallory.batch_execute("ALTER SEQUENCE m.ran_as_mallory RESTART").unwrap();
    assert!(!sequence_used(&mut mallory, "m.ran_as_mallory"));

    let advice = dba
        .query("SELECT ddl, helped::text FROM pitstop.suggest_indexes()", &[])
        .unwrap_or_else(|e| panic!("suggest_indexes: {e}\n{}", cluster.log()));
    let unhelped: Vec<String> = first_column(
        &mut dba,
        "SELECT format('%s: %s', query, reason) FROM pitstop.unhelped_queries()",
        &[],
    );

    assert!(!marker.exists(), "a file was written as the postgres OS user");
    assert!(
        !sequence_used(&mut dba, "m.ran_as_someone_else"),
        "mallory's function ran with the DBA's rights"
    );
    assert!(
        sequence_used(&mut dba, "m.ran_as_mallory"),
        "the statement was not planned as mallory (its function never ran)"
    );
    // And the advice is still there: planned as mallory, the statement asks for an index.
    let on_items: Vec<String> =
        advice.iter().map(|r| r.get::<_, String>(1)).filter(|h| h.contains("m.items")).collect();
    assert!(
        advice.iter().any(|r| r.get::<_, String>(0).contains("m.items (sku)")),
        "{advice:?}\nunhelped: {unhelped:#?}"
    );
    assert!(on_items.iter().all(|h| h.contains("\"role\": \"mallory\"")), "{on_items:?}");
}

/// One workload row per (statement, role); each role's statement planned with that role's own
/// search_path (a new session of it would resolve its table names the same way).
#[test]
fn each_role_plans_its_own_statements_with_its_own_search_path() {
    let (cluster, mut dba) = advisor_cluster(
        "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
         CREATE SCHEMA app;
         CREATE TABLE app.orders(id int, customer int, note text);
         INSERT INTO app.orders SELECT g, g % 5000, 'n' FROM generate_series(1, 100000) g;
         ANALYZE app.orders;
         GRANT USAGE ON SCHEMA app TO alice, bob; GRANT SELECT ON app.orders TO alice, bob;
         ALTER ROLE alice SET search_path = app; ALTER ROLE bob SET search_path = app",
    );
    for user in ["alice", "bob"] {
        let mut client = cluster.connect_as(user, "postgres");
        for customer in 0..20 {
            client.query("SELECT id, note FROM orders WHERE customer = $1", &[&customer]).unwrap();
        }
    }
    // The DBA's own search_path has no `app`: planned with it, `orders` would not resolve.
    let rows = dba
        .query(
            "SELECT ddl, queries_helped, (SELECT array_agg(h->>'role' ORDER BY h->>'role') FROM jsonb_array_elements(helped) h)
             FROM pitstop.suggest_indexes()",
            &[],
        )
        .unwrap();
    let on_orders: Vec<(String, i32, Vec<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(ddl, _, _): &(String, i32, Vec<String>)| ddl.contains("app.orders"))
        .collect();
    assert_eq!(on_orders.len(), 1, "{on_orders:?}");
    assert!(on_orders[0].0.contains("(customer"), "{on_orders:?}");
    assert_eq!(on_orders[0].1, 2, "one workload row per role: {on_orders:?}");
    assert_eq!(on_orders[0].2, vec!["alice".to_string(), "bob".to_string()]);
}

/// Who plans whose statements: a role its own, and those of the roles it may SET ROLE to; a
/// superuser everyone's. Reading all statistics (pg_monitor) is not enough: planning runs the
/// statement's functions with its role's rights (the review of the first fix: a pg_monitor
/// member chose the search_path another role's statement was planned under, and read that
/// role's data through its own view). A dropped role's statements are reported, not planned.
#[test]
fn who_may_plan_whose_statements() {
    let (cluster, mut dba) = advisor_cluster(
        "CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
         CREATE ROLE app LOGIN; CREATE ROLE gone LOGIN;
         CREATE TABLE t(id int, k int);
         INSERT INTO t SELECT g, g FROM generate_series(1, 50000) g; ANALYZE t;
         GRANT SELECT ON t TO app, gone, monitor;
         CREATE SEQUENCE superuser_planned;
         CREATE FUNCTION su_mark() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
           $$BEGIN PERFORM nextval('superuser_planned'); RETURN 1; END$$;
         CREATE SEQUENCE app_planned; GRANT USAGE, SELECT ON SEQUENCE app_planned TO PUBLIC;
         CREATE FUNCTION app_mark() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
           $$BEGIN PERFORM nextval('app_planned'); RETURN 1; END$$",
    );
    for _ in 0..3 {
        dba.query("SELECT su_mark(), count(*) FROM public.t", &[]).unwrap();
    }
    for user in ["app", "gone"] {
        let mut client = cluster.connect_as(user, "postgres");
        client
            .query(&format!("SELECT app_mark(), count(*) /* {user} */ FROM public.t"), &[])
            .unwrap();
    }
    dba.batch_execute(
        "ALTER SEQUENCE superuser_planned RESTART; ALTER SEQUENCE app_planned RESTART",
    )
    .unwrap();
    dba.batch_execute("REVOKE SELECT ON t FROM gone; DROP ROLE gone").unwrap();

    let mut monitor = cluster.connect_as("monitor", "postgres");
    let unhelped = |client: &mut postgres::Client| -> Vec<(String, String)> {
        let rows =
            client.query("SELECT reason, query FROM pitstop.unhelped_queries()", &[]).unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let reason_of = |rows: &[(String, String)], needle: &str| -> String {
        rows.iter()
            .find(|(_, q)| q.contains(needle))
            .map(|(r, _)| r.clone())
            .unwrap_or_else(|| panic!("{needle} not listed: {rows:?}"))
    };
    let seen = unhelped(&mut monitor);
    for needle in ["su_mark", "/* app */"] {
        let reason = reason_of(&seen, needle);
        assert!(
            reason.contains(
                "planned only by a superuser, by that role, or by a role that may SET ROLE to it"
            ),
            "{reason}"
        );
    }
    assert!(reason_of(&seen, "/* gone */").contains("no longer exists"));
    assert!(
        !sequence_used(&mut dba, "superuser_planned") && !sequence_used(&mut dba, "app_planned"),
        "monitor planned as another role"
    );

    // Once monitor may SET ROLE app, it plans app's statement (as app), not the superuser's.
    dba.batch_execute("GRANT app TO monitor").unwrap();
    let seen = unhelped(&mut monitor);
    assert!(reason_of(&seen, "/* app */").contains("reads most of public.t"), "{seen:?}");
    assert!(sequence_used(&mut dba, "app_planned"));
    assert!(!sequence_used(&mut dba, "superuser_planned"));

    // A superuser plans everyone's, the superuser's own too.
    dba.query("SELECT * FROM pitstop.unhelped_queries()", &[]).unwrap();
    assert!(sequence_used(&mut dba, "superuser_planned"));
}

/// Another role's statement is planned with that role's search_path and the caller's
/// temporary schema last: a temporary view of the caller's that has the name of the table
/// the statement reads is not what gets planned.
#[test]
fn the_callers_temporary_objects_do_not_shadow_another_roles_tables() {
    let (cluster, mut dba) = advisor_cluster(
        "CREATE ROLE app LOGIN;
         CREATE ROLE monitor LOGIN IN ROLE pg_monitor, app;
         CREATE SCHEMA app AUTHORIZATION app;
         ALTER ROLE app SET search_path = app;
         CREATE SEQUENCE public_mark;
         GRANT USAGE, SELECT ON SEQUENCE public_mark TO PUBLIC",
    );
    let mut app = cluster.connect_as("app", "postgres");
    app.batch_execute(
        "CREATE TABLE orders(id int, customer int);
         INSERT INTO orders SELECT g, g % 1000 FROM generate_series(1, 50000) g;
         ANALYZE orders;",
    )
    .unwrap();
    dba.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    for customer in 0..10 {
        app.query("SELECT id FROM orders WHERE customer = $1", &[&customer]).unwrap();
    }
    let mut monitor = cluster.connect_as("monitor", "postgres");
    monitor
        .batch_execute(
            "CREATE FUNCTION pg_temp.hijack() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
               $$BEGIN PERFORM nextval('public.public_mark'); RETURN 1; END$$;
             CREATE TEMP VIEW orders AS SELECT pg_temp.hijack() AS id, 1 AS customer;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let advice: Vec<String> =
        first_column(&mut monitor, "SELECT ddl FROM pitstop.suggest_indexes()", &[]);
    assert!(
        !sequence_used(&mut monitor, "public.public_mark"),
        "the caller's temporary view was planned"
    );
    assert!(advice.iter().any(|ddl| ddl.contains("app.orders (customer")), "{advice:?}");
    // The caller's own temporary objects are untouched.
    let still: i64 = monitor.query_one("SELECT count(*) FROM pg_temp.orders", &[]).unwrap().get(0);
    assert_eq!(still, 1);
}

/// Planning a statement whose function touches the temporary schema leaves the caller's own
/// temporary tables alone (the first fix hid that schema while planning, and a function that
/// created a pg_temp object then made the caller lose its temporary tables).
#[test]
fn planning_keeps_the_callers_temporary_tables() {
    let (_cluster, mut dba, mut mallory) = mallory_cluster();
    mallory
        .batch_execute(
            "CREATE FUNCTION m.stage2() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
             BEGIN
               IF session_user <> 'mallory' THEN
                 CREATE OR REPLACE FUNCTION pg_temp.zz() RETURNS int LANGUAGE sql AS 'SELECT 1';
               END IF;
               RETURN 1;
             END $$;
             CREATE FUNCTION m.evil() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
               $$BEGIN PERFORM m.stage2(); RETURN 1; END$$;",
        )
        .unwrap();
    for _ in 0..3 {
        mallory.query("SELECT m.evil()", &[]).unwrap();
    }
    dba.batch_execute("CREATE TEMP TABLE keep(x int); INSERT INTO keep VALUES (42)").unwrap();
    dba.query("SELECT * FROM pitstop.unhelped_queries()", &[]).unwrap();
    let kept: i32 = dba
        .query_one("SELECT x FROM keep", &[])
        .unwrap_or_else(|e| panic!("the temporary table is gone: {e}"))
        .get(0);
    assert_eq!(kept, 42);
    dba.batch_execute("CREATE TEMP TABLE other(y int)").unwrap();
    let kept: i64 = dba.query_one("SELECT count(*) FROM keep", &[]).unwrap().get(0);
    assert_eq!(kept, 1, "a later CREATE TEMP TABLE dropped the caller's temporary tables");
}

/// A candidate index that cannot be prepared (the statement's role reaches the table only
/// through a view, in a schema it may not use) is left out; the rest of the advice stands.
/// A statement whose functions plan too long is given up after pitstop.advisor_plan_timeout.
#[test]
fn one_bad_statement_or_candidate_does_not_stop_the_advice() {
    let (cluster, mut dba) = advisor_cluster(
        "CREATE ROLE app LOGIN;
         CREATE SCHEMA private; CREATE SCHEMA api;
         CREATE TABLE private.orders(id int, customer int);
         INSERT INTO private.orders SELECT g, g % 5000 FROM generate_series(1, 100000) g;
         ANALYZE private.orders;
         CREATE VIEW api.orders AS SELECT * FROM private.orders;
         GRANT USAGE ON SCHEMA api TO app; GRANT SELECT ON api.orders TO app;
         CREATE TABLE slow_flag(on_ boolean);
         GRANT SELECT ON slow_flag TO app;
         CREATE FUNCTION slow_when_flagged() RETURNS int LANGUAGE plpgsql IMMUTABLE AS
           $$BEGIN IF EXISTS (SELECT 1 FROM public.slow_flag) THEN PERFORM pg_sleep(60); END IF; RETURN 1; END$$",
    );
    let mut app = cluster.connect_as("app", "postgres");
    for customer in 0..20 {
        app.query("SELECT id FROM api.orders WHERE customer = $1", &[&customer]).unwrap();
    }
    app.query("SELECT slow_when_flagged(), count(*) FROM api.orders", &[]).unwrap();
    dba.batch_execute(
        "INSERT INTO slow_flag VALUES (true); SET pitstop.advisor_plan_timeout = '300ms'",
    )
    .unwrap();

    let started = std::time::Instant::now();
    let advice: Vec<String> =
        first_column(&mut dba, "SELECT ddl FROM pitstop.suggest_indexes()", &[]);
    assert!(advice.iter().any(|ddl| ddl.contains("private.orders (customer")), "{advice:?}");
    let rows = dba
        .query(
            "SELECT reason FROM pitstop.unhelped_queries() WHERE query LIKE '%slow_when_flagged%'",
            &[],
        )
        .unwrap();
    let reason: String = rows.first().expect("the slow statement is listed").get(0);
    assert!(reason.contains("statement timeout"), "{reason}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
}

/// The review of the expression keys: an index on `m.norm(email)` is prepared by folding the
/// expression, which inlines the SQL function and runs the immutable calls in its body. Prepared
/// as the DBA, mallory's function ran as the DBA (mallory had revoked her own EXECUTE right, so
/// her planning never inlined it). Expression keys come from the statement's text: they are
/// prepared as the statement's role.
#[test]
fn an_expression_key_is_prepared_with_the_statements_roles_rights() {
    let (cluster, mut dba, mut mallory) = mallory_cluster();
    let marker = cluster.data_dir().join("pwned-by-expression");
    mallory
        .batch_execute(&format!(
            "CREATE SEQUENCE m.ran_as_someone_else;
             CREATE FUNCTION m.stage2() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
             BEGIN
               PERFORM nextval('m.ran_as_someone_else');
               EXECUTE 'COPY (SELECT current_user) TO PROGRAM ''cat > {}''';
               RETURN 1;
             END $$;
             CREATE FUNCTION m.payload() RETURNS text LANGUAGE plpgsql IMMUTABLE AS
               $$BEGIN IF current_user <> 'mallory' THEN PERFORM m.stage2(); END IF; RETURN ''; END$$;
             CREATE FUNCTION m.norm(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT lower($1) || m.payload()$$;
             CREATE TABLE m.t(id int, email text);
             INSERT INTO m.t SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 20000) g;
             ANALYZE m.t;
             GRANT USAGE ON SCHEMA m TO PUBLIC;",
            marker.display()
        ))
        .unwrap();
    only_workload(&mut dba, &mut mallory, "SELECT id FROM m.t WHERE m.norm(email) = 'x'", &[], 3);
    mallory.batch_execute("REVOKE EXECUTE ON FUNCTION m.norm(text) FROM PUBLIC, mallory").unwrap();

    dba.query("SELECT ddl FROM pitstop.suggest_indexes()", &[])
        .unwrap_or_else(|e| panic!("suggest_indexes: {e}\n{}", cluster.log()));
    assert!(!marker.exists(), "a file was written as the postgres OS user");
    assert!(
        !sequence_used(&mut dba, "m.ran_as_someone_else"),
        "mallory's function ran with the DBA's rights"
    );
}

/// An expression key is printed with the schema of every function outside pg_catalog: the DDL
/// the DBA runs under another search_path calls the function the statement called (the
/// review: deparsed under the statement's path, `norm(email)` would call whatever `norm` the
/// DBA's path finds first, or nothing).
#[test]
fn an_expression_keys_ddl_names_the_functions_schema() {
    let (_cluster, mut dba) = advisor_cluster(
        "CREATE SCHEMA app;
         CREATE FUNCTION app.norm(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$BEGIN RETURN lower(t); END$$;
         CREATE TABLE app.people(id int, email text);
         INSERT INTO app.people SELECT g, 'User' || g || '@example.com' FROM generate_series(1, 20000) g;
         ANALYZE app.people",
    );
    dba.batch_execute("SET search_path = app, public").unwrap();
    let advice: Vec<String> = first_column(&mut dba, "SELECT ddl FROM pitstop.suggest_indexes(ARRAY['SELECT id FROM people WHERE norm(email) = ''user7@example.com'''])", &[]);
    let ddl = advice
        .iter()
        .find(|d| d.contains("norm("))
        .unwrap_or_else(|| panic!("no expression index: {advice:?}"));
    assert!(ddl.contains("app.norm(email)"), "{ddl}");
    // Run by the DBA under the default path, as written.
    dba.batch_execute("RESET search_path").unwrap();
    dba.batch_execute(ddl).unwrap_or_else(|e| panic!("{ddl}: {e}"));
}
