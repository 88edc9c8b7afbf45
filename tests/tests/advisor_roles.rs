//! The advisor plans every statement of pg_stat_statements as the role that ran it, in a
//! restricted security context: planning runs functions (constant folding, selectivity
//! estimation), and those must never run with the rights of the DBA who asks for advice.

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

/// The review's reproduction: an ordinary role's IMMUTABLE function, recorded by
/// pg_stat_statements, would write a file as the `postgres` OS user (COPY … TO PROGRAM) when
/// a superuser asked for index advice. It must run as its owner, who may not do that.
#[test]
fn another_roles_statement_is_planned_with_that_roles_rights() {
    let (cluster, mut dba) = advisor_cluster("CREATE ROLE mallory LOGIN; CREATE SCHEMA m AUTHORIZATION mallory");
    let marker = cluster.data_dir().join("pwned");
    let mut mallory = cluster.connect_as("mallory", "postgres");
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
    for _ in 0..5 {
        mallory.query("SELECT m.evil(), id FROM m.items WHERE sku = $1", &[&"sku7"]).unwrap();
    }
    // Run as mallory, the function only counts (the positive control of this test).
    assert!(sequence_used(&mut mallory, "m.ran_as_mallory"));
    mallory.batch_execute("ALTER SEQUENCE m.ran_as_mallory RESTART").unwrap();
    assert!(!sequence_used(&mut mallory, "m.ran_as_mallory"));

    let advice = dba
        .query("SELECT ddl, helped::text FROM pitstop.suggest_indexes()", &[])
        .unwrap_or_else(|e| panic!("suggest_indexes: {e}\n{}", cluster.log()));
    dba.query("SELECT * FROM pitstop.unhelped_queries()", &[]).unwrap();

    assert!(!marker.exists(), "a file was written as the postgres OS user");
    assert!(!sequence_used(&mut dba, "m.ran_as_someone_else"), "mallory's function ran with the DBA's rights");
    assert!(sequence_used(&mut dba, "m.ran_as_mallory"), "the statement was not planned as mallory (its function never ran)");
    // And the advice is still there: planned as mallory, the statement asks for an index.
    let on_items: Vec<String> = advice.iter().map(|r| r.get::<_, String>(1)).filter(|h| h.contains("m.items")).collect();
    assert!(advice.iter().any(|r| r.get::<_, String>(0).contains("m.items (sku)")), "{advice:?}");
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

/// A member of pg_read_all_stats (not a superuser) plans other roles' statements as those
/// roles, but never a superuser's; a dropped role's statements are reported, not planned.
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
           $$BEGIN PERFORM nextval('superuser_planned'); RETURN 1; END$$",
    );
    for _ in 0..3 {
        dba.query("SELECT su_mark(), count(*) FROM public.t", &[]).unwrap();
    }
    dba.batch_execute("ALTER SEQUENCE superuser_planned RESTART").unwrap();
    for user in ["app", "gone"] {
        let mut client = cluster.connect_as(user, "postgres");
        client.query(&format!("SELECT count(*) /* {user} */ FROM public.t"), &[]).unwrap();
    }
    dba.batch_execute("DROP ROLE gone").unwrap_err(); // owns nothing but has a grant
    dba.batch_execute("REVOKE SELECT ON t FROM gone; DROP ROLE gone").unwrap();

    let mut monitor = cluster.connect_as("monitor", "postgres");
    let unhelped = monitor.query("SELECT role, reason, query FROM pitstop.unhelped_queries()", &[]).unwrap();
    let reason_of = |needle: &str| -> Option<String> {
        unhelped.iter().find(|r| r.get::<_, String>(2).contains(needle)).map(|r| r.get::<_, String>(1))
    };
    let superuser = reason_of("su_mark").expect("the superuser's statement is listed");
    assert!(superuser.contains("only a superuser"), "{superuser}");
    assert!(!sequence_used(&mut dba, "superuser_planned"), "a non-superuser planned the superuser's statement");
    let gone = reason_of("/* gone */").expect("the dropped role's statement is listed");
    assert!(gone.contains("no longer exists"), "{gone}");
    let app = reason_of("/* app */").expect("app's statement is listed");
    assert!(app.contains("reads most of public.t"), "planned as app: {app}");

    // A superuser plans the superuser's statement (as that superuser).
    dba.query("SELECT * FROM pitstop.unhelped_queries()", &[]).unwrap();
    assert!(sequence_used(&mut dba, "superuser_planned"));
}

/// Another role's statement is planned in that role's environment, not the caller's: a
/// temporary view of the caller's that shadows the table the statement names is out of reach
/// (else the caller's function would run with that role's rights).
#[test]
fn the_callers_temporary_objects_cannot_shadow_another_roles_tables() {
    let (cluster, mut dba) = advisor_cluster(
        "CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
         CREATE ROLE app LOGIN;
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
        monitor.query("SELECT ddl FROM pitstop.suggest_indexes()", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(!sequence_used(&mut monitor, "public.public_mark"), "the caller's temporary view was planned");
    assert!(advice.iter().any(|ddl| ddl.contains("app.orders (customer")), "{advice:?}");
}
