//! The index advisor's progress (`pitstop.advisor_progress`): NOTICE messages only when a
//! session asks for them, and on the command line `progress:` lines on stderr while
//! `report indexes` / `unhelped` run, with stdout as it is without them.

use pitstop_tests::query::first_column;
use pitstop_tests::{ClusterOptions, PgCluster};
use std::sync::{Arc, Mutex};

const SETUP: &str = "CREATE EXTENSION pg_stat_statements;
     CREATE TABLE accounts(id int, email text, plan text);
     INSERT INTO accounts SELECT g, 'user' || g || '@example.com', 'free' FROM generate_series(1, 50000) g;
     CREATE TABLE orders(id int, account_id int, total numeric, placed date);
     INSERT INTO orders SELECT g, g % 50000, g % 97, date '2024-01-01' + g % 365 FROM generate_series(1, 100000) g;
     ANALYZE accounts, orders;";

/// Three kinds of statements, recorded by pg_stat_statements from an application session.
fn run_workload(cluster: &PgCluster) {
    let mut app = cluster.connect();
    app.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    for i in 0..20 {
        let email = format!("user{i}@example.com");
        app.query("SELECT id, plan FROM accounts WHERE email = $1", &[&email]).unwrap();
        app.query("SELECT sum(total) FROM orders WHERE account_id = $1", &[&i]).unwrap();
        app.query("SELECT id FROM orders WHERE placed = '2024-01-01'::date + $1::int", &[&i])
            .unwrap();
    }
}

/// A session whose notices are collected.
fn collecting(cluster: &PgCluster) -> (postgres::Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let mut config: postgres::Config = cluster.dsn().parse().unwrap();
    let seen = notices.clone();
    config.notice_callback(move |notice| seen.lock().unwrap().push(notice.message().to_string()));
    (config.connect(postgres::NoTls).unwrap(), notices)
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter_map(|l| l.strip_prefix("progress: ")).collect()
}

#[test]
fn the_cli_shows_progress_on_stderr_and_the_same_rows_on_stdout() {
    let (cluster, mut sql) = PgCluster::with_extension(SETUP);
    run_workload(&cluster);
    let dsn = cluster.dsn();

    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "--json", "report", "indexes"]);
    assert_eq!(code, 0, "{err}");
    let lines = progress_lines(&err);
    // The three statements of the workload, planned; the selection's first round; the end.
    assert!(lines.contains(&"planning 3 statements"), "{err}");
    assert!(lines.contains(&"planned 3 of 3 statements"), "{err}");
    assert!(lines.iter().any(|l| l.starts_with("choosing indexes: round 1, ")), "{err}");
    assert!(lines.last().is_some_and(|l| l.starts_with("done in ")), "{err}");
    // No terminal here: plain lines, no redrawing, nothing else on stderr.
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    assert_eq!(lines.len(), err.lines().count(), "{err}");

    // stdout is the advice alone, as a direct SQL call gives it, and as the command gives it
    // when the notices do not reach it (a session that does not take NOTICE messages).
    let advice: serde_json::Value = serde_json::from_str(&out).expect("stdout is the JSON alone");
    let ddls: Vec<&str> =
        advice.as_array().unwrap().iter().map(|r| r["ddl"].as_str().unwrap()).collect();
    assert!(ddls.iter().any(|d| d.contains("public.accounts (email")), "{out}");
    let direct: Vec<String> =
        first_column(&mut sql, "SELECT ddl FROM pitstop.suggest_indexes() ORDER BY rank", &[]);
    assert_eq!(ddls, direct);
    let quiet = [("PGOPTIONS", "-c client_min_messages=warning")];
    let (code, quiet_out, quiet_err) =
        pitstop_tests::pitstop_env(&["--dsn", &dsn, "--json", "report", "indexes"], &quiet);
    assert_eq!(code, 0, "{quiet_err}");
    assert!(progress_lines(&quiet_err).is_empty(), "{quiet_err}");
    assert_eq!(quiet_out, out);

    // The same for the statements no index helps, as a table.
    let (code, out, err) = pitstop_tests::pitstop(&["--dsn", &dsn, "report", "unhelped"]);
    assert_eq!(code, 0, "{err}");
    assert!(progress_lines(&err).contains(&"planned 3 of 3 statements"), "{err}");
    let (_, quiet_out, _) =
        pitstop_tests::pitstop_env(&["--dsn", &dsn, "report", "unhelped"], &quiet);
    assert_eq!(quiet_out, out);
    assert!(!out.contains("progress") && !out.contains("pitstop advisor"), "{out}");
}

/// Without shared_preload_libraries the setting comes with the library, which the CLI loads
/// before it looks for the setting.
#[test]
fn the_cli_shows_progress_when_pitstop_is_not_preloaded() {
    let options = ClusterOptions { preload: vec!["pg_stat_statements"], settings: vec![] };
    let (cluster, _sql) = PgCluster::with_pitstop(options, SETUP);
    run_workload(&cluster);
    let (code, out, err) =
        pitstop_tests::pitstop(&["--dsn", &cluster.dsn(), "--json", "report", "indexes"]);
    assert_eq!(code, 0, "{err}");
    assert!(progress_lines(&err).contains(&"planned 3 of 3 statements"), "{err}");
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "{out}");
}

#[test]
fn sql_sessions_get_progress_notices_only_when_they_ask() {
    let (cluster, _setup) = PgCluster::with_extension(SETUP);
    run_workload(&cluster);
    let (mut client, notices) = collecting(&cluster);
    let setting: String = client.query_one("SHOW pitstop.advisor_progress", &[]).unwrap().get(0);
    assert_eq!(setting, "off");
    client.query("SELECT * FROM pitstop.suggest_indexes()", &[]).unwrap();
    client.query("SELECT * FROM pitstop.unhelped_queries()", &[]).unwrap();
    assert_eq!(*notices.lock().unwrap(), Vec::<String>::new(), "no NOTICE while off");

    client.batch_execute("SET pitstop.advisor_progress = on").unwrap();
    let started = std::time::Instant::now();
    let rows = client.query("SELECT * FROM pitstop.suggest_indexes()", &[]).unwrap();
    let seconds = started.elapsed().as_secs() as usize;
    let said = notices.lock().unwrap().clone();
    assert!(said.iter().all(|n| n.starts_with("pitstop advisor: ")), "{said:?}");
    assert_eq!(said.first().map(String::as_str), Some("pitstop advisor: planning 3 statements"));
    assert!(said.contains(&"pitstop advisor: planned 3 of 3 statements".to_string()), "{said:?}");
    let done =
        format!(" {} {} suggested", rows.len(), if rows.len() == 1 { "index" } else { "indexes" });
    assert!(said.last().is_some_and(|l| l.ends_with(&done)), "{said:?} / {done}");
    // Where each stage starts and ends (eight at most), and at most one more a second: not a
    // line per statement or candidate.
    assert!(said.len() <= 8 + seconds + 1, "{seconds} s: {said:?}");
}
