//! Slow-query insight end to end: a real cluster with pitstop preloaded, real sessions,
//! and the `pitstop` CLI reading the results.

use pitstop_tests::{pitstop, pitstop_error, ClusterOptions, PgCluster};
use postgres::Client;
use serde_json::Value;
use std::time::Duration;

/// A cluster capturing statements slower than `ms`, with pg_stat_statements, and a new session
/// on it (not the one that ran the set-up).
fn cluster_with_threshold(ms: u32) -> (PgCluster, Client) {
    let options = ClusterOptions {
        settings: vec![("pitstop.slow_query_ms", ms.to_string())],
        ..Default::default()
    };
    let cluster = PgCluster::with_pitstop(options, "CREATE EXTENSION pg_stat_statements").0;
    let client = cluster.connect();
    (cluster, client)
}

fn slow_queries_json(cluster: &PgCluster) -> Vec<Value> {
    let (code, stdout, stderr) =
        pitstop(&["report", "slow-queries", "--json", "--plans", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0, "stderr: {stderr}");
    serde_json::from_str::<Vec<Value>>(&stdout).expect("JSON array")
}

#[test]
fn top_level_slow_statement_appears_in_the_cli_report() {
    let (cluster, mut client) = cluster_with_threshold(150);
    client.batch_execute("SELECT pg_sleep(0.3); SELECT 1;").unwrap();
    client.simple_query("SELECT pg_sleep(0.01)").unwrap();

    let rows = slow_queries_json(&cluster);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["query"], "SELECT pg_sleep(0.3)");
    assert!(row["duration_ms"].as_f64().unwrap() >= 300.0);
    assert_eq!(row["username"], "postgres");
    assert_eq!(row["database"], "postgres");
    assert_eq!(row["plan"]["Plan"]["Node Type"], "Result");
    assert_ne!(row["queryid"], Value::Null);

    let (code, table, _) = pitstop(&["report", "slow-queries", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0);
    assert!(table.contains("SELECT pg_sleep(0.3)") && table.contains("(1 row)"), "{table}");
}

#[test]
fn threshold_set_with_alter_system_applies_after_reload() {
    let (cluster, mut admin) = cluster_with_threshold(10_000);
    admin.simple_query("SELECT pg_sleep(0.2)").unwrap();
    admin.simple_query("ALTER SYSTEM SET pitstop.slow_query_ms = 100").unwrap();
    admin.simple_query("SELECT pg_reload_conf()").unwrap();
    // The reload is asynchronous: wait until new sessions see the new threshold.
    let mut client = cluster.connect();
    for _ in 0..100 {
        let shown: String = client.query_one("SHOW pitstop.slow_query_ms", &[]).unwrap().get(0);
        if shown == "100ms" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        client = cluster.connect();
    }
    client.simple_query("SELECT pitstop.slow_queries_reset()").unwrap();
    client.simple_query("SELECT pg_sleep(0.2) /* after reload */").unwrap();
    let rows = slow_queries_json(&cluster);
    let queries: Vec<_> = rows.iter().map(|r| r["query"].as_str().unwrap().to_string()).collect();
    assert_eq!(queries, ["SELECT pg_sleep(0.2) /* after reload */"]);
}

#[test]
fn capture_of_many_concurrent_sessions_is_bounded_by_the_ring() {
    let options = ClusterOptions {
        settings: vec![
            ("pitstop.slow_query_ms", "0".into()),
            ("pitstop.slow_query_buffer", "10".into()),
        ],
        ..Default::default()
    };
    let (cluster, _) = PgCluster::with_pitstop(options, "");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut c = cluster.connect();
                for i in 0..200 {
                    c.simple_query(&format!("SELECT {i}")).unwrap();
                }
            });
        }
    });
    let mut client = cluster.connect();
    let row = client
        .query_one(
            "SELECT captured, entries, capacity, capture_failures FROM pitstop.slow_query_stats()",
            &[],
        )
        .unwrap();
    let (captured, entries, capacity, failures): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(captured >= 800, "captured {captured}");
    assert_eq!((entries, capacity, failures), (10, 10, 0));
}

#[test]
fn cli_errors_carry_sqlstate_detail_and_hint() {
    let (cluster, _) = PgCluster::with_extension("");
    let stderr = pitstop_error(&["report", "top-queries", "--dsn", &cluster.dsn()]);
    assert!(
        stderr.contains("pg_stat_statements is not installed") && stderr.contains("55000"),
        "{stderr}"
    );
    assert!(
        stderr.contains("HINT:  Add pg_stat_statements to shared_preload_libraries"),
        "{stderr}"
    );

    cluster.connect().batch_execute("CREATE EXTENSION pg_stat_statements").unwrap();
    let stderr =
        pitstop_error(&["report", "top-queries", "--sort", "fastest", "--dsn", &cluster.dsn()]);
    assert!(
        stderr.contains("unknown sort key \"fastest\"") && stderr.contains("22023"),
        "{stderr}"
    );
    assert!(stderr.contains("DETAIL:  Valid sort keys are: total_time, mean_time"), "{stderr}");

    // Only the CLI's own statements so far: left out unless --include-self.
    let (code, stdout, stderr) =
        pitstop(&["report", "top-queries", "--sort", "calls", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("no statements") && stdout.contains("--include-self"), "{stdout}");
    let (code, stdout, stderr) =
        pitstop(&["--json", "report", "top-queries", "--include-self", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("pitstop.top_queries") && stdout.contains("CREATE EXTENSION pitstop"),
        "{stdout}"
    );
    cluster.connect().batch_execute("SELECT 42").unwrap();
    let (code, stdout, stderr) =
        pitstop(&["report", "top-queries", "--sort", "calls", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("calls") && stdout.contains("SELECT $1") && !stdout.contains("pitstop."),
        "{stdout}"
    );

    let stderr = pitstop_error(&[
        "report",
        "slow-queries",
        "--dsn",
        "host=127.0.0.1 port=1 user=x connect_timeout=2",
    ]);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
}

#[test]
fn without_preload_capture_functions_say_how_to_enable_it() {
    let (_cluster, mut client) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], settings: vec![] }, "");
    let err = client.query("SELECT * FROM pitstop.slow_queries", &[]).unwrap_err();
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "55000");
    assert!(db.hint().unwrap().contains("shared_preload_libraries"));
    // Functions that do not need the preload keep working.
    let n = client.query("SELECT * FROM pitstop.explain_advice('SELECT 1')", &[]).unwrap().len();
    assert_eq!(n, 0);
}

#[test]
fn blocking_locks_and_long_running_show_a_real_wait() {
    let (cluster, mut admin) = PgCluster::with_extension(
        "CREATE TABLE accounts(id int primary key, balance int); INSERT INTO accounts VALUES (1, 100);",
    );
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; UPDATE accounts SET balance = balance - 1 WHERE id = 1;").unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

    let dsn = cluster.dsn();
    let waiter = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        c.batch_execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1").unwrap();
        pid
    });
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = admin.query("SELECT blocked_pid, blocking_pid, lock_mode, blocked_query FROM pitstop.blocking_locks", &[]).unwrap();
        if !rows.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(1), holder_pid);
    assert_eq!(rows[0].get::<_, String>(2), "ShareLock");
    assert!(rows[0].get::<_, String>(3).contains("balance + 1"));
    let long: i64 = admin
        .query_one("SELECT count(*) FROM pitstop.long_running('0') WHERE pid = $1", &[&holder_pid])
        .unwrap()
        .get(0);
    assert_eq!(long, 1, "the holder's open transaction is long-running");

    let (code, table, _) = pitstop(&["report", "locks", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0);
    assert!(table.contains(&holder_pid.to_string()), "{table}");

    let (code, table, _) =
        pitstop(&["report", "long-running", "--min-duration", "0", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0);
    assert!(table.contains("balance + 1"), "{table}");
    let stderr = pitstop_error(&[
        "report",
        "long-running",
        "--min-duration",
        "soon",
        "--dsn",
        &cluster.dsn(),
    ]);
    assert!(stderr.contains("invalid input syntax for type interval"), "{stderr}");

    holder.batch_execute("COMMIT").unwrap();
    let waiter_pid = waiter.join().unwrap();
    assert_ne!(waiter_pid, holder_pid);
    let balance: i32 = admin.query_one("SELECT balance FROM accounts", &[]).unwrap().get(0);
    assert_eq!(balance, 100);
}

#[test]
fn explain_advice_through_the_cli() {
    let (cluster, mut client) = PgCluster::with_extension(
        "CREATE TABLE events(id bigserial primary key, kind text, account int);
             INSERT INTO events(kind, account) SELECT 'k' || (g % 7), g % 20000 FROM generate_series(1, 100000) g;
             ANALYZE events;",
    );
    let (code, stdout, stderr) = pitstop(&[
        "report",
        "advice",
        "SELECT * FROM events WHERE account = 7",
        "--json",
        "--dsn",
        &cluster.dsn(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["finding"], "seq_scan_selective_filter");
    assert_eq!(rows[0]["suggestion"], "CREATE INDEX CONCURRENTLY ON public.events (account);");

    let (code, _, stderr) =
        pitstop(&["report", "advice", "DELETE FROM events", "--analyze", "--dsn", &cluster.dsn()]);
    assert_eq!(code, 0, "{stderr}");
    let left: i64 = client.query_one("SELECT count(*) FROM events", &[]).unwrap().get(0);
    assert_eq!(left, 100_000);
}

/// The hooks keep the executor nesting level without a guard, so an ERROR skips their
/// decrement; the (sub)transaction abort must put it back. Otherwise top-level statements
/// after an error would count as nested (and stop being captured), or nested ones as top-level.
#[test]
fn nesting_level_survives_errors_caught_and_uncaught() {
    let (cluster, mut client) = cluster_with_threshold(0);
    client
        .batch_execute(
            "SET pitstop.capture_nested = off;
             -- Divisions by a column, so the ERROR comes from the executor, not constant folding.
             CREATE TABLE zero(v int); INSERT INTO zero VALUES (0);
             CREATE FUNCTION recovers() RETURNS int LANGUAGE plpgsql AS $$
             BEGIN
                 BEGIN
                     PERFORM 1 / v FROM zero;
                 EXCEPTION WHEN division_by_zero THEN NULL;
                 END;
                 PERFORM 'marker-nested-after-recovery';
                 RETURN 1;
             END $$;",
        )
        .unwrap();
    // An error at nesting level 2 caught inside a top-level query, one caught in a DO block,
    // and one that aborts a top-level statement.
    client.batch_execute("SELECT recovers() AS marker_outer_call").unwrap();
    client.batch_execute("DO $$ BEGIN PERFORM 1 / v FROM zero; EXCEPTION WHEN division_by_zero THEN NULL; END $$").unwrap();
    assert!(client.batch_execute("SELECT 1 / v FROM zero").is_err());
    client
        .batch_execute("BEGIN; SAVEPOINT s; SELECT recovers(); ROLLBACK TO SAVEPOINT s; COMMIT")
        .unwrap();
    client.batch_execute("SELECT 'marker-top-level-after-errors'").unwrap();

    let captured: Vec<String> = slow_queries_json(&cluster)
        .iter()
        .filter_map(|row| row["query"].as_str().map(str::to_string))
        .collect();
    assert!(
        captured.iter().any(|q| q.contains("marker-top-level-after-errors")),
        "top level after errors: {captured:?}"
    );
    assert!(
        captured.iter().any(|q| q.contains("marker_outer_call")),
        "the outer call is top level: {captured:?}"
    );
    assert!(
        !captured.iter().any(|q| q.contains("marker-nested-after-recovery")),
        "a nested statement after a caught error is still nested: {captured:?}"
    );
}

/// The noise filter leaves out pitstop's own statements, never the application's: a
/// PostgREST-shaped statement (pg_catalog.count in every one), a column named pitstop, a
/// comment that says pitstop.x, pitstop.cached and cached_json calls, a table aliased pitstop,
/// a quoted column alias "pitstop.total", and catalogs joined by commas with a table of the
/// application (plain, schema-qualified or quoted) all stay in top_queries and in the
/// advisor's workload; the CLI's own statements, pg_stat_statements_reset(), direct calls of
/// pitstop's functions however quoted and catalog-only statements (one joined by commas, one
/// laid out on lines) do not.
#[test]
fn the_applications_statements_are_never_taken_for_pitstops() {
    let (cluster, mut c) = PgCluster::with_pitstop(
        ClusterOptions::default(),
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE public.laps (id int PRIMARY KEY, driver int, pitstop int);
         INSERT INTO public.laps SELECT g, g % 100, g % 3 FROM generate_series(1, 20000) g;
         ANALYZE public.laps;
         CREATE TABLE public.\"Pit Laps\" (id int PRIMARY KEY, driver int);
         INSERT INTO public.\"Pit Laps\" SELECT g, g % 100 FROM generate_series(1, 20000) g;
         ANALYZE public.\"Pit Laps\";
         CREATE FUNCTION public.do_work() RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE FUNCTION public.do_srf(int) RETURNS TABLE (id int, total int) LANGUAGE sql AS 'SELECT 1, 2';
         CREATE TABLE public.flags (id int, \"is\" int)",
    );
    let mut app = cluster.connect();
    app.batch_execute(
        "SELECT pg_stat_statements_reset();
         SELECT pg_catalog.count(_postgrest_t) AS page_total FROM (SELECT * FROM public.laps WHERE driver = 7) _postgrest_t;
         SELECT laps.pitstop FROM public.laps WHERE driver = 8;
         SELECT count(*) /* pitstop.hide_me */ FROM public.laps WHERE pitstop = 2 AND driver = 9;
         SELECT * FROM pitstop.cached('SELECT max(id) FROM public.laps') AS t(m int);
         SELECT pitstop.cached_json('SELECT min(id) FROM public.laps');
         SELECT pitstop.driver, count(*) FROM laps AS pitstop WHERE pitstop.driver = 7 GROUP BY 1;
         SELECT count(*) AS \"pitstop.total\" FROM laps WHERE driver = 8 AND id > 0;
         SELECT l.* FROM pg_catalog.pg_namespace n, laps l WHERE n.nspname = 'public' AND l.driver = 11;
         SELECT l.id FROM pg_catalog.pg_namespace n, public.laps AS l WHERE n.nspname = 'public' AND l.driver = 12;
         SELECT count(*) FROM pg_catalog.pg_namespace n, \"Pit Laps\" WHERE n.nspname = 'public' AND driver = 13;
         SELECT * FROM \"pitstop\".\"slow_query_stats\"();
         SELECT count(*) FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace AND c.relname = 'laps';
         SELECT count(*) FROM
              pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public';
         SELECT sub14.id FROM (SELECT * FROM public.laps WHERE driver = 14) sub14 JOIN pg_catalog.pg_class c ON c.oid = sub14.id;
         SELECT count(*) FROM ((SELECT 1) a15 CROSS JOIN laps) JOIN pg_catalog.pg_am m ON true WHERE driver = 15;
         SELECT extract(epoch FROM pg_catalog.now()) AS e16 FROM laps WHERE driver = 16;
         SELECT id IS DISTINCT FROM driver AS d17 FROM laps WHERE driver = 17;
         SELECT pg_catalog.int4larger(1, 2) AS u19, 3, 4 UNION ALL TABLE laps;
         SELECT f.id AS m1 FROM (SELECT 7 AS x) p, LATERAL public.do_srf(p.x) f WHERE f.total IS DISTINCT FROM pg_catalog.abs(1);
         SELECT pg_catalog.count(*) AS m2 FROM (SELECT 1) s, ONLY public.laps o WHERE o.driver = 4;
         SELECT pg_catalog.count(*) AS m3 FROM (SELECT public.do_work()) s;
         SELECT pg_catalog.count(*) AS m4 FROM (SELECT o.id FROM\"laps\" o) s;
         SELECT pg_catalog.count(*) AS \"distinct\" FROM laps WHERE driver = 5;
         SELECT pg_catalog.now() AS m6, do_work();
         SELECT pg_catalog.count(*) AS m7 FROM (SELECT 1 AS one) s, (laps o JOIN (VALUES (1), (2)) v(id) ON v.id = o.driver) WHERE o.pitstop = 5;
         SELECT pg_catalog.count(*) AS m8 FROM pg_catalog.pg_class c, (laps o CROSS JOIN pg_catalog.pg_am a);
         SELECT pg_catalog.jsonb_typeof(pitstop.cached_json('SELECT min(id) FROM public.laps')) AS m9;
         SELECT pg_catalog.count(*) AS m10, f.is \"distinct\" FROM public.flags f GROUP BY f.is;
         CREATE INDEX laps_abs20 ON laps (pg_catalog.abs(driver));
         SELECT extract(epoch FROM pg_catalog.now() - a.backend_start) AS own18
           FROM (SELECT * FROM pg_catalog.pg_stat_activity) a WHERE a.state IS DISTINCT FROM 'idle';",
    )
    .unwrap();
    // Past 4 kB a text is not read: the application's, however catalog-only.
    app.batch_execute(&format!("SELECT pg_catalog.now() AS m11 /* {} */", "x".repeat(5_000)))
        .unwrap();
    let dsn = cluster.dsn();
    let (code, out, err) =
        pitstop(&["--json", "report", "top-queries", "--limit", "50", "--dsn", &dsn]);
    assert_eq!(code, 0, "{err}");
    let texts: Vec<String> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap()
        .iter()
        .map(|r| r["query"].as_str().unwrap_or("").to_string())
        .collect();
    // What statements A, B and C of the review look like, and the comma joins' variants.
    let applications = [
        "laps AS pitstop",
        "\"pitstop.total\"",
        "pg_namespace n, laps l",
        "pg_namespace n, public.laps AS l",
        "pg_namespace n, \"Pit Laps\"",
        "sub14",
        "a15 CROSS JOIN laps",
        "AS e16 FROM laps",
        "AS d17 FROM laps",
    ];
    for needle in [
        "_postgrest_t",
        "laps.pitstop",
        "pitstop.hide_me",
        "pitstop.cached(",
        "pitstop.cached_json(",
        "u19",
        "laps_abs20",
        "AS m1",
        "AS m2",
        "AS m3",
        "AS m4",
        "AS \"distinct\" FROM laps",
        "AS m6",
        "AS m7",
        "AS m8",
        "AS m9",
        "AS m10",
        "AS m11",
    ]
    .iter()
    .chain(&applications)
    {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "{needle} left out of top_queries: {texts:#?}"
        );
    }
    for own in [
        "pg_stat_statements_reset",
        "row_to_json",
        "slow_query_stats",
        "pg_class c, pg_catalog.pg_namespace n",
        "pg_catalog.pg_class c\n",
        "own18",
    ] {
        assert!(!texts.iter().any(|t| t.contains(own)), "{own} in top_queries: {texts:#?}");
    }
    let (code, out, err) = pitstop(&[
        "--json",
        "report",
        "top-queries",
        "--limit",
        "50",
        "--include-self",
        "--dsn",
        &dsn,
    ]);
    assert_eq!(code, 0, "{err}");
    for own in [
        "slow_query_stats",
        "pg_class c, pg_catalog.pg_namespace n",
        "pg_catalog.pg_class c\n",
        "own18",
    ] {
        assert!(out.contains(&own.replace('\n', "\\n")), "{own} not recorded: {out}");
    }
    // The advisor plans the application's statements too (an index on driver helps each).
    let workload: Vec<String> = c
        .query("SELECT query FROM pitstop.unhelped_queries() UNION ALL SELECT h->>'query' FROM pitstop.suggest_indexes(), jsonb_array_elements(helped) h", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect();
    for needle in ["_postgrest_t"].iter().chain(&applications) {
        assert!(workload.iter().any(|t| t.contains(needle)), "{needle}: {workload:#?}");
    }
}
