//! Hypothetical indexes across sessions on a real cluster.

use pitstop_tests::PgCluster;

fn explain(client: &mut postgres::Client, sql: &str) -> String {
    client
        .query(&format!("EXPLAIN {sql}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn hypothetical_indexes_are_private_to_their_session_and_die_with_it() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE items(id int, sku text);
         INSERT INTO items SELECT g, 'sku' || g FROM generate_series(1, 100000) g;
         ANALYZE items;",
    );
    let mut b = cluster.connect();
    let query = "SELECT * FROM items WHERE sku = 'sku42'";

    a.query_one("SELECT pitstop.hypo_create('CREATE INDEX ON items (sku)')", &[]).unwrap();
    assert!(explain(&mut a, query).contains("items_sku_hypo"), "{}", explain(&mut a, query));
    assert!(!explain(&mut b, query).contains("items_sku_hypo"));
    let listed: i64 = b.query_one("SELECT count(*) FROM pitstop.hypo_list()", &[]).unwrap().get(0);
    assert_eq!(listed, 0);

    // Executing the query in the session that has the hypothetical index works as usual.
    let found: i64 =
        a.query_one("SELECT count(*) FROM items WHERE sku = 'sku42'", &[]).unwrap().get(0);
    assert_eq!(found, 1);

    drop(a);
    let mut a2 = cluster.connect();
    assert!(!explain(&mut a2, query).contains("items_sku_hypo"));
}

#[test]
fn hypothetical_indexes_work_without_preload() {
    let (_cluster, mut client) = PgCluster::with_pitstop(
        pitstop_tests::ClusterOptions { preload: vec![], settings: vec![] },
        "CREATE TABLE t(a int); INSERT INTO t SELECT generate_series(1, 50000); ANALYZE t;",
    );
    client.query_one("SELECT pitstop.hypo_create('CREATE INDEX ON t (a)')", &[]).unwrap();
    assert!(explain(&mut client, "SELECT * FROM t WHERE a = 1").contains("t_a_hypo"));
}

/// A workload from pg_stat_statements over real connections: the advice is weighted by calls
/// and net of the write cost, its DDL builds for real (CONCURRENTLY), the planner then uses the
/// index, and the index is not advised again.
#[test]
fn workload_advice_from_real_traffic_builds_and_is_used() {
    let cluster = PgCluster::start();
    let mut setup = cluster.connect();
    setup
        .batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE EXTENSION pitstop;
             CREATE TABLE accounts(id int, email text, plan text);
             INSERT INTO accounts SELECT g, 'user' || g || '@example.com', 'free' FROM generate_series(1, 100000) g;
             CREATE TABLE hot(id int, k int, v text);
             ANALYZE accounts;",
        )
        .unwrap();
    let mut app = cluster.connect();
    app.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    for i in 0..50 {
        app.query(
            "SELECT id, plan FROM accounts WHERE email = $1",
            &[&format!("user{i}@example.com")],
        )
        .unwrap();
    }
    // The workload loads 200 000 rows into hot and reads it once: an index on hot.k would
    // save far less than maintaining it for those inserts costs.
    for batch in 0..20 {
        app.execute("INSERT INTO hot SELECT g, g % 5000, 'v' FROM generate_series($1::int, $1::int + 9999) g", &[&(batch * 10000)])
            .unwrap();
    }
    app.batch_execute("ANALYZE hot").unwrap();
    app.query("SELECT * FROM hot WHERE k = $1", &[&7i32]).unwrap();

    let dsn = cluster.dsn();
    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "indexes"]);
    assert_eq!(code, 0, "{err}");
    let advice: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ddls: Vec<&str> =
        advice.as_array().unwrap().iter().map(|r| r["ddl"].as_str().unwrap()).collect();
    assert!(
        ddls.iter().any(|d| d.starts_with("CREATE INDEX CONCURRENTLY ON public.accounts (email)")),
        "{out}"
    );
    assert!(!ddls.iter().any(|d| d.contains("public.hot")), "write cost must veto: {out}");
    let accounts = advice
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ddl"].as_str().unwrap().contains("accounts"))
        .unwrap();
    let helped = &accounts["helped"][0];
    assert_eq!(helped["calls"].as_f64(), Some(50.0), "{out}");
    assert!(helped["query"].as_str().unwrap().contains("email = $1"));

    // Called often enough, the read saving outweighs the write cost.
    for _ in 0..2000 {
        app.query("SELECT * FROM hot WHERE k = $1", &[&7i32]).unwrap();
    }
    let (_, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "indexes"]);
    assert!(out.contains("public.hot (k"), "{out}{err}");

    // The DDL is valid as given, outside a transaction block.
    let ddl = ddls.iter().find(|d| d.contains("accounts")).unwrap();
    app.batch_execute(ddl).unwrap();
    app.batch_execute("ANALYZE accounts").unwrap();
    let plan: String = app
        .query("EXPLAIN SELECT id, plan FROM accounts WHERE email = 'user7@example.com'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert!(
        plan.contains("using accounts_email") || plan.contains("on accounts_email"),
        "the built index is used: {plan}"
    );
    let (_, out, _) = pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "indexes"]);
    assert!(!out.contains("public.accounts"), "an index that exists is not advised again: {out}");

    // The statements nothing helps are listed with a reason; bad options are clear errors.
    let (code, out, _) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "unhelped"]);
    assert_eq!(code, 0);
    assert!(out.contains("hot"), "{out}");
    // The reset and the CLI's own statements are not the workload unless asked for.
    assert!(!out.contains("pg_stat_statements_reset") && !out.contains("pitstop."), "{out}");
    let (code, out, _) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "report", "unhelped", "--include-self"]);
    assert_eq!(code, 0);
    assert!(out.contains("pg_stat_statements_reset") && out.contains("row_to_json"), "{out}");
    let err =
        pitstop_tests::pitstop_error(&["--dsn", &dsn, "report", "indexes", "--budget-mb", "0"]);
    assert!(err.contains("22023") && err.contains("budget_mb"), "{err}");
}
