//! pitstop.index_health on a real cluster: each problem is found, and its fix makes it go away.

use pitstop_tests::fixtures::{bloat_big_index, cluster_with_big_index};
use pitstop_tests::PgCluster;

type Row = (String, String, Option<String>, String);

fn health(client: &mut postgres::Client) -> Vec<Row> {
    client
        .query("SELECT problem, table_name, index_name, fix FROM pitstop.index_health", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn has(rows: &[Row], problem: &str, index: Option<&str>) -> bool {
    rows.iter().any(|r| r.0 == problem && r.2.as_deref() == index)
}

#[test]
fn index_health_finds_each_problem_and_its_fix_resolves_it() {
    let (_cluster, mut c) = PgCluster::with_extension(
        "CREATE TABLE parent(id int PRIMARY KEY);
         INSERT INTO parent SELECT generate_series(1, 1000);
         CREATE TABLE child(id int PRIMARY KEY, parent_id int REFERENCES parent, kind int, note text);
         INSERT INTO child SELECT g, 1 + g % 1000, g % 10, 'n' || (g % 7) FROM generate_series(1, 100000) g;
         CREATE TABLE line(order_id int REFERENCES parent, line_no int, PRIMARY KEY (order_id, line_no));
         CREATE INDEX child_kind_idx ON child (kind);
         CREATE INDEX child_kind_dup ON child (kind);
         CREATE INDEX child_kind_note ON child (kind, note);
         ANALYZE;",
    );
    // A failed concurrent build leaves an invalid index behind.
    assert!(c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY child_kind_uniq ON child (kind)")
        .is_err());
    // Use one index, then make the statistics visible.
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off").unwrap();
    c.query("SELECT id FROM child WHERE kind = 3 AND note = 'n1'", &[]).unwrap();
    c.batch_execute(
        "RESET enable_seqscan; RESET enable_bitmapscan; SELECT pg_stat_force_next_flush();",
    )
    .unwrap();
    c.batch_execute("SELECT 1").unwrap();

    let rows = health(&mut c);
    let fk: Vec<_> = rows.iter().filter(|r| r.0 == "missing_fk_index").collect();
    assert_eq!(fk.len(), 1, "the composite primary key of line covers its foreign key: {rows:?}");
    assert_eq!(fk[0].1, "public.child");
    assert_eq!(fk[0].3, "CREATE INDEX CONCURRENTLY ON public.child (parent_id);");
    assert!(has(&rows, "duplicate", Some("public.child_kind_dup")), "{rows:?}");
    assert!(
        !has(&rows, "duplicate", Some("public.child_kind_idx")),
        "the older twin is kept: {rows:?}"
    );
    assert!(has(&rows, "redundant_prefix", Some("public.child_kind_idx")), "{rows:?}");
    assert!(has(&rows, "invalid", Some("public.child_kind_uniq")), "{rows:?}");
    assert!(has(&rows, "unused", Some("public.child_kind_idx")), "{rows:?}");
    assert!(!has(&rows, "unused", Some("public.child_kind_note")), "it was scanned: {rows:?}");
    assert!(
        !rows.iter().any(|r| r.2.as_deref() == Some("public.child_pkey")),
        "primary keys are never flagged: {rows:?}"
    );

    // The fixes are runnable as given and clear their rows.
    c.batch_execute(&fk[0].3).unwrap();
    let dup_fix = rows.iter().find(|r| r.0 == "duplicate").unwrap().3.clone();
    c.batch_execute(&dup_fix).unwrap();
    c.batch_execute("DROP INDEX CONCURRENTLY child_kind_uniq").unwrap();
    let after = health(&mut c);
    assert!(
        !after.iter().any(|r| r.0 == "missing_fk_index" || r.0 == "duplicate" || r.0 == "invalid"),
        "{after:?}"
    );
    let rows_left: i64 = c.query_one("SELECT count(*) FROM child", &[]).unwrap().get(0);
    assert_eq!(rows_left, 100_000);
}

#[test]
fn bloat_is_estimated_from_statistics_and_reindex_clears_it() {
    let (_cluster, mut c) = cluster_with_big_index(300_000);
    assert!(
        !has(&health(&mut c), "bloated", Some("public.big_id_idx")),
        "a fresh index is not bloated"
    );
    bloat_big_index(&mut c);
    let rows = health(&mut c);
    let bloat =
        rows.iter().find(|r| r.0 == "bloated" && r.2.as_deref() == Some("public.big_id_idx"));
    let fix = bloat.unwrap_or_else(|| panic!("no bloat row: {rows:?}")).3.clone();
    assert_eq!(fix, "REINDEX INDEX CONCURRENTLY public.big_id_idx;");
    c.batch_execute(&fix).unwrap();
    c.batch_execute("ANALYZE big").unwrap();
    assert!(!has(&health(&mut c), "bloated", Some("public.big_id_idx")));

    let err = c.query("SELECT * FROM pitstop.index_health(-1)", &[]).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22023");
    let err = c.query("SELECT * FROM pitstop.index_health(NULL)", &[]).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22004");
}

/// `report index-health` leaves pitstop's own history indexes out unless `--include-self`, and
/// `--with-advice` points a foreign key at the advisor's index that serves it (issue 15's demo
/// advised `orders (customer_id, created_at DESC) INCLUDE …` and, separately, `orders (customer_id)`).
#[test]
fn the_cli_leaves_pitstop_out_and_points_a_foreign_key_at_the_advice() {
    let cluster = PgCluster::start();
    let mut c = cluster.connect();
    c.batch_execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE EXTENSION pitstop;
         CREATE TABLE parent(id int PRIMARY KEY);
         INSERT INTO parent SELECT generate_series(1, 20000);
         CREATE TABLE child(id int PRIMARY KEY, parent_id int REFERENCES parent, at timestamptz, total int);
         INSERT INTO child SELECT g, 1 + g % 20000, now() - g * interval '1 minute', g % 500 FROM generate_series(1, 200000) g;
         ANALYZE parent, child;
         SELECT pg_stat_statements_reset();",
    )
    .unwrap();
    for parent in 1..=30 {
        c.query(
            "SELECT id, total FROM child WHERE parent_id = $1 ORDER BY at DESC LIMIT 10",
            &[&parent],
        )
        .unwrap();
    }
    let dsn = cluster.dsn();
    let fk_fix = |args: &[&str]| -> String {
        let (code, out, err) = pitstop_tests::pitstop(
            &[&["--dsn", dsn.as_str(), "--json", "report", "index-health"][..], args].concat(),
        );
        assert_eq!(code, 0, "{err}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert!(
            !rows.iter().any(|r| r["table_name"].as_str().unwrap().starts_with("pitstop."))
                || args.contains(&"--include-self"),
            "{out}"
        );
        let fk = rows
            .iter()
            .find(|r| r["problem"] == "missing_fk_index")
            .unwrap_or_else(|| panic!("{out}"));
        fk["fix"].as_str().unwrap().to_string()
    };
    assert_eq!(fk_fix(&[]), "CREATE INDEX CONCURRENTLY ON public.child (parent_id);");
    let pointed = fk_fix(&["--with-advice"]);
    assert!(
        pointed.starts_with(
            "-- served by suggest_indexes #1: CREATE INDEX CONCURRENTLY ON public.child (parent_id"
        ),
        "{pointed}"
    );
    let (code, out, err) = pitstop_tests::pitstop(&[
        "--dsn",
        &dsn,
        "--json",
        "report",
        "index-health",
        "--include-self",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pitstop.host_metrics"), "pitstop's own unused indexes: {out}");
}
