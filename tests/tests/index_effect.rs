//! Did the index help? Advice over pg_stat_statements is remembered, the snapshot job notes the
//! index once it is built, and pitstop.index_effect / index_effects / `pitstop report
//! index-effect` compare the statements it was meant for before and after — on a real cluster
//! with the real snapshot job of the CLI.

use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;
use postgres::error::SqlState;
use postgres::Client;

const SETUP: &str = "CREATE EXTENSION pg_stat_statements;
    CREATE ROLE app LOGIN;
    CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric NOT NULL);
    INSERT INTO public.orders SELECT g, g % 5000, g FROM generate_series(1, 200000) g;
    ANALYZE public.orders;
    GRANT SELECT ON public.orders TO app;
    SELECT pg_stat_statements_reset();
    -- The inserts reach pg_stat_all_tables when this session goes idle, not up to 10 s later,
    -- so they are not counted as writes after the index was built.
    SELECT pg_stat_force_next_flush()";

const LOOKUP: &str = "SELECT sum(total) FROM public.orders WHERE customer_id = $1";

fn workload(app: &mut Client, calls: i32) {
    for i in 0..calls {
        app.query_one(LOOKUP, &[&(i * 7)]).unwrap();
    }
    // Index scan counts reach pg_stat_all_indexes when the session flushes its statistics.
    app.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    app.batch_execute("SELECT 1").unwrap();
}

/// The daemon's snapshot job, once, through the CLI.
fn snapshot(cluster: &PgCluster) {
    pitstop_tests::run_snapshot_job(&cluster.dsn());
}

/// The advice's DDL for orders, remembered by the call.
/// A cluster with SETUP where `app` ran the workload `calls` times and a snapshot was taken:
/// the cluster, the DBA's session, app's session and the advised index's DDL.
fn advised_after(calls: i32) -> (PgCluster, Client, Client, String) {
    advised_after_with(calls, "SELECT 1")
}

/// advised_after with `more` run after SETUP.
fn advised_after_with(calls: i32, more: &str) -> (PgCluster, Client, Client, String) {
    let (cluster, mut c) = PgCluster::with_extension(&format!("{SETUP}; {more}"));
    let mut app = cluster.connect_as("app", "postgres");
    workload(&mut app, calls);
    snapshot(&cluster);
    let ddl = advise(&mut c);
    (cluster, c, app, ddl)
}

fn advise(c: &mut Client) -> String {
    let Some(row) = c
        .query_opt("SELECT ddl FROM pitstop.suggest_indexes() WHERE table_name = 'public.orders' ORDER BY rank LIMIT 1", &[])
        .unwrap()
    else {
        let unhelped: Vec<String> = first_column(c, "SELECT format('%s: %s', query, reason) FROM pitstop.unhelped_queries()", &[]);
        panic!("no index suggested for orders; unhelped: {unhelped:#?}");
    };
    let ddl: String = row.get(0);
    let remembered: i64 = c
        .query_one("SELECT count(*) FROM pitstop.index_suggestions WHERE ddl = $1 AND index_oid IS NULL AND cardinality(queryids) > 0", &[&ddl])
        .unwrap()
        .get(0);
    assert_eq!(remembered, 1, "{ddl} remembered with its statements");
    ddl
}

#[test]
fn an_index_built_on_advice_is_measured_before_and_after() {
    let (cluster, mut c, mut app, ddl) = advised_after(30);
    assert!(ddl.contains("(customer_id"), "{ddl}");
    // Advised again before it is built: still one row, its time moved on.
    advise(&mut c);
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    workload(&mut app, 30);
    snapshot(&cluster);

    let row = c
        .query_one(
            "SELECT e.calls_before, e.mean_ms_before, e.p95_ms_before, e.calls_after, e.mean_ms_after, e.p95_ms_after, e.change_pct
               FROM pitstop.index_suggestions s, pitstop.index_effect(s.index_oid::regclass) e
              WHERE s.ddl = $1 AND e.query LIKE 'SELECT sum(total)%'",
            &[&ddl],
        )
        .unwrap();
    let (calls_before, calls_after): (i64, i64) = (row.get(0), row.get(3));
    assert_eq!((calls_before, calls_after), (30, 30));
    let [mean_before, p95_before, mean_after, p95_after, change]: [f64; 5] =
        [1, 2, 4, 5, 6].map(|i| row.get::<_, f64>(i));
    // A sequential scan of 200,000 rows against an index lookup of 40.
    assert!(mean_after * 3.0 < mean_before, "mean {mean_before} ms -> {mean_after} ms");
    assert!(p95_after * 3.0 < p95_before, "p95 {p95_before} ms -> {p95_after} ms");
    assert!(change < -50.0, "{change} %");

    let summary = c
        .query_one(
            "SELECT statements_measured, verdict, action, index_scans, index_bytes, table_writes_since
               FROM pitstop.index_effects WHERE suggested_ddl = $1",
            &[&ddl],
        )
        .unwrap();
    let (measured, verdict, action): (i64, String, Option<String>) =
        (summary.get(0), summary.get(1), summary.get(2));
    assert_eq!(measured, 1);
    assert!(verdict.starts_with("helped"), "{verdict}");
    assert_eq!(action, None);
    let (scans, bytes, writes): (i64, i64, i64) = (summary.get(3), summary.get(4), summary.get(5));
    assert!(
        scans >= 30 && bytes > 0 && writes == 0,
        "scans {scans}, bytes {bytes}, writes {writes}"
    );

    // The CLI's report shows the same row, for humans and as JSON.
    let dsn = cluster.dsn();
    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "index-effect"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("helped") && out.contains("public.orders"), "{out}");
    let (code, out, err) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "index-effect"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(rows[0]["suggested_ddl"], ddl.as_str(), "{out}");
    // One index's statements: the index named as the user's own session finds it.
    let index: String = c
        .query_one(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'public.orders'::regclass AND NOT indisprimary",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!index.contains('.'), "{index}");
    let (code, out, err) =
        pitstop_tests::pitstop(&["--dsn", &dsn, "report", "index-effect", "--index", &index]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_index_the_statements_do_not_use_is_said_so_with_its_drop() {
    let (cluster, mut c, _app, ddl) = advised_after(10);
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    // Twice the rows: the statements' sequential scans are slower after, whatever the
    // machine's load (faster statements would withhold the DROP).
    c.batch_execute(
        "INSERT INTO public.orders SELECT g, g % 5000, g FROM generate_series(200001, 400000) g",
    )
    .unwrap();
    // The application's sessions cannot use it (as when its planner settings forbid it).
    c.batch_execute(
        "ALTER ROLE app SET enable_indexscan = off; ALTER ROLE app SET enable_bitmapscan = off",
    )
    .unwrap();
    let mut app = cluster.connect_as("app", "postgres");
    workload(&mut app, 10);
    snapshot(&cluster);
    let row = c
        .query_one("SELECT verdict, action, index_name FROM pitstop.index_effects WHERE suggested_ddl = $1", &[&ddl])
        .unwrap();
    let (verdict, action, index): (String, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(verdict, "did not help: never used");
    assert_eq!(action, Some(format!("DROP INDEX CONCURRENTLY {index};")));
    // The action runs as written.
    c.batch_execute(action.as_deref().unwrap()).unwrap();
    let left: i64 = c.query_one("SELECT count(*) FROM pitstop.index_effects", &[]).unwrap().get(0);
    assert_eq!(left, 0, "a dropped index is no longer listed");
}

#[test]
fn advice_is_returned_but_not_remembered_where_the_caller_may_not_write() {
    let (cluster, mut c) = PgCluster::with_extension(&format!("{SETUP}; CREATE ROLE watcher LOGIN IN ROLE pg_monitor, app; GRANT USAGE ON SCHEMA pitstop TO watcher"),
    );
    let mut app = cluster.connect_as("app", "postgres");
    workload(&mut app, 10);
    let remembered = |c: &mut Client| -> i64 {
        c.query_one("SELECT count(*) FROM pitstop.index_suggestions", &[]).unwrap().get(0)
    };

    // A monitoring role (a member of app, so it may plan app's statements): advice, nothing
    // remembered, no error.
    let mut watcher = cluster.connect_as("watcher", "postgres");
    let n = watcher.query("SELECT ddl FROM pitstop.suggest_indexes()", &[]).unwrap().len();
    assert!(n > 0);
    assert_eq!(remembered(&mut c), 0);
    // A read-only transaction, even for a role that may write.
    c.batch_execute("BEGIN READ ONLY").unwrap();
    assert!(!c.query("SELECT ddl FROM pitstop.suggest_indexes()", &[]).unwrap().is_empty());
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(remembered(&mut c), 0);
    // An explicit list of statements has no pg_stat_statements entries to follow.
    let queries = vec!["SELECT sum(total) FROM public.orders WHERE customer_id = 42".to_string()];
    assert!(!c
        .query("SELECT ddl FROM pitstop.suggest_indexes(queries => $1)", &[&queries])
        .unwrap()
        .is_empty());
    assert_eq!(remembered(&mut c), 0);
    // The histograms' quantile function refuses what is not one, with the parameter named.
    let message = |c: &mut Client, sql: &str| {
        let err = c.query_one(sql, &[]).unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
        (db.code().clone(), db.message().to_string())
    };
    let (code, text) = message(&mut c, "SELECT pitstop.latency_quantile('{\"calls\": 1}', 0.5)");
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE);
    assert!(text.contains("\"histogram\" is not a latency histogram"), "{text}");
    let (code, text) = message(&mut c, "SELECT pitstop.latency_quantile('{}', 1.5)");
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE);
    assert!(text.contains("between 0 and 1"), "{text}");
}

/// An append-only event log over 17 days, in time order: about 4,700 pages, above the
/// advisor's BRIN threshold (BRIN_MIN_PAGES), its `at` perfectly correlated.
const LOG_SETUP: &str = "CREATE EXTENSION pg_stat_statements;
    CREATE ROLE app LOGIN;
    CREATE TABLE public.events (id bigint, at timestamp NOT NULL, filler text);
    INSERT INTO public.events SELECT g, timestamp '2024-01-01' + g * interval '10 seconds', repeat('x', 200)
      FROM generate_series(1, 150000) g;
    ANALYZE public.events;
    GRANT SELECT ON public.events TO app;
    SELECT pg_stat_statements_reset();
    SELECT pg_stat_force_next_flush()";

fn one_hour(app: &mut Client, calls: u64) {
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_704_100_000);
    for i in 0..calls {
        let from = start + std::time::Duration::from_secs(3600 * i);
        let to = from + std::time::Duration::from_secs(3600);
        app.query_one(
            "SELECT count(*) FROM public.events WHERE at >= $1 AND at < $2",
            &[&from, &to],
        )
        .unwrap();
    }
    app.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    app.batch_execute("SELECT 1").unwrap();
}

/// The index a suggestion was marked built with, if any.
fn built_as(c: &mut Client, ddl: &str) -> Option<String> {
    c.query_one("SELECT index_name FROM pitstop.index_suggestions WHERE ddl = $1", &[&ddl])
        .unwrap()
        .get(0)
}

#[test]
fn a_brin_built_on_advice_is_followed_and_a_btree_on_its_column_is_not_taken_for_it() {
    let (cluster, mut c) = PgCluster::with_extension(LOG_SETUP);
    let pages: i64 = c
        .query_one(
            "SELECT pg_relation_size('public.events') / current_setting('block_size')::int8",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(pages >= 4096, "{pages} pages: below the advisor's BRIN threshold");
    let mut app = cluster.connect_as("app", "postgres");
    one_hour(&mut app, 10);
    snapshot(&cluster);
    // A btree on at (about 3 MB) does not fit 1 MB; the BRIN does.
    let advice: Vec<String> = first_column(
        &mut c,
        "SELECT ddl FROM pitstop.suggest_indexes(budget_mb => 1) WHERE table_name = 'public.events' ORDER BY rank",
        &[],
    );
    let brin = "CREATE INDEX CONCURRENTLY ON public.events USING brin (at)";
    assert!(advice.iter().any(|d| d == brin), "{advice:?}");
    let am: String = c
        .query_one("SELECT access_method FROM pitstop.index_suggestions WHERE ddl = $1", &[&brin])
        .unwrap()
        .get(0);
    assert_eq!(am, "brin");

    c.batch_execute("CREATE INDEX events_at_btree ON public.events (at)").unwrap();
    snapshot(&cluster);
    assert_eq!(built_as(&mut c, brin), None, "a btree on the column is not the BRIN");
    c.batch_execute("DROP INDEX events_at_btree").unwrap();

    c.batch_execute(brin).unwrap();
    snapshot(&cluster);
    one_hour(&mut app, 10);
    snapshot(&cluster);
    assert_eq!(built_as(&mut c, brin).as_deref(), Some("public.events_at_idx"));
    let row = c
        .query_one(
            "SELECT e.index_name, e.calls_before, e.calls_after
               FROM pitstop.index_suggestions s, pitstop.index_effect(s.index_oid::regclass) e
              WHERE s.ddl = $1 AND e.query LIKE 'SELECT count(*) FROM public.events%'",
            &[&brin],
        )
        .unwrap();
    let (index, before, after): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((index.as_str(), before, after), ("public.events_at_idx", 10, 10));
    let suggested: String = c
        .query_one("SELECT suggested_ddl FROM pitstop.index_effects WHERE index_name = 'public.events_at_idx'", &[])
        .unwrap()
        .get(0);
    assert_eq!(suggested, brin);
}

#[test]
fn an_expression_suggestion_is_followed_by_its_own_ddl_not_by_another_expression() {
    let (cluster, mut c) = PgCluster::with_extension(
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE app LOGIN;
         CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO public.users SELECT g, 'User' || g || '@Example.com' FROM generate_series(1, 100000) g;
         ANALYZE public.users;
         GRANT SELECT ON public.users TO app;
         SELECT pg_stat_statements_reset();
         SELECT pg_stat_force_next_flush()",
    );
    let mut app = cluster.connect_as("app", "postgres");
    for i in 0..10 {
        let email = format!("user{}@example.com", i * 7);
        app.query_one("SELECT count(*) FROM public.users WHERE lower(email) = $1", &[&email])
            .unwrap();
    }
    snapshot(&cluster);
    let advice: Vec<String> = first_column(
        &mut c,
        "SELECT ddl FROM pitstop.suggest_indexes() WHERE table_name = 'public.users' ORDER BY rank",
        &[],
    );
    let ddl = advice
        .iter()
        .find(|d| d.contains("((lower(email)))"))
        .unwrap_or_else(|| panic!("{advice:?}"))
        .clone();
    let expressions = |c: &mut Client| -> Option<Vec<Option<String>>> {
        c.query_one("SELECT key_expressions FROM pitstop.index_suggestions WHERE ddl = $1", &[&ddl])
            .unwrap()
            .get(0)
    };
    assert_eq!(expressions(&mut c), Some(vec![Some("lower(email)".to_string())]));
    // A row remembered by 0.3.0 has no texts; suggested again, it gets them. One remembered
    // before its table was dropped and made again has a stale relid and attnums: they too.
    c.execute(
        "UPDATE pitstop.index_suggestions SET key_expressions = NULL, relid = 0, key_attnums = '{9}'",
        &[],
    )
    .unwrap();
    let again: Vec<String> = first_column(&mut c, "SELECT ddl FROM pitstop.suggest_indexes()", &[]);
    assert!(again.contains(&ddl), "{again:?}");
    assert_eq!(expressions(&mut c), Some(vec![Some("lower(email)".to_string())]));
    let fresh: bool = c
        .query_one(
            "SELECT relid = 'public.users'::regclass AND key_attnums = '{0}'
               FROM pitstop.index_suggestions WHERE ddl = $1",
            &[&ddl],
        )
        .unwrap()
        .get(0);
    assert!(fresh, "the table and keys of the suggestion as they are now");
    c.batch_execute(
        "CREATE INDEX users_upper ON public.users ((upper(email)));
         CREATE INDEX users_md5 ON public.users ((md5(email)));",
    )
    .unwrap();
    snapshot(&cluster);
    assert_eq!(built_as(&mut c, &ddl), None, "another expression on the column is not {ddl}");
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    let built = built_as(&mut c, &ddl).unwrap_or_else(|| panic!("{ddl} not followed"));
    let definition: String =
        c.query_one("SELECT pg_get_indexdef($1::text::regclass)", &[&built]).unwrap().get(0);
    assert!(definition.contains("(lower(email))"), "{built}: {definition}");
}

/// The view's row for `ddl`: (verdict, action, index_scans, index_bytes, table_writes_since).
fn judged(c: &mut Client, ddl: &str) -> (String, Option<String>, i64, i64, i64) {
    let row = c
        .query_one(
            "SELECT verdict, action, index_scans, index_bytes, table_writes_since
               FROM pitstop.index_effects WHERE suggested_ddl = $1",
            &[&ddl],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// An account lookup on a table of two partitions, advised, built and run again by `app`
/// (with index scans allowed or not): the cluster, the DBA's and app's sessions and the DDL.
fn partitioned_built(app_may_use_it: bool) -> (PgCluster, Client, Client, String) {
    let (cluster, mut c) = PgCluster::with_extension(
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE app LOGIN;
         CREATE TABLE public.ev (id bigint, account int, payload text) PARTITION BY RANGE (id);
         CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES FROM (0) TO (100000);
         CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES FROM (100000) TO (200000);
         INSERT INTO public.ev SELECT g, g % 10000, md5(g::text) FROM generate_series(1, 199999) g;
         ANALYZE public.ev;
         GRANT SELECT, INSERT ON public.ev TO app;
         SELECT pg_stat_statements_reset();
         SELECT pg_stat_force_next_flush()",
    );
    let mut app = cluster.connect_as("app", "postgres");
    let lookup = |app: &mut Client| {
        for i in 0..30 {
            app.query_one("SELECT count(*) FROM public.ev WHERE account = $1", &[&(i * 7)])
                .unwrap();
        }
        app.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
        app.batch_execute("SELECT 1").unwrap();
    };
    lookup(&mut app);
    snapshot(&cluster);
    let ddl: String = c
        .query_one("SELECT ddl FROM pitstop.suggest_indexes() WHERE table_name = 'public.ev' ORDER BY rank LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert!(ddl.contains("public.ev (account"), "{ddl}");
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    if !app_may_use_it {
        app.batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off").unwrap();
        // Twice the rows: the sequential scans are slower after, whatever the load.
        c.batch_execute("INSERT INTO public.ev SELECT g, g % 10000, md5(g::text) FROM generate_series(1, 199999) g")
            .unwrap();
    }
    lookup(&mut app);
    snapshot(&cluster);
    (cluster, c, app, ddl)
}

/// The review's reproduction: a partitioned index has no scans or size of its own, so a
/// helpful one was "did not help: never used" with a DROP that PostgreSQL refuses; nor may
/// a statistics reset turn a measured gain into a DROP.
#[test]
fn a_partitioned_index_is_judged_over_its_partitions() {
    let (_cluster, mut c, mut app, ddl) = partitioned_built(true);
    let (verdict, action, scans, bytes, _) = judged(&mut c, &ddl);
    assert!(verdict.starts_with("helped"), "{verdict}");
    assert_eq!(action, None);
    assert!(scans >= 30 && bytes > 0, "scans {scans}, bytes {bytes}");
    // Writes to the partitions are the index's upkeep.
    app.batch_execute(
        "INSERT INTO public.ev SELECT g, 1, 'x' FROM generate_series(1, 5) g; SELECT pg_stat_force_next_flush()",
    )
    .unwrap();
    app.batch_execute("SELECT 1").unwrap();
    let mut writes = 0;
    let flushed = pitstop_tests::poll_until(std::time::Duration::from_secs(30), || {
        writes = judged(&mut c, &ddl).4;
        writes == 5
    });
    assert!(flushed, "table_writes_since {writes}");
    // Scans read 0 after a reset: the measured gain still decides.
    c.batch_execute("SELECT pg_stat_reset()").unwrap();
    let (verdict, action, scans, _, _) = judged(&mut c, &ddl);
    assert_eq!(scans, 0);
    assert!(verdict.starts_with("helped"), "{verdict}");
    assert_eq!(action, None);
}

/// A partitioned index that did not help gets a DROP that runs: no CONCURRENTLY (PostgreSQL
/// refuses it for a partitioned index), and the verdict says it locks the table.
#[test]
fn a_partitioned_index_that_did_not_help_gets_a_drop_that_runs() {
    let (_cluster, mut c, _app, ddl) = partitioned_built(false);
    let (verdict, action, scans, _, _) = judged(&mut c, &ddl);
    assert_eq!(scans, 0);
    assert!(
        verdict.starts_with("did not help: never used") && verdict.contains("locks the table"),
        "{verdict}"
    );
    let index: String = c
        .query_one("SELECT index_name FROM pitstop.index_effects WHERE suggested_ddl = $1", &[&ddl])
        .unwrap()
        .get(0);
    assert_eq!(action, Some(format!("DROP INDEX {index};")));
    c.batch_execute(action.as_deref().unwrap()).unwrap();
    let left: i64 = c.query_one("SELECT count(*) FROM pitstop.index_effects", &[]).unwrap().get(0);
    assert_eq!(left, 0);
}

/// Another role running the statements only after the build (here with index scans off)
/// measured nothing about the index: the verdict is the application's. Its first calls, before
/// the snapshot where its entry first appears, were dropped too; now they would count, so it
/// runs across two snapshots.
#[test]
fn calls_of_a_role_that_did_not_run_the_statements_before_do_not_judge_the_index() {
    let (cluster, mut c, mut app, ddl) = advised_after_with(
        30,
        "CREATE ROLE mallory LOGIN; GRANT SELECT ON public.orders TO mallory",
    );
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    workload(&mut app, 30);
    snapshot(&cluster);
    assert!(judged(&mut c, &ddl).0.starts_with("helped"));
    let mut mallory = cluster.connect_as("mallory", "postgres");
    mallory.batch_execute("SET enable_indexscan = off; SET enable_bitmapscan = off").unwrap();
    workload(&mut mallory, 40);
    snapshot(&cluster);
    workload(&mut mallory, 500);
    snapshot(&cluster);
    let (verdict, action, ..) = judged(&mut c, &ddl);
    assert!(verdict.starts_with("helped"), "{verdict}");
    assert_eq!(action, None);
    let after: i64 = c
        .query_one(
            "SELECT e.calls_after FROM pitstop.index_suggestions s, pitstop.index_effect(s.index_oid::regclass) e
              WHERE s.ddl = $1 AND e.query LIKE 'SELECT sum(total)%'",
            &[&ddl],
        )
        .unwrap()
        .get(0);
    assert_eq!(after, 30, "app's calls alone");
}

/// Below 10 calls on a side no verdict (one call decided it, and a DROP); pitstop's own reindex
/// job (REINDEX INDEX CONCURRENTLY: a new OID under the name) no longer loses the index's row.
#[test]
fn a_verdict_needs_calls_on_both_sides_and_survives_a_reindex() {
    let (cluster, mut c, mut app, ddl) = advised_after(30);
    c.batch_execute(&ddl).unwrap();
    snapshot(&cluster);
    workload(&mut app, 5);
    snapshot(&cluster);
    let (verdict, action, ..) = judged(&mut c, &ddl);
    assert!(verdict.starts_with("too few calls yet"), "{verdict}");
    assert_eq!(action, None);
    workload(&mut app, 25);
    snapshot(&cluster);
    assert!(judged(&mut c, &ddl).0.starts_with("helped"));

    let index: String = c
        .query_one("SELECT index_name FROM pitstop.index_effects WHERE suggested_ddl = $1", &[&ddl])
        .unwrap()
        .get(0);
    c.batch_execute(&format!("REINDEX INDEX CONCURRENTLY {index}")).unwrap();
    snapshot(&cluster);
    let (verdict, action, ..) = judged(&mut c, &ddl);
    assert!(verdict.starts_with("helped"), "{verdict}");
    assert_eq!(action, None);
    let calls: (i64, i64) = {
        let row = c
            .query_one(
                "SELECT calls_before, calls_after FROM pitstop.index_effect($1::text::regclass)",
                &[&index],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(calls, (30, 30));
}
