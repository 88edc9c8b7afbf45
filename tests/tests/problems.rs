//! `pitstop report problems`: the console overview's list on the command line. A cluster with
//! planted problems (a lookup no index serves, a blocking lock, a table of dead rows), the
//! daemon with the console on; the CLI lists the same problems with the same fixes as
//! `/api/overview`, as JSON and as a table. The console's and the CLI's own statements, slow
//! enough to be captured, are not listed as the workload's slow statements. A statement that
//! lost its index between two windows of snapshots is a `regression` on both.

mod planted;

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{pitstop, poll_until, Daemon, DaemonConfig, PgCluster};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn overview(daemon: &Daemon) -> Value {
    let (code, body) = daemon.get("/api/overview");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn problems(doc: &Value) -> Vec<Value> {
    doc["problems"].as_array().cloned().unwrap_or_default()
}

fn has(problems: &[Value], category: &str, text: &str) -> bool {
    problems.iter().any(|p| {
        p["category"] == category
            && [&p["title"], &p["fix"], &p["evidence"]]
                .iter()
                .any(|v| v.as_str().unwrap_or("").contains(text))
    })
}

/// What must be equal on both: each problem's category, fix and link (titles carry times:
/// "has waited 3 s").
fn fixes(problems: &[Value]) -> BTreeSet<String> {
    problems.iter().map(|p| format!("{} | {} | {}", p["category"], p["fix"], p["link"])).collect()
}

/// `pitstop report problems` against `dsn` with `args`: (exit code, stdout, stderr).
fn report_problems(dsn: &str, args: &[&str]) -> (i32, String, String) {
    pitstop(&[&["--dsn", dsn, "report", "problems"], args].concat())
}

fn report_json(dsn: &str, args: &[&str]) -> Value {
    let (code, out, err) = report_problems(dsn, &[args, &["--json"]].concat());
    assert_eq!(code, 0, "{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON: {e}: {out}"))
}

#[test]
fn the_cli_lists_the_planted_problems_with_the_consoles_fixes() {
    // Statements over 1 ms are captured as slow: the console's background reads (index
    // health, bloat, the index advice) and the CLI's are among them.
    let mut planted = planted::plant(1);
    // The application's own slow statement stays on the list.
    planted.client.batch_execute("SELECT pg_sleep(0.05) AS app_sleep").unwrap();
    planted.block();
    let cluster = &planted.cluster;
    let dsn = cluster.dsn();

    let daemon =
        Daemon::start(&DaemonConfig::new(&dsn, "").set("http", "console = true").toml(), &[]);
    let found = poll_until(Duration::from_secs(90), || {
        let p = problems(&overview(&daemon));
        has(&p, "missing_index", "customer_id")
            && has(&p, "blocking_lock", "on public.held, blocked by pid")
            && has(&p, "vacuum", "churn")
    });
    assert!(
        found,
        "planted problems missing from the overview: {:#}\n{}",
        overview(&daemon),
        daemon.log()
    );

    // The CLI, running the advisor now and reading the daemon's alerts.
    let status_url = format!("http://127.0.0.1:{}/status", daemon.http_port());
    let cli = report_json(&dsn, &["--advice", "--daemon-url", &status_url]);
    let listed = problems(&cli);
    assert!(has(&listed, "missing_index", "CREATE INDEX"), "{cli:#}");
    assert!(has(&listed, "missing_index", "customer_id"), "{cli:#}");
    assert!(
        has(&listed, "blocking_lock", "pg_terminate_backend")
            || has(&listed, "blocking_lock", "pg_cancel_backend"),
        "{cli:#}"
    );
    assert!(has(&listed, "vacuum", "VACUUM") && has(&listed, "vacuum", "churn"), "{cli:#}");
    assert!(
        has(&listed, "slow_statement", "app_sleep"),
        "the application's slow statement: {cli:#}"
    );
    assert_eq!(cli["alerts_included"], true, "{cli:#}");
    let rank = |s: &Value| match s.as_str() {
        Some("critical") => 0,
        Some("warning") => 1,
        _ => 2,
    };
    assert!(
        listed.windows(2).all(|w| rank(&w[0]["severity"]) <= rank(&w[1]["severity"])),
        "most urgent first: {cli:#}"
    );

    // The same problems and fixes as the console's (read again until a lock's wait or a
    // transaction's age does not cross a threshold between the two reads).
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let same = poll_until(Duration::from_secs(60), || {
        let console = fixes(&problems(&overview(&daemon)));
        let cli = fixes(&problems(&report_json(&dsn, &["--advice", "--daemon-url", &status_url])));
        last = (console, cli);
        last.0 == last.1
    });
    assert!(
        same,
        "console and CLI differ:\nconsole only: {:#?}\ncli only: {:#?}",
        last.0.difference(&last.1).collect::<Vec<_>>(),
        last.1.difference(&last.0).collect::<Vec<_>>()
    );

    // pitstop's own statements were captured as slow, and neither list shows them.
    let own = scalar_i64(&mut cluster.connect(), "SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop.suggest_indexes%' OR query LIKE '%pitstop.index_health%'");
    assert!(
        own > 0,
        "the console's and the CLI's reads were not captured: the check below proves nothing"
    );
    for (who, list) in
        [("console", problems(&overview(&daemon))), ("cli", problems(&report_json(&dsn, &[])))]
    {
        let mine: Vec<_> = list
            .iter()
            .filter(|p| {
                p["category"] == "slow_statement"
                    && p["evidence"].as_str().unwrap_or("").contains("pitstop.")
            })
            .collect();
        assert!(mine.is_empty(), "{who} lists pitstop's own statements as slow: {mine:#?}");
    }

    // Without --advice: what the advisor remembered (the CLI's run above, as a superuser).
    let remembered = report_json(&dsn, &[]);
    assert!(has(&problems(&remembered), "missing_index", "customer_id"), "{remembered:#}");
    assert!(
        has(&problems(&remembered), "missing_index", "remembered from pitstop.suggest_indexes"),
        "{remembered:#}"
    );
    assert_eq!(remembered["alerts_included"], false);
    assert!(
        remembered["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("alerts are not included")),
        "{remembered:#}"
    );

    // For people: a table with the fixes whole, and the note; exit status 0.
    let (code, out, err) = report_problems(&dsn, &["--daemon-url", &status_url]);
    assert_eq!(code, 0, "{out}\n{err}");
    for text in ["severity", "evidence", "fix", "CREATE INDEX", "VACUUM", "churn", "held"] {
        assert!(out.contains(text), "{text} missing:\n{out}");
    }
    assert!(out.contains("problems)"), "{out}");

    planted.release();
}

const SETUP: &str = "CREATE EXTENSION pg_stat_statements;
    CREATE TABLE public.t (id int PRIMARY KEY, v int);
    INSERT INTO public.t SELECT g, g FROM generate_series(1, 200000) g;
    ANALYZE public.t;
    SELECT pg_stat_statements_reset()";

const LOOKUP_T: &str = "SELECT v FROM public.t WHERE id = $1";

fn run(app: &mut postgres::Client, calls: i32) {
    for i in 0..calls {
        app.query_opt(LOOKUP_T, &[&(i * 13 + 1)]).unwrap();
    }
}

/// A statement that lost its index between two windows of snapshots (taken by the real
/// snapshot job a second apart) is a regression on the overview and in `report problems`:
/// the windows are the longest the snapshots allow (at most an hour).
#[test]
fn a_statement_that_lost_its_index_is_a_regression_on_the_overview_and_the_cli() {
    let (cluster, mut c) = PgCluster::with_extension(SETUP);
    let mut app = cluster.connect();
    app.batch_execute("SET max_parallel_workers_per_gather = 0").unwrap();
    run(&mut app, 20);
    pitstop_tests::run_snapshot_job(&cluster.dsn());
    std::thread::sleep(Duration::from_millis(1100));
    run(&mut app, 20);
    pitstop_tests::run_snapshot_job(&cluster.dsn());
    std::thread::sleep(Duration::from_millis(1100));
    // From a lookup of microseconds to a sequential scan of 200 000 rows: far over the
    // overview's factor of 2 however loaded the machine.
    c.batch_execute("ALTER TABLE public.t DROP CONSTRAINT t_pkey").unwrap();
    run(&mut app, 25);
    pitstop_tests::run_snapshot_job(&cluster.dsn());
    let t: i64 = c
        .query_one(
            "SELECT queryid FROM pg_stat_statements WHERE query = $1 AND toplevel",
            &[&LOOKUP_T],
        )
        .unwrap()
        .get(0);

    let daemon = Daemon::start(
        &DaemonConfig::new(&cluster.dsn(), "").set("http", "console = true").toml(),
        &[],
    );
    let link = format!("/queries/{t}");
    for (who, doc) in [("console", overview(&daemon)), ("cli", report_json(&cluster.dsn(), &[]))] {
        let list = problems(&doc);
        let found =
            list.iter().find(|p| p["category"] == "regression" && p["link"] == link.as_str());
        let p = found.unwrap_or_else(|| panic!("{who}: no regression of {t}: {doc:#}"));
        let evidence = p["evidence"].as_str().unwrap();
        assert!(
            evidence.contains("calls 20 → 25")
                && evidence.contains("mean ")
                && evidence.contains(" → "),
            "{who}: {p:#}"
        );
        assert!(evidence.contains("public.t"), "{who}: the statement's text: {p:#}");
        assert!(p["fix"].as_str().unwrap().contains("dropped index"), "{who}: {p:#}");
        assert!(doc["unread"].get("regressions").is_none(), "{who}: {doc:#}");
    }
}
