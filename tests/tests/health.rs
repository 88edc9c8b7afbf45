//! The health SQL on a real cluster: dead tuples show up in vacuum_health and the plan, and the
//! plan's command clears them; reloption thresholds; btree bloat estimated and measured with
//! pgstattuple, cleared by the planned REINDEX; config_advice values that ALTER SYSTEM takes;
//! everything readable by a pg_monitor member who is not a superuser.

use pitstop_tests::fixtures::{bloat_big_index, cluster_with_big_index};
use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;
use std::time::{Duration, Instant};

/// Makes this session's table counters visible (they are flushed after the transaction).
fn flush_stats(c: &mut postgres::Client) {
    c.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    c.batch_execute("SELECT 1").unwrap();
}

/// Polls `query` (one bigint) until `ok` holds, for up to 10 s; returns the last value.
fn wait_for(c: &mut postgres::Client, query: &str, ok: impl Fn(i64) -> bool) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        flush_stats(c);
        let value: i64 = c.query_one(query, &[]).unwrap().get(0);
        if ok(value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (action, relation, index_name, target, command) of each planned action.
type Planned = (String, String, Option<String>, String, String);

fn plan(c: &mut postgres::Client, args: &str) -> Vec<Planned> {
    c.query(
        &format!("SELECT action, relation::text, index_name::text, target, command FROM pitstop.maintenance_plan({args}) ORDER BY priority"),
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

/// A cluster with the extension and `churn`: 20,000 analyzed rows, half deleted, autovacuum
/// off for it.
fn churned_cluster() -> (PgCluster, postgres::Client) {
    PgCluster::with_extension(
        "CREATE TABLE churn(id int PRIMARY KEY, payload text) WITH (autovacuum_enabled = off);
         INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
         ANALYZE churn;
         DELETE FROM churn WHERE id % 2 = 0;",
    )
}

#[test]
fn dead_tuples_are_planned_and_the_planned_vacuum_clears_them() {
    let (_cluster, mut c) = churned_cluster();
    c.batch_execute(
        "CREATE TABLE tuned(id int) WITH (autovacuum_vacuum_threshold = 123, autovacuum_vacuum_scale_factor = 0.01,
                                          autovacuum_analyze_threshold = 77);
         INSERT INTO tuned SELECT generate_series(1, 1000);
         ANALYZE tuned;",
    )
    .unwrap();
    let dead = wait_for(
        &mut c,
        "SELECT n_dead_tup FROM pitstop.vacuum_health WHERE table_name = 'churn'",
        |n| n == 10_000,
    );
    assert_eq!(dead, 10_000);
    let row = c
        .query_one(
            "SELECT status, action, autovacuum_enabled, dead_ratio, vacuum_threshold
               FROM pitstop.vacuum_health WHERE schema = 'public' AND table_name = 'churn'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "vacuum overdue");
    assert_eq!(row.get::<_, String>(1), "VACUUM (ANALYZE) public.churn");
    assert!(!row.get::<_, bool>(2));
    assert_eq!(row.get::<_, f64>(3), 0.5);
    assert_eq!(row.get::<_, i64>(4), 50 + 4000, "50 + 0.2 * 20000 rows");

    // The table's own reloptions drive its thresholds.
    let row = c
        .query_one("SELECT vacuum_threshold, analyze_threshold FROM pitstop.vacuum_health WHERE table_name = 'tuned'", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (123 + 10, 77 + 100));

    let planned = plan(&mut c, "");
    let churn: Vec<&Planned> = planned.iter().filter(|p| p.1 == "churn").collect();
    assert_eq!(churn.len(), 1, "one action per table (the vacuum analyzes too): {planned:?}");
    assert_eq!(churn[0].0, "vacuum");
    assert_eq!(churn[0].3, "public.churn");
    assert_eq!(churn[0].4, "VACUUM (ANALYZE) public.churn");
    // Under a stricter dead-tuple ratio it is not vacuumed, but its 10000 deletions still call for an analyze.
    let strict = plan(&mut c, "vacuum_dead_ratio => 0.6");
    let strict: Vec<&Planned> = strict.iter().filter(|p| p.1 == "churn").collect();
    assert_eq!(strict.len(), 1, "{strict:?}");
    assert_eq!((strict[0].0.as_str(), strict[0].4.as_str()), ("analyze", "ANALYZE public.churn"));

    // Running the planned command removes the dead tuples and the table from the plan.
    c.batch_execute(&churn[0].4.clone()).unwrap();
    let dead = wait_for(
        &mut c,
        "SELECT n_dead_tup FROM pitstop.vacuum_health WHERE table_name = 'churn'",
        |n| n == 0,
    );
    assert_eq!(dead, 0);
    assert!(!plan(&mut c, "").iter().any(|p| p.1 == "churn"), "{:?}", plan(&mut c, ""));
    let row = c
        .query_one(
            "SELECT status, action FROM pitstop.vacuum_health WHERE table_name = 'churn'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "autovacuum disabled");
    assert_eq!(row.get::<_, String>(1), "ALTER TABLE public.churn RESET (autovacuum_enabled)");
    let rows: i64 = c.query_one("SELECT count(*) FROM churn", &[]).unwrap().get(0);
    assert_eq!(rows, 10_000);

    let err =
        c.query("SELECT * FROM pitstop.maintenance_plan(vacuum_dead_ratio => 2)", &[]).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22023");
}

/// (bloat_pct, method, fix) of one relation in table_bloat(exact).
fn bloat_of(
    c: &mut postgres::Client,
    exact: bool,
    table: &str,
    index: Option<&str>,
) -> (f64, String, Option<String>) {
    let row = c
        .query_one(
            "SELECT bloat_pct, method, fix FROM pitstop.table_bloat($1, min_bloat_pct => 0, min_bloat_bytes => 0)
              WHERE table_name = $2 AND index_name IS NOT DISTINCT FROM $3",
            &[&exact, &table, &index],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn bloated_btree_is_estimated_measured_planned_and_reindexed() {
    let (cluster, mut c) = cluster_with_big_index(1_000_000);
    let (fresh_pct, method, fix) = bloat_of(&mut c, false, "big", Some("big_id_idx"));
    assert!(fresh_pct < 15.0, "a fresh index is tight: {fresh_pct}");
    assert_eq!((method.as_str(), fix), ("estimate", None));
    assert!(bloat_of(&mut c, false, "big", None).0 < 5.0);
    assert!(!plan(&mut c, "").iter().any(|p| p.0 == "reindex"));

    bloat_big_index(&mut c);
    let (pct, _, fix) = bloat_of(&mut c, false, "big", Some("big_id_idx"));
    assert!(pct > 60.0, "most of the index is free space: {pct}");
    assert!(fix.unwrap().starts_with("REINDEX INDEX CONCURRENTLY public.big_id_idx"));
    let (table_pct, _, table_fix) = bloat_of(&mut c, false, "big", None);
    assert!(table_pct > 80.0, "{table_pct}");
    let table_fix = table_fix.unwrap();
    assert!(
        table_fix.contains("pg_repack --table=public.big")
            && table_fix.contains("ACCESS EXCLUSIVE"),
        "{table_fix}"
    );

    let planned = plan(&mut c, "");
    let reindex: Vec<&Planned> = planned.iter().filter(|p| p.0 == "reindex").collect();
    assert_eq!(reindex.len(), 1, "{planned:?}");
    assert_eq!(reindex[0].1, "big");
    assert_eq!(reindex[0].2.as_deref(), Some("big_id_idx"));
    assert_eq!(reindex[0].3, "public.big", "the target is the index's table");
    assert_eq!(reindex[0].4, "REINDEX INDEX CONCURRENTLY public.big_id_idx");

    // Another session holding ACCESS EXCLUSIVE locks on the table and the index (an ALTER
    // TABLE, a DROP INDEX in flight) does not make the plan or the estimate wait.
    let mut holder = cluster.connect();
    holder
        .batch_execute("BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE; DROP INDEX big_id_idx;")
        .unwrap();
    c.batch_execute("SET lock_timeout = '2s'").unwrap();
    assert_eq!(
        plan(&mut c, "").iter().filter(|p| p.0 == "reindex").count(),
        1,
        "planned from relpages while locked"
    );
    assert!(bloat_of(&mut c, false, "big", None).0 > 80.0);
    c.batch_execute("RESET lock_timeout").unwrap();
    holder.batch_execute("ROLLBACK").unwrap();

    // Exact mode needs pgstattuple, then agrees with the estimate.
    let err = c.query("SELECT * FROM pitstop.table_bloat(true)", &[]).unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "55000");
    assert!(db.hint().unwrap().contains("CREATE EXTENSION pgstattuple"), "{db:?}");
    c.batch_execute("CREATE EXTENSION pgstattuple").unwrap();
    let (exact_pct, method, _) = bloat_of(&mut c, true, "big", Some("big_id_idx"));
    assert_eq!(method, "pgstattuple");
    assert!((exact_pct - pct).abs() < 15.0, "estimate {pct} vs pgstattuple {exact_pct}");
    let (exact_table_pct, _, _) = bloat_of(&mut c, true, "big", None);
    assert!(
        (exact_table_pct - table_pct).abs() < 10.0,
        "estimate {table_pct} vs pgstattuple {exact_table_pct}"
    );

    // The planned command clears it.
    c.batch_execute(&reindex[0].4.clone()).unwrap();
    c.batch_execute("ANALYZE big").unwrap();
    assert!(bloat_of(&mut c, false, "big", Some("big_id_idx")).0 < 15.0);
    assert!(bloat_of(&mut c, true, "big", Some("big_id_idx")).0 < 15.0);
    assert!(!plan(&mut c, "").iter().any(|p| p.0 == "reindex"));
    let rows: i64 = c.query_one("SELECT count(*) FROM big", &[]).unwrap().get(0);
    assert_eq!(rows, 100_000);
}

#[test]
fn config_advice_values_are_accepted_by_alter_system() {
    let (_cluster, mut c) = PgCluster::with_extension("");
    for workload in ["web", "oltp", "dw", "mixed"] {
        let rows = c
            .query(
                "SELECT name, suggested, restart_required FROM pitstop.config_advice($1)",
                &[&workload],
            )
            .unwrap();
        assert!(rows.len() >= 17, "{workload}: {} rows", rows.len());
        for row in &rows {
            let (name, suggested): (String, String) = (row.get(0), row.get(1));
            c.batch_execute(&format!("ALTER SYSTEM SET {name} = '{suggested}'")).unwrap_or_else(
                |e| panic!("{workload}: ALTER SYSTEM SET {name} = '{suggested}': {e}"),
            );
        }
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
        // Once applied, a reloadable suggestion no longer differs.
        let deadline = Instant::now() + Duration::from_secs(10);
        let still: Vec<String> = loop {
            let still: Vec<String> = first_column(
                &mut c,
                "SELECT name FROM pitstop.config_advice($1) WHERE differs AND NOT restart_required",
                &[&workload],
            );
            if still.is_empty() || Instant::now() > deadline {
                break still;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(still.is_empty(), "{workload}: still differing after reload: {still:?}");
        c.batch_execute("ALTER SYSTEM RESET ALL").unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
    }
    let err = c.query("SELECT * FROM pitstop.config_advice('batch')", &[]).unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "22023");
    assert_eq!(db.hint(), Some("Valid workloads are: web, oltp, dw, mixed."));
}

#[test]
fn a_pg_monitor_member_reads_every_health_view() {
    let (cluster, _c) = PgCluster::with_extension(
        "CREATE EXTENSION pgstattuple;
         CREATE TABLE private_t(id int PRIMARY KEY, note text);
         INSERT INTO private_t SELECT g, 'n' FROM generate_series(1, 1000) g;
         ANALYZE private_t;
         CREATE ROLE watcher LOGIN IN ROLE pg_monitor;",
    );
    let dsn = format!("host=127.0.0.1 port={} user=watcher dbname=postgres", cluster.port);
    let mut w = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
    let superuser: bool = w
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .unwrap()
        .get(0);
    assert!(!superuser);
    let count =
        |w: &mut postgres::Client, sql: &str| -> i64 { w.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        count(&mut w, "SELECT count(*) FROM pitstop.vacuum_health WHERE table_name = 'private_t'"),
        1
    );
    assert!(count(&mut w, "SELECT count(*) FROM pitstop.database_wraparound") >= 3);
    assert_eq!(
        count(&mut w, "SELECT count(*) FROM pitstop.table_bloat WHERE table_name = 'private_t'"),
        0,
        "too small to list"
    );
    assert_eq!(
        count(
            &mut w,
            "SELECT count(*) FROM pitstop.table_bloat(false, 0, 0) WHERE table_name = 'private_t'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut w,
            "SELECT count(*) FROM pitstop.table_bloat(true, 0, 0) WHERE table_name = 'private_t'"
        ),
        2
    );
    count(&mut w, "SELECT count(*) FROM pitstop.maintenance_plan()");
    assert!(count(&mut w, "SELECT count(*) FROM pitstop.config_advice('web')") >= 17);
    // Nothing here lets the monitor change anything.
    assert!(w.batch_execute("SELECT pitstop.slow_queries_reset()").is_err());
}

#[test]
fn the_cli_reports_vacuum_bloat_and_config_advice() {
    let (cluster, mut c) = churned_cluster();
    c.batch_execute(
        "CREATE TABLE calm(id int);
         INSERT INTO calm VALUES (1);
         ANALYZE calm;
         CREATE TABLE appended(id int) WITH (autovacuum_enabled = off);
         INSERT INTO appended SELECT generate_series(1, 3000);
         ANALYZE appended;",
    )
    .unwrap();
    wait_for(
        &mut c,
        "SELECT n_dead_tup FROM pitstop.vacuum_health WHERE table_name = 'churn'",
        |n| n == 10_000,
    );
    wait_for(
        &mut c,
        "SELECT n_ins_since_vacuum FROM pitstop.vacuum_health WHERE table_name = 'appended'",
        |n| n == 3000,
    );
    let dsn = cluster.dsn();

    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "vacuum"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let tables: Vec<&str> = rows.iter().map(|r| r["table_name"].as_str().unwrap()).collect();
    assert_eq!(
        tables,
        ["churn", "appended"],
        "only the tables needing something, not pitstop's own: {out}"
    );
    assert_eq!(rows[0]["status"], "vacuum overdue");
    // The thresholds autovacuum applies: 50 + 0.2 * 20000 dead tuples, 1000 + 0.2 * 3000 inserts.
    assert!(rows[0]["reason"].as_str().unwrap().starts_with("dead tuples 10000 > 4050"), "{out}");
    assert_eq!(
        (&rows[1]["status"], &rows[1]["reason"]),
        (&"vacuum overdue".into(), &"inserts 3000 > 1600".into()),
        "{out}"
    );
    let (_, all, _) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "vacuum", "--all"]);
    assert!(
        all.contains("calm") && all.contains("churn") && !all.contains("query_snapshots"),
        "{all}"
    );
    let (_, all, _) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "report", "vacuum", "--all", "--include-self"]);
    assert!(all.contains("query_snapshots"), "{all}");

    // Bloat lists only what has at least 20 % and 10 MB of it: nothing here.
    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "bloat"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No table or btree index has that much bloat"), "{out}");
    let (code, out, err) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "bloat", "--min-bloat", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"churn\"") && out.contains("estimate") && !out.contains("\"pitstop\""),
        "{out}"
    );
    let (_, out, _) = pitstop_tests::pitstop(&[
        "--dsn",
        &dsn,
        "--json",
        "report",
        "bloat",
        "--min-bloat",
        "0%,0MB",
        "--include-self",
    ]);
    assert!(out.contains("\"pitstop\""), "{out}");
    let (code, _, err) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "report", "bloat", "--min-bloat", "20%"]);
    assert_ne!(code, 0);
    assert!(err.contains("20%,10MB"), "{err}");
    let (code, _, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "bloat", "--exact"]);
    assert_ne!(code, 0);
    assert!(err.contains("pgstattuple") && err.contains("HINT"), "{err}");

    let (code, out, err) = pitstop_tests::pitstop(&[
        "--dsn",
        &dsn,
        "--json",
        "report",
        "config",
        "--workload",
        "oltp",
        "--all",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(
        rows.iter().any(|r| r["name"] == "shared_buffers" && r["restart_required"] == true),
        "{out}"
    );
    let (code, _, err) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "report", "config", "--workload", "batch"]);
    assert_ne!(code, 0);
    assert!(err.contains("web, oltp, dw, mixed"), "{err}");
}
