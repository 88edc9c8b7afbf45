//! Every statement the daemon and the CLI send is pitstop's own by the rule top_queries, the
//! advisor and the console's slow list use (sql/queries/own_statement.sql): a role whose every
//! statement is captured as slow (pitstop.slow_query_ms = 0) runs the daemon with the console
//! and the relay, and the CLI's commands, over the planted problems; then no statement of that
//! role, in pitstop.slow_queries or pg_stat_statements, is taken for the application's.

mod planted;

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{
    pitstop, poll_until, run_snapshot_job, tag_version, Daemon, DaemonConfig, RedisServer,
};
use std::time::Duration;

const NOT_OWN: &str =
    concat!("NOT (\n", include_str!("../../sql/queries/own_statement.sql"), "\n)");

#[test]
fn every_statement_the_daemon_and_the_cli_send_is_pitstops_own() {
    // The application's statements are not captured (one minute); the agent's all are.
    let mut planted = planted::plant(60_000);
    planted
        .client
        .batch_execute(
            "CREATE ROLE pitstop_agent LOGIN SUPERUSER;
             ALTER ROLE pitstop_agent SET pitstop.slow_query_ms = 0;
             SELECT pitstop.cache_track('churn');
             -- Tables named like the columns pitstop's statements list after a comma.
             CREATE TABLE state (); CREATE TABLE query (); CREATE TABLE version (); CREATE TABLE n ();
             CREATE TABLE i (); CREATE TABLE p (); CREATE TABLE oid (); CREATE TABLE deadlocks ();",
        )
        .unwrap();
    planted.block();
    let cluster = &planted.cluster;
    let dsn = format!("host=127.0.0.1 port={} user=pitstop_agent dbname=postgres", cluster.port);

    let redis = RedisServer::start();
    let config = DaemonConfig::new(&dsn, &redis.url())
        .set("http", "console = true")
        .set("monitor", "sample_interval = \"200ms\"")
        .set("monitor", "write_interval = \"400ms\"");
    let daemon = Daemon::start(&config.toml(), &[]);
    let ready = poll_until(Duration::from_secs(90), || {
        let (code, body) = daemon.get("/api/overview");
        code == 200
            && body.contains("customer_id")
            && body.contains("blocked by pid")
            && scalar_i64(&mut cluster.connect(), "SELECT count(*) FROM pitstop.host_metrics") > 0
    });
    assert!(ready, "the overview never listed the planted problems:\n{}", daemon.log());
    // The relay carries a write of a tracked table to Redis.
    planted.client.batch_execute("UPDATE churn SET pad = pad WHERE id = 1").unwrap();
    let mut r = redis.client();
    let relayed =
        poll_until(Duration::from_secs(30), || tag_version(&mut r, "postgres.public.churn") > 0);
    assert!(relayed, "the write was not relayed:\n{}", daemon.log());
    let queryid = scalar_i64(
        &mut planted.client,
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%FROM orders WHERE customer_id%' LIMIT 1",
    );
    daemon.assert_every_page_answers(queryid);

    let reports: &[&[&str]] = &[
        &["report", "problems", "--advice"],
        &["report", "slow-queries"],
        &["report", "top-queries"],
        &["report", "advice", "SELECT count(*) FROM orders WHERE customer_id = 7"],
        &["report", "indexes"],
        &["report", "indexes", "--curve"],
        &["report", "unhelped"],
        &["report", "index-health"],
        &["report", "vacuum", "--all"],
        &["report", "bloat"],
        &["report", "config", "--all"],
        &["report", "connections"],
        &["report", "locks"],
        &["report", "long-running"],
        &["report", "index-effect"],
        &["cache", "stats"],
        &["top", "--json"],
        &["maintenance", "--dry-run"],
    ];
    for args in reports {
        let (code, out, err) = pitstop(&[&["--dsn", dsn.as_str()], *args].concat());
        assert_eq!(code, 0, "pitstop {args:?}:\n{out}\n{err}");
    }
    let (code, out, err) = pitstop(&["--dsn", &dsn, "doctor"]);
    assert!(code == 0 || code == 1, "doctor: {out}\n{err}");
    // The vacuum of the planted churn table, and the snapshot job.
    let (code, out, err) = pitstop(&["--dsn", &dsn, "maintenance", "--yes"]);
    assert_eq!(code, 0, "maintenance: {out}\n{err}");
    assert!(out.contains("churn"), "{out}");
    run_snapshot_job(&dsn);

    let captured = |sql: &str| -> Vec<String> {
        let mut c = cluster.connect();
        c.query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
    };
    let total: Vec<String> =
        captured("SELECT query FROM pitstop.slow_queries WHERE username = 'pitstop_agent'");
    assert!(total.len() > 50, "the agent's statements were not captured: {total:#?}");
    // The capture ring keeps the newest statements; pg_stat_statements has every one.
    let slow = captured(&format!(
        "SELECT DISTINCT query FROM pitstop.slow_queries s \
         WHERE username = 'pitstop_agent' AND {NOT_OWN}"
    ));
    // pg_stat_statements cannot tell the maintenance jobs' VACUUM, ANALYZE and REINDEX from a
    // DBA's: they stay in top_queries (pitstop.maintenance_log has them as the job's).
    let statements = captured(&format!(
        "SELECT query FROM pg_stat_statements s \
         WHERE userid = 'pitstop_agent'::regrole AND query !~ '^(VACUUM|ANALYZE|REINDEX) ' AND {NOT_OWN}"
    ));
    assert!(
        slow.is_empty() && statements.is_empty(),
        "taken for the application's slow statements: {slow:#?}\n\
         taken for the application's workload (pg_stat_statements): {statements:#?}"
    );

    drop(daemon);
    planted.release();
}

/// The rule on raw texts as `pitstop.slow_queries` keeps them (literals in place): each
/// application statement is the application's, each catalog read pitstop's.
#[test]
fn raw_texts_are_read_past_their_literals_and_quoted_names() {
    let (cluster, _) = pitstop_tests::PgCluster::with_extension(
        "CREATE TABLE public.orders (id int, total int);
         CREATE TABLE public.\"my  table\" (id int);",
    );
    let applications = [
        "SELECT pg_catalog.now(), 'extract(' FROM orders",
        "SELECT o.id, pg_catalog.now(), 'see extract( ' FROM orders o",
        "SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c, \"my  table\" t",
        "SELECT pg_catalog.count(*), o.is \"distinct\" FROM orders o",
    ];
    let own = [
        "SELECT pg_catalog.now(), extract('epoch' FROM pg_catalog.now())",
        "SELECT a.pid FROM pg_catalog.pg_stat_activity a WHERE a.state IS\n  NOT\tDISTINCT FROM 'x'",
    ];
    let long = format!("SELECT pg_catalog.now() FROM{}pg_catalog.pg_class", " ".repeat(5_000));
    let mut c = cluster.connect();
    let verdict = |c: &mut postgres::Client, text: &str| -> bool {
        let sql = format!("SELECT NOT ({NOT_OWN}) FROM (VALUES ($1::text)) s(query)");
        c.query_one(&sql, &[&text]).unwrap().get(0)
    };
    for text in applications.iter().chain([&long.as_str()]) {
        assert!(!verdict(&mut c, text), "taken for pitstop's: {text}");
    }
    for text in own {
        assert!(verdict(&mut c, text), "taken for the application's: {text}");
    }
}
