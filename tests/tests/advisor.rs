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
    let cluster = PgCluster::start();
    let mut a = cluster.connect();
    a.batch_execute(
        "CREATE EXTENSION pitstop;
         CREATE TABLE items(id int, sku text);
         INSERT INTO items SELECT g, 'sku' || g FROM generate_series(1, 100000) g;
         ANALYZE items;",
    )
    .unwrap();
    let mut b = cluster.connect();
    let query = "SELECT * FROM items WHERE sku = 'sku42'";

    a.query_one("SELECT pitstop.hypo_create('CREATE INDEX ON items (sku)')", &[]).unwrap();
    assert!(explain(&mut a, query).contains("items_sku_hypo"), "{}", explain(&mut a, query));
    assert!(!explain(&mut b, query).contains("items_sku_hypo"));
    let listed: i64 = b.query_one("SELECT count(*) FROM pitstop.hypo_list()", &[]).unwrap().get(0);
    assert_eq!(listed, 0);

    // Executing the query in the session that has the hypothetical index works as usual.
    let found: i64 = a.query_one("SELECT count(*) FROM items WHERE sku = 'sku42'", &[]).unwrap().get(0);
    assert_eq!(found, 1);

    drop(a);
    let mut a2 = cluster.connect();
    assert!(!explain(&mut a2, query).contains("items_sku_hypo"));
}

#[test]
fn hypothetical_indexes_work_without_preload() {
    let cluster = PgCluster::start_with(pitstop_tests::ClusterOptions { preload: vec![], settings: vec![] });
    let mut client = cluster.connect();
    client
        .batch_execute(
            "CREATE EXTENSION pitstop;
             CREATE TABLE t(a int); INSERT INTO t SELECT generate_series(1, 50000); ANALYZE t;",
        )
        .unwrap();
    client.query_one("SELECT pitstop.hypo_create('CREATE INDEX ON t (a)')", &[]).unwrap();
    assert!(explain(&mut client, "SELECT * FROM t WHERE a = 1").contains("t_a_hypo"));
}
