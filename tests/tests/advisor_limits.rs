//! What the advisor must not be turned into. A cancel it did not cause ends the advice: the
//! user's cancel (pg_cancel_backend, Ctrl-C in psql) and the session's statement_timeout are
//! never taken for one statement that failed to plan, after which the advice would go on for
//! every other statement. A statement text of megabytes is reported, not copied and planned.

use pitstop_tests::query::first_column;
use pitstop_tests::{ClusterOptions, PgCluster};
use postgres::error::SqlState;
use std::time::Duration;

/// Each statement takes 0.4 s to plan: the planner folds the immutable function's call.
const SETUP: &str = "CREATE TABLE t(a int, b int);
    INSERT INTO t SELECT g, g FROM generate_series(1, 10000) g;
    ANALYZE t;
    CREATE FUNCTION slow_to_plan(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
      $$BEGIN PERFORM pg_sleep(0.4); RETURN x; END$$";

/// 40 statements: about 16 s of planning before the first candidate is weighed.
fn slow_workload() -> Vec<String> {
    (0..40).map(|i| format!("SELECT b FROM t WHERE a = slow_to_plan({i})")).collect()
}

const ADVICE: &str = "SELECT ddl FROM pitstop.suggest_indexes($1)";

#[test]
fn the_users_cancel_ends_the_advice() {
    let (cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], ..Default::default() }, SETUP);
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let advice =
        std::thread::spawn(move || c.query(ADVICE, &[&slow_workload()]).map(|rows| rows.len()));
    std::thread::sleep(Duration::from_millis(1500));
    let mut other = cluster.connect();
    let signalled: bool = other.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap().get(0);
    assert!(signalled);
    let err =
        advice.join().unwrap().expect_err("the cancel was taken for a statement that did not plan");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
}

#[test]
fn the_sessions_statement_timeout_ends_the_advice() {
    let (_cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], ..Default::default() }, SETUP);
    // Shorter than pitstop.advisor_plan_timeout (5 s): the session's timer is the one that fires.
    c.batch_execute("SET statement_timeout = '1500ms'").unwrap();
    let err =
        c.query(ADVICE, &[&slow_workload()]).expect_err("statement_timeout did not end the advice");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    // The session goes on, and its own timeout is unchanged.
    let timeout: String = c.query_one("SHOW statement_timeout", &[]).unwrap().get(0);
    assert_eq!(timeout, "1500ms");
}

#[test]
fn the_advisors_own_timeout_skips_one_statement_under_a_longer_statement_timeout() {
    let (_cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], ..Default::default() }, SETUP);
    c.batch_execute("SET statement_timeout = '60s'; SET pitstop.advisor_plan_timeout = '100ms'")
        .unwrap();
    let workload = vec![
        "SELECT b FROM t WHERE a = slow_to_plan(1)".to_string(),
        "SELECT b FROM t WHERE a = 7".to_string(),
    ];
    let advice: Vec<String> = first_column(&mut c, ADVICE, &[&workload]);
    assert!(advice.iter().any(|ddl| ddl.contains("public.t (a")), "{advice:?}");
    let reasons: Vec<String> = first_column(
        &mut c,
        "SELECT reason FROM pitstop.unhelped_queries($1) WHERE query LIKE '%slow_to_plan%'",
        &[&workload],
    );
    assert!(reasons.iter().any(|r| r.contains("statement timeout")), "{reasons:?}");
}

#[test]
fn a_statement_text_over_a_megabyte_is_reported_not_planned() {
    let (cluster, mut c) = PgCluster::with_extension(SETUP);
    c.batch_execute("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()")
        .unwrap();
    let mut app = cluster.connect();
    // pg_stat_statements keeps comments: the recorded text is as long as the statement.
    let huge = format!("SELECT b FROM t WHERE a = 3 /* {} */", "x".repeat(1_200_000));
    app.query(huge.as_str(), &[]).unwrap();
    // Another statement (the same one without the comment would share its queryid and text).
    app.query("SELECT a FROM t WHERE b = 5", &[]).unwrap();
    let advice: Vec<String> =
        first_column(&mut c, "SELECT ddl FROM pitstop.suggest_indexes()", &[]);
    assert!(
        advice.iter().any(|ddl| ddl.contains("public.t (b")),
        "the short statement is advised: {advice:?}"
    );
    let rows = c
        .query(
            "SELECT query, reason FROM pitstop.unhelped_queries() WHERE reason LIKE '%bytes%'",
            &[],
        )
        .unwrap();
    assert_eq!(
        rows.len(),
        1,
        "{:?}",
        rows.iter().map(|r| r.get::<_, String>(1)).collect::<Vec<_>>()
    );
    let (query, reason): (String, String) = (rows[0].get(0), rows[0].get(1));
    // The recorded text is normalized (`a = $1`): one byte longer than the statement.
    assert!(reason.contains(&format!("its text is {} bytes", huge.len() + 1)), "{reason}");
    assert!(
        query.starts_with("SELECT b FROM t WHERE a = $1") && query.len() < 2000,
        "{}",
        &query[..100]
    );
}

/// Runs `sql` on `c` in a thread; its outcome, or None when it has not ended within `limit`
/// (a backend that hangs must fail the test, not hold it).
fn within(
    mut c: postgres::Client,
    sql: &'static str,
    limit: Duration,
) -> Option<(postgres::Client, Result<usize, postgres::Error>)> {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = c.query(sql, &[]).map(|rows| rows.len());
        let _ = done.send((c, result));
    });
    outcome.recv_timeout(limit).ok()
}

/// The session is sound after the advisor gave up on a statement: an error raised next walks
/// the error context stack (a callback of the advisor's left on it hung or crashed the backend).
fn assert_session_is_sound(c: &mut postgres::Client, cluster: &PgCluster) {
    let err = c.query("SELECT 1/0", &[]).expect_err("division by zero");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err:?}\n{}", cluster.log());
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

/// The first statement's analysis waits on the lock; the second's fails, which reports an
/// error through the error context stack inside the advice.
const LOCKED_ANALYSIS: &str = "SELECT ddl FROM pitstop.suggest_indexes(ARRAY[
    'SELECT b FROM t WHERE a = $1', 'SELECT nosuch FROM t2 WHERE a = $1', 'SELECT a FROM t2 WHERE b = $1'])";

/// Analysing a `$n` statement waits on a table lock; the advisor's own timer ends the wait,
/// that statement is given up, the next one advised, and the session stays sound.
#[test]
fn the_advisors_timeout_during_analysis_leaves_the_session_sound() {
    let setup = format!("{SETUP}; CREATE TABLE t2(a int, b int); INSERT INTO t2 SELECT g, g FROM generate_series(1, 10000) g; ANALYZE t2");
    let (cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], ..Default::default() }, &setup);
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").unwrap();
    c.batch_execute("SET pitstop.advisor_plan_timeout = '500ms'").unwrap();
    let (mut c, outcome) =
        within(c, LOCKED_ANALYSIS, Duration::from_secs(60)).expect("the advice hung");
    let rows =
        outcome.unwrap_or_else(|e| panic!("the advisor's own timeout ended the advice: {e:?}"));
    assert_eq!(rows, 1, "t2's statement is advised");
    assert_session_is_sound(&mut c, &cluster);
    holder.batch_execute("COMMIT").unwrap();
}

/// The user's cancel while analysis waits on a lock ends the advice with 57014, and the
/// session (and the server) go on.
#[test]
fn a_cancel_during_analysis_ends_the_advice_and_leaves_the_session_sound() {
    let (cluster, mut c) =
        PgCluster::with_pitstop(ClusterOptions { preload: vec![], ..Default::default() }, SETUP);
    c.batch_execute("CREATE TABLE t2(a int, b int)").unwrap();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").unwrap();
    let canceller = {
        let mut other = cluster.connect();
        std::thread::spawn(move || {
            // Cancel once the advisor waits on the lock.
            for _ in 0..600 {
                let waiting: bool = other
                    .query_one("SELECT wait_event_type IS NOT DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1", &[&pid])
                    .unwrap()
                    .get(0);
                if waiting {
                    return other
                        .query_one("SELECT pg_cancel_backend($1)", &[&pid])
                        .unwrap()
                        .get::<_, bool>(0);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let (mut c, outcome) =
        within(c, LOCKED_ANALYSIS, Duration::from_secs(60)).expect("the advice hung");
    assert!(canceller.join().unwrap(), "the advisor never waited on the lock");
    let err = outcome.expect_err("the cancel was taken for a statement that did not plan");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert_session_is_sound(&mut c, &cluster);
    holder.batch_execute("COMMIT").unwrap();
}
