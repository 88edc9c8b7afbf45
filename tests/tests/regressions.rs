//! Regressions from the snapshots: a statement whose index disappears gets slower between two
//! windows of snapshots taken by the real snapshot job; pitstop.regressions lists it (and not
//! the statement that did not change) and pitstop.query_history shows each window.

use pitstop_tests::{ClusterOptions, PgCluster};
use postgres::error::SqlState;
use postgres::Client;
use std::time::Duration;

const SETUP: &str = "CREATE EXTENSION pg_stat_statements;
    CREATE TABLE public.t (id int PRIMARY KEY, v int);
    CREATE TABLE public.u (id int PRIMARY KEY, v int);
    INSERT INTO public.t SELECT g, g FROM generate_series(1, 200000) g;
    INSERT INTO public.u SELECT g, g FROM generate_series(1, 200000) g;
    ANALYZE public.t, public.u;
    SELECT pg_stat_statements_reset()";

const LOOKUP_T: &str = "SELECT v FROM public.t WHERE id = $1";
// Not a point lookup: a sequential scan of some milliseconds, whose mean does not swing by the
// factor below when a loaded machine delays a few calls (a 20 µs lookup does).
const SCAN_U: &str = "SELECT count(*) FROM public.u WHERE v > $1";

fn run(app: &mut Client, sql: &str, calls: i32) {
    for i in 0..calls {
        app.query_opt(sql, &[&(i * 13 + 1)]).unwrap();
    }
}

fn queryid(c: &mut Client, sql: &str) -> i64 {
    c.query_one("SELECT queryid FROM pg_stat_statements WHERE query = $1 AND toplevel", &[&sql])
        .unwrap()
        .get(0)
}

/// The windows are defined by the snapshots' times: one more than `since` apart.
fn snapshot_then_wait(cluster: &PgCluster) {
    pitstop_tests::run_snapshot_job(&cluster.dsn());
    std::thread::sleep(Duration::from_millis(1100));
}

/// `preloaded`: pitstop in shared_preload_libraries (latency histograms, captured plans).
fn lost_index_scenario(preloaded: bool) {
    let preload =
        if preloaded { vec!["pg_stat_statements", "pitstop"] } else { vec!["pg_stat_statements"] };
    let (cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload, ..Default::default() }, SETUP);
    let mut app = cluster.connect();
    // Parallel workers' start-up times would add noise to the scans' means.
    app.batch_execute("SET max_parallel_workers_per_gather = 0").unwrap();
    run(&mut app, LOOKUP_T, 20);
    run(&mut app, SCAN_U, 20);
    let (t, u) = (queryid(&mut c, LOOKUP_T), queryid(&mut c, SCAN_U));
    snapshot_then_wait(&cluster);
    run(&mut app, LOOKUP_T, 20);
    run(&mut app, SCAN_U, 20);
    snapshot_then_wait(&cluster);
    // t loses its index, and pg_stat_statements is reset in between, after which t runs more
    // often than before: its counters grow past the last snapshot's, and the reset is known
    // only from pg_stat_statements_info.
    c.batch_execute(
        "ALTER TABLE public.t DROP CONSTRAINT t_pkey; SELECT pg_stat_statements_reset()",
    )
    .unwrap();
    run(&mut app, LOOKUP_T, 25);
    run(&mut app, SCAN_U, 25);
    pitstop_tests::run_snapshot_job(&cluster.dsn());

    let rows = c
        .query(
            "SELECT queryid, calls_before, calls_now, mean_factor, p95_factor, captured_plan IS NOT NULL
               FROM pitstop.regressions('1 second', 10, 20)",
            &[],
        )
        .unwrap();
    let listed: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(listed, vec![t], "only the statement that lost its index (t {t}, u {u})");
    let r = &rows[0];
    let (calls_before, calls_now): (i64, i64) = (r.get(1), r.get(2));
    assert_eq!(
        (calls_before, calls_now),
        (20, 25),
        "the reset is recognised: the later counters alone"
    );
    let mean_factor: f64 = r.get(3);
    assert!(mean_factor > 20.0, "mean ×{mean_factor}");
    let p95_factor: Option<f64> = r.get(4);
    assert_eq!(p95_factor.is_some(), preloaded, "p95 needs the histograms of the preload");
    assert!(p95_factor.is_none_or(|f| f > 20.0), "p95 ×{p95_factor:?}");
    // Statements of 0.1 ms to 5 ms are under pitstop.slow_query_ms: no plan was captured.
    assert!(!r.get::<_, bool>(5));

    // Its history: one row per window, calls and the slowdown in each.
    let history =
        c.query("SELECT calls, mean_ms, p95_ms FROM pitstop.query_history($1)", &[&t]).unwrap();
    let calls: Vec<i64> = history.iter().map(|r| r.get(0)).collect();
    assert_eq!(calls, vec![20, 25]);
    let (mean1, mean2): (f64, f64) = (history[0].get(1), history[1].get(1));
    assert!(mean2 > 5.0 * mean1, "{mean1} ms then {mean2} ms");
    assert!(
        history.iter().all(|r| r.get::<_, Option<f64>>(2).is_some() == preloaded),
        "p95 from the histograms"
    );

    // Not two windows long enough: nothing to compare, no error.
    assert!(c.query("SELECT * FROM pitstop.regressions('1 hour')", &[]).unwrap().is_empty());
}

#[test]
fn a_statement_that_lost_its_index_is_a_regression_with_its_history() {
    lost_index_scenario(true);
}

#[test]
fn regressions_work_without_the_preload() {
    lost_index_scenario(false);
}

#[test]
fn regressions_refuse_bad_arguments() {
    let (_cluster, mut c) = PgCluster::with_extension(SETUP);
    for sql in [
        "SELECT * FROM pitstop.regressions('0 seconds')",
        "SELECT * FROM pitstop.regressions('-1 hour')",
        "SELECT * FROM pitstop.regressions(NULL)",
        "SELECT * FROM pitstop.regressions('1 hour', 0)",
        "SELECT * FROM pitstop.regressions('1 hour', 10, 0)",
        "SELECT * FROM pitstop.regressions('1 hour', 10, 'NaN')",
    ] {
        let err = c.query(sql, &[]).unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INVALID_PARAMETER_VALUE), "{sql}: {err:?}");
    }
    // A statement never snapshotted has no history.
    assert!(c.query("SELECT * FROM pitstop.query_history(42)", &[]).unwrap().is_empty());
}
