//! Scheduled maintenance against a real server: the plan shown by `pitstop maintenance
//! --dry-run` and carried out by `pitstop maintenance` (dead tuples gone, the run and its
//! action in pitstop.maintenance_log); a locked table (lock_timeout, retries, each attempt
//! logged with SQLSTATE 55P03, the lock holder untouched); the daemon skipping a run that would
//! overlap the previous one; a bad cron string named by its key; and standbys, where nothing
//! runs. The command is safe to type: no terminal and no --yes runs nothing, a terminal is
//! asked (a pseudo-terminal through util-linux `script`), --max-actions and --include-reindex
//! bound what runs, a VACUUM PostgreSQL skipped with a WARNING is logged 'skipped', and Ctrl-C
//! cancels the running statement on the server.

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{
    pitstop, pitstop_bin, poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster,
};
use postgres::Client;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A configuration file in a private directory, removed on drop.
struct ConfigFile {
    dir: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir()
            .join(format!("pitstop-maintenance-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pitstop.toml"), text).unwrap();
        ConfigFile { dir }
    }

    fn path(&self) -> String {
        self.dir.join("pitstop.toml").display().to_string()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pitstop --dsn DSN maintenance ARGS --config FILE`.
fn maintenance(cluster: &PgCluster, config: &ConfigFile, args: &[&str]) -> (i32, String, String) {
    let dsn = cluster.dsn();
    let path = config.path();
    let mut all = vec!["--dsn", dsn.as_str()];
    all.extend(args.iter().copied().filter(|a| *a == "--json"));
    all.push("maintenance");
    all.extend(args.iter().copied().filter(|a| *a != "--json"));
    all.extend(["--config", path.as_str()]);
    pitstop(&all)
}

/// A table without autovacuum holding `dead` dead tuples (and a third as many live ones),
/// with the statistics flushed so that the plan sees them.
fn dead_table(c: &mut Client, name: &str, dead: i32) {
    c.batch_execute(&format!(
        "CREATE TABLE {name} (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO {name} SELECT g, repeat('x', 50) FROM generate_series(1, {}) g;
         DELETE FROM {name} WHERE id % 4 <> 0;",
        dead / 3 * 4
    ))
    .unwrap();
    c.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || n_dead(c, name) >= i64::from(dead) * 9 / 10),
        "dead tuples not visible in the statistics"
    );
}

/// A cluster with the extension and `dead_table(name, dead)`, and the session that made it.
fn cluster_with_dead_table(name: &str, dead: i32) -> (PgCluster, Client) {
    let (cluster, mut c) = PgCluster::with_extension("");
    dead_table(&mut c, name, dead);
    (cluster, c)
}

fn n_dead(c: &mut Client, name: &str) -> i64 {
    c.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
    c.query_one("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = $1", &[&name])
        .unwrap()
        .get(0)
}

/// (action, target, outcome, attempt, error, detail) of the log rows of `job`, in id order.
type LogRow = (String, Option<String>, String, i32, Option<String>, Option<String>);

fn log_rows(c: &mut Client, job: &str) -> Vec<LogRow> {
    log_rows_where(c, &format!("job = '{job}'"))
}

fn log_rows_where(c: &mut Client, condition: &str) -> Vec<LogRow> {
    c.query(&format!("SELECT action, target, outcome, attempt, error, detail FROM pitstop.maintenance_log WHERE {condition} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

#[test]
fn a_table_full_of_dead_tuples_is_planned_then_vacuumed_and_logged() {
    let (cluster, mut c) = cluster_with_dead_table("bloated", 15_000);
    let config = ConfigFile::new("[maintenance]\nlock_timeout = \"2s\"\n");

    let (code, out, err) = maintenance(&cluster, &config, &["--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.contains("bloated"))
        .unwrap_or_else(|| panic!("bloated is not in the plan:\n{out}"));
    assert!(line.contains("vacuum") && line.contains("VACUUM (ANALYZE)"), "{out}");
    for column in ["priority", "action", "target", "command", "reason"] {
        assert!(out.lines().nth(1).unwrap_or("").contains(column), "no {column} column:\n{out}");
    }
    let (code, out, err) = maintenance(&cluster, &config, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let row = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"].as_str().is_some_and(|t| t.contains("bloated")))
        .expect("bloated in --json");
    assert_eq!(row["action"], "vacuum", "{row}");
    assert!(
        row["reason"].as_str().is_some_and(|r| !r.is_empty()) && row["priority"].is_i64(),
        "{row}"
    );
    assert!(n_dead(&mut c, "bloated") >= 13_000, "a dry run must not vacuum");
    assert_eq!(
        c.query_one("SELECT count(*) FROM pitstop.maintenance_log", &[]).unwrap().get::<_, i64>(0),
        0,
        "a dry run logs nothing"
    );

    let (code, out, err) = maintenance(&cluster, &config, &["--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("bloated") && out.contains("ok"), "{out}");
    assert!(
        err.contains("[1/1] vacuum public.bloated: started: VACUUM")
            && err.contains("[1/1] vacuum public.bloated: ok in "),
        "{err}"
    );
    assert!(
        poll_until(Duration::from_secs(10), || n_dead(&mut c, "bloated") < 100),
        "dead tuples still there: {}",
        n_dead(&mut c, "bloated")
    );

    let rows = log_rows(&mut c, "cli");
    let run = &rows[0];
    assert_eq!((run.0.as_str(), run.1.as_deref(), run.2.as_str()), ("run", None, "ok"), "{rows:?}");
    let action = rows
        .iter()
        .find(|r| r.1.as_deref().is_some_and(|t| t.contains("bloated")))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(
        (action.0.as_str(), action.2.as_str(), action.3, action.4.as_deref()),
        ("vacuum", "ok", 1, None),
        "{rows:?}"
    );
    let (command, took, same_run): (String, f64, bool) = c
        .query_one(
            "SELECT a.command, a.duration_ms, a.run_id = r.id FROM pitstop.maintenance_log a JOIN pitstop.maintenance_log r ON r.action = 'run' \
             WHERE a.job = 'cli' AND a.target LIKE '%bloated%'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert!(
        command.starts_with("VACUUM") && took >= 0.0 && same_run,
        "{command} {took} {same_run}"
    );
}

#[test]
fn a_locked_table_times_out_is_retried_and_logged_and_the_lock_holder_is_untouched() {
    let (cluster, mut c) = cluster_with_dead_table("held", 3_000);
    let config = ConfigFile::new(
        "[maintenance]\nlock_timeout = \"200ms\"\nretries = 2\nretry_delay = \"100ms\"\n\
         [[maintenance.jobs]]\nname = \"nightly\"\nkind = \"vacuum\"\nschedule = \"0 1 * * *\"\ndead_ratio = 0.1\nmin_dead = 100\n",
    );

    // SHARE blocks VACUUM (and writes), not readers.
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE held IN SHARE MODE").unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let (code, out, err) = maintenance(&cluster, &config, &["--job", "nightly", "--yes"]);
    assert_eq!(code, 1, "a failed action must fail the command:\n{out}\n{err}");
    assert!(out.contains("55P03"), "{out}");
    let rows = log_rows(&mut c, "nightly");
    let attempts: Vec<&LogRow> = rows.iter().filter(|r| r.0 == "vacuum").collect();
    assert_eq!(
        attempts.iter().map(|r| r.3).collect::<Vec<_>>(),
        [1, 2, 3],
        "1 attempt + 2 retries: {rows:?}"
    );
    for a in &attempts {
        assert_eq!(a.2, "failed", "{rows:?}");
        assert!(
            a.4.as_deref().is_some_and(|e| e.contains("lock timeout") && e.contains("55P03")),
            "{rows:?}"
        );
    }
    assert_eq!(rows[0].2, "failed", "the run: {rows:?}");
    assert_untouched(&mut c, holder_pid, "held", "ShareLock");
    holder.batch_execute("SELECT count(*) FROM held; COMMIT").unwrap();
    assert!(n_dead(&mut c, "held") >= 2_500, "nothing was vacuumed");

    // ACCESS EXCLUSIVE blocks even reading the plan's sizes: the run still fails on
    // lock_timeout (in the plan or in the action), logged, and the holder goes on.
    holder.batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE").unwrap();
    let (code, out, err) = maintenance(&cluster, &config, &["--job", "nightly", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let second_run = log_rows_where(
        &mut c,
        "run_id = (SELECT max(run_id) FROM pitstop.maintenance_log WHERE job = 'nightly')",
    );
    assert!(
        second_run.iter().any(|r| r.4.as_deref().is_some_and(|e| e.contains("55P03"))),
        "{second_run:?}"
    );
    assert_eq!(
        (second_run[0].0.as_str(), second_run[0].2.as_str()),
        ("run", "failed"),
        "{second_run:?}"
    );
    assert_untouched(&mut c, holder_pid, "held", "AccessExclusiveLock");
    holder.batch_execute("COMMIT").unwrap();
}

/// The session `pid` is still in its transaction, holding `mode` on `table`.
fn assert_untouched(c: &mut Client, pid: i32, table: &str, mode: &str) {
    let state: String =
        c.query_one("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid]).unwrap().get(0);
    assert_eq!(state, "idle in transaction");
    let held: i64 = c
        .query_one("SELECT count(*) FROM pg_locks WHERE pid = $1 AND relation = $3::text::regclass AND mode = $2 AND granted", &[&pid, &mode, &table])
        .unwrap()
        .get(0);
    assert_eq!(held, 1, "{mode} no longer held");
}

#[test]
fn the_daemon_skips_a_run_that_would_overlap_the_previous_one() {
    let (cluster, mut c) = PgCluster::with_extension("");
    c.batch_execute("INSERT INTO pitstop.host_metrics (sampled_at, host, metric, value) SELECT now() - interval '40 days', 'h', 'm', g FROM generate_series(1, 100) g")
        .unwrap();
    // The prune job's DELETE waits for this lock (lock_timeout, retries), so its run lasts
    // several seconds while the job is due every second.
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE pitstop.host_metrics IN SHARE MODE").unwrap();
    let config = DaemonConfig::new(&cluster.dsn(), "")
        .set("maintenance", "lock_timeout = \"400ms\"")
        .set("maintenance", "retries = 3")
        .set("maintenance", "retry_delay = \"400ms\"")
        .toml()
        + "\n[[maintenance.jobs]]\nname = \"prune-often\"\nkind = \"prune\"\nschedule = \"* * * * * *\"\nkeep = \"30d\"\n";
    let daemon = Daemon::start(&config, &[]);

    let skipped = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pitstop.maintenance_log WHERE job = 'prune-often' AND action = 'run' AND outcome = 'skipped' AND detail LIKE '%previous run%still going%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert!(
        poll_until(Duration::from_secs(20), || skipped(&mut c) >= 2),
        "no overlap skipped:\n{:?}\n{}",
        log_rows(&mut c, "prune-often"),
        daemon.log()
    );
    let status = daemon.status();
    let job = &status["maintenance"]["jobs"][0];
    assert_eq!(job["name"], "prune-often", "{status}");
    assert_eq!(job["running"], true, "{status}");
    assert!(job["next_run"].is_string() && job["last_run"]["outcome"] == "skipped", "{status}");
    assert_eq!(status["maintenance"]["state"]["state"], "up", "{status}");

    holder.batch_execute("COMMIT").unwrap();
    let pruned = |c: &mut Client| {
        c.query_one("SELECT count(*) FROM pitstop.host_metrics", &[]).unwrap().get::<_, i64>(0) == 0
    };
    assert!(
        poll_until(Duration::from_secs(20), || pruned(&mut c)),
        "not pruned:\n{}",
        daemon.log()
    );
    drop(daemon);

    // Never two runs at once: the runs that did start do not overlap in time.
    let overlapping: i64 = c
        .query_one(
            "SELECT count(*) FROM pitstop.maintenance_log a JOIN pitstop.maintenance_log b ON a.id < b.id \
             WHERE a.job = 'prune-often' AND b.job = 'prune-often' AND a.action = 'run' AND b.action = 'run' \
               AND a.outcome <> 'skipped' AND b.outcome <> 'skipped' \
               AND b.started_at < a.started_at + make_interval(secs => coalesce(a.duration_ms, 1e9) / 1000)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(overlapping, 0, "{:?}", log_rows(&mut c, "prune-often"));
    let failed_attempts = scalar_i64(&mut c, "SELECT count(*) FROM pitstop.maintenance_log WHERE job = 'prune-often' AND action = 'prune' AND error LIKE '%55P03%'");
    assert!(failed_attempts >= 1, "{:?}", log_rows(&mut c, "prune-often"));
}

#[test]
fn a_bad_cron_string_is_named_by_its_key_and_the_daemon_refuses_it() {
    let text = "[[maintenance.jobs]]\nname = \"ok\"\nkind = \"snapshot\"\nschedule = \"0 * * * *\"\n\
                [[maintenance.jobs]]\nname = \"bad\"\nkind = \"vacuum\"\nschedule = \"61 * * * *\"\nwindow = \"05:00-05:00\"\n";
    let config = ConfigFile::new(text);
    let (code, out, err) = pitstop(&["check-config", "--config", &config.path()]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("maintenance.jobs[1].schedule: \"61 * * * *\" is not a valid cron expression"),
        "{err}"
    );
    assert!(err.contains("maintenance.jobs[1].window:"), "{err}");
    assert!(!err.contains("jobs[0]"), "{err}");
    let mut daemon = Daemon::start(&format!("[http]\nlisten = \"127.0.0.1:0\"\n{text}"), &[]);
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon started with a bad cron string");
    assert_eq!(status.code(), Some(78), "{}", daemon.log());
}

#[test]
fn nothing_runs_on_a_standby() {
    let (primary, _) = PgCluster::with_extension("");
    let standby = PgCluster::start_standby(&primary, ClusterOptions::default());
    let mut s = standby.connect();
    assert!(s.query_one("SELECT pg_is_in_recovery()", &[]).unwrap().get::<_, bool>(0));
    let config = ConfigFile::new("");

    let (code, out, err) = maintenance(&standby, &config, &["--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("refusing to run maintenance") && err.contains("standby"), "{err}");
    let (code, _, err) = maintenance(&standby, &config, &["--job", "prune", "--yes"]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = maintenance(&standby, &config, &["--dry-run"]);
    assert_eq!(code, 0, "a dry run only reads, also on a standby: {out}\n{err}");

    let daemon_config = DaemonConfig::new(&standby.dsn(), "").toml() + "\n[[maintenance.jobs]]\nname = \"snap\"\nkind = \"snapshot\"\nschedule = \"* * * * * *\"\n";
    let daemon = Daemon::start(&daemon_config, &[]);
    assert!(
        daemon.wait_for_log(
            "maintenance: job snap: skipped: the server is a standby",
            Duration::from_secs(15)
        ),
        "{}",
        daemon.log()
    );
    let status = daemon.status();
    assert_eq!(status["maintenance"]["jobs"][0]["last_run"]["outcome"], "skipped", "{status}");
    drop(daemon);
    let logged = scalar_i64(&mut primary.connect(), "SELECT count(*) FROM pitstop.maintenance_log");
    assert_eq!(logged, 0, "nothing ran through the primary either");
}

#[test]
fn without_the_extension_the_command_says_how_to_install_it() {
    let cluster = PgCluster::start();
    let config = ConfigFile::new("");
    let (code, out, err) = maintenance(&cluster, &config, &["--dry-run"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("pitstop extension is not installed")
            && err.contains("HINT:  CREATE EXTENSION pitstop"),
        "{err}"
    );
}

/// `last_vacuum` of `name` as text (NULL: never vacuumed by hand).
fn last_vacuum(c: &mut Client, name: &str) -> Option<String> {
    c.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
    c.query_one("SELECT last_vacuum::text FROM pg_stat_user_tables WHERE relname = $1", &[&name])
        .unwrap()
        .get(0)
}

fn log_count(c: &mut Client) -> i64 {
    c.query_one("SELECT count(*) FROM pitstop.maintenance_log", &[]).unwrap().get(0)
}

#[test]
fn without_a_terminal_and_without_yes_nothing_runs() {
    let (cluster, mut c) = cluster_with_dead_table("untouched", 3_000);
    let config = ConfigFile::new("");
    let dead_before = n_dead(&mut c, "untouched");

    // The harness runs pitstop with stdin on /dev/null: no terminal to confirm on.
    for args in [&[][..], &["--job", "vacuum"][..], &["--max-actions", "1"][..], &["--json"][..]] {
        let (code, out, err) = maintenance(&cluster, &config, args);
        assert_eq!(code, 2, "{args:?} must be refused:\n{out}\n{err}");
        assert!(
            err.contains("refusing to run maintenance without confirmation")
                && err.contains("--yes"),
            "{err}"
        );
        assert!(out.is_empty(), "{out}");
    }
    assert_eq!(log_count(&mut c), 0, "nothing logged");
    assert_eq!(last_vacuum(&mut c, "untouched"), None, "nothing vacuumed");
    assert_eq!(n_dead(&mut c, "untouched"), dead_before);
    // Nothing asked when only reading.
    let (code, out, err) = maintenance(&cluster, &config, &["--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("untouched"), "{out}");
    // N must be at least 1.
    let (code, _, err) = maintenance(&cluster, &config, &["--yes", "--max-actions", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-actions"), "{err}");
    assert_eq!(log_count(&mut c), 0);
}

#[test]
fn max_actions_runs_that_many_in_priority_order() {
    let (cluster, mut c) = PgCluster::with_extension("");
    // Most dead tuples first within the vacuum priority.
    dead_table(&mut c, "most", 9_000);
    dead_table(&mut c, "more", 6_000);
    dead_table(&mut c, "few", 3_000);
    let config = ConfigFile::new("");

    let (code, out, err) =
        maintenance(&cluster, &config, &["--dry-run", "--max-actions", "2", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let plan: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let targets: Vec<&str> =
        plan.as_array().unwrap().iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["public.most", "public.more"], "{out}");

    let (code, out, err) =
        maintenance(&cluster, &config, &["--yes", "--max-actions", "1", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json must stay JSON: {e}: {out}"));
    assert_eq!(report["actions"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["actions"][0]["target"], "public.most", "{report}");
    assert!(
        err.contains("[1/1] vacuum public.most: started")
            && err.contains("[1/1] vacuum public.most: ok in"),
        "{err}"
    );
    let actions = log_rows_where(&mut c, "job = 'cli' AND action <> 'run'");
    assert_eq!(actions.len(), 1, "exactly one action: {actions:?}");
    assert_eq!(
        (actions[0].1.as_deref(), actions[0].2.as_str()),
        (Some("public.most"), "ok"),
        "{actions:?}"
    );
    assert!(last_vacuum(&mut c, "most").is_some());
    assert_eq!(
        (last_vacuum(&mut c, "more"), last_vacuum(&mut c, "few")),
        (None, None),
        "only one action ran"
    );
}

#[test]
fn reindex_runs_only_when_asked_for() {
    let (cluster, mut c) = PgCluster::with_extension("");
    for statement in [
        "CREATE TABLE loose (id int, pad text)",
        "INSERT INTO loose SELECT g, 'p' FROM generate_series(1, 200000) g",
        "CREATE INDEX loose_id ON loose (id)",
        "DELETE FROM loose WHERE id % 10 <> 0",
        "VACUUM loose",
        "ANALYZE loose",
    ] {
        c.batch_execute(statement).unwrap();
    }
    // A reindex job's thresholds are the ones the command plans with.
    let config = ConfigFile::new(
        "[[maintenance.jobs]]\nname = \"reindex\"\nkind = \"reindex\"\nenabled = false\nschedule = \"0 2 * * 0\"\nbloat_pct = 30.0\nmin_bytes = 1000000\n",
    );
    let reindex_rows = |json: &str| -> usize {
        let plan: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        plan.as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["action"] == "reindex"
                    && r["command"].as_str().is_some_and(|x| x.contains("loose_id"))
            })
            .count()
    };

    let (code, out, err) =
        maintenance(&cluster, &config, &["--dry-run", "--json", "--include-reindex"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(reindex_rows(&out), 1, "the index is in the plan: {out}");
    let (code, out, err) = maintenance(&cluster, &config, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(reindex_rows(&out), 0, "{out}");
    assert!(err.contains("1 reindex action left out (add --include-reindex"), "{err}");

    let (code, out, err) = maintenance(&cluster, &config, &["--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        log_rows_where(&mut c, "action = 'reindex'").is_empty(),
        "{:?}",
        log_rows(&mut c, "cli")
    );
    let (code, out, err) = maintenance(&cluster, &config, &["--yes", "--include-reindex"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let reindexed = log_rows_where(&mut c, "action = 'reindex'");
    assert_eq!(reindexed.len(), 1, "{reindexed:?}");
    assert_eq!(reindexed[0].2, "ok", "{reindexed:?}");
    // --include-reindex is for the whole plan; a reindex job (--job) reindexes anyway.
    let (code, _, err) =
        maintenance(&cluster, &config, &["--yes", "--job", "reindex", "--include-reindex"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

/// A maintenance login role that can read the plan and write the log, but owns no table; its DSN.
fn janitor(cluster: &PgCluster) -> String {
    cluster
        .connect()
        .batch_execute(
            "CREATE ROLE janitor LOGIN;
             GRANT USAGE ON SCHEMA pitstop TO janitor;
             GRANT SELECT, INSERT, UPDATE ON pitstop.maintenance_log TO janitor;
             GRANT USAGE ON SEQUENCE pitstop.maintenance_log_id_seq TO janitor;
             GRANT pg_monitor TO janitor;",
        )
        .unwrap();
    cluster.dsn().replace("user=postgres", "user=janitor")
}

#[test]
fn the_daemons_vacuum_job_logs_a_table_postgres_skipped_as_skipped() {
    let (cluster, mut c) = cluster_with_dead_table("not_mine", 3_000);
    let config = DaemonConfig::new(&janitor(&cluster), "").toml()
        + "\n[[maintenance.jobs]]\nname = \"v\"\nkind = \"vacuum\"\nschedule = \"* * * * * *\"\nmin_dead = 100\n";
    let daemon = Daemon::start(&config, &[]);
    let logged = |c: &mut Client| {
        log_rows_where(c, "job = 'v' AND target = 'public.not_mine' AND outcome <> 'running'")
    };
    assert!(
        poll_until(Duration::from_secs(20), || !logged(&mut c).is_empty()),
        "no run:\n{}",
        daemon.log()
    );
    drop(daemon);
    let rows = logged(&mut c);
    assert_eq!(rows[0].2, "skipped", "{rows:?}");
    assert!(rows[0].5.as_deref().is_some_and(|d| d.contains(skipped_warning())), "{rows:?}");
}

/// PostgreSQL's WARNING when VACUUM skips a table the role may not vacuum (worded anew in 17).
fn skipped_warning() -> &'static str {
    let out = std::process::Command::new(pitstop_tests::pg_bin("pg_config"))
        .arg("--version")
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout).contains("PostgreSQL 15") {
        "skipping \"not_mine\" --- only table or database owner can vacuum it"
    } else {
        "permission denied to vacuum \"not_mine\", skipping it"
    }
}

#[test]
fn a_table_the_login_role_may_not_vacuum_is_logged_skipped_with_the_warning() {
    let (cluster, mut c) = cluster_with_dead_table("not_mine", 3_000);
    let dsn = janitor(&cluster);
    let config = ConfigFile::new("");
    let path = config.path();
    let (code, out, err) = pitstop(&["--dsn", &dsn, "maintenance", "--yes", "--config", &path]);
    assert_eq!(code, 0, "a skip is not a failure:\n{out}\n{err}");
    let rows = log_rows_where(&mut c, "target = 'public.not_mine'");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (action, _, outcome, _, error, detail) = &rows[0];
    assert_eq!(
        (action.as_str(), outcome.as_str(), error.as_deref()),
        ("vacuum", "skipped", None),
        "{rows:?}"
    );
    let detail = detail.as_deref().unwrap_or("");
    assert!(detail.contains("WARNING") && detail.contains(skipped_warning()), "{detail}");
    assert!(
        out.contains("skipped")
            && err.contains(&format!(
                "vacuum public.not_mine: skipped by PostgreSQL: WARNING: {}",
                skipped_warning()
            )),
        "{out}\n{err}"
    );
    assert_eq!(last_vacuum(&mut c, "not_mine"), None, "PostgreSQL did skip it");
}

#[test]
fn ctrl_c_cancels_the_running_statement_on_the_server_and_starts_nothing_more() {
    let (cluster, mut c) = cluster_with_dead_table("waits", 9_000);
    dead_table(&mut c, "next_one", 3_000);
    // The first VACUUM waits for this lock (lock_timeout is long): a real, long action.
    let mut holder = cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE waits IN SHARE MODE").unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let config = ConfigFile::new("[maintenance]\nlock_timeout = \"5min\"\n");

    let mut cmd = Command::new(pitstop_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PITSTOP_") {
            cmd.env_remove(&k);
        }
    }
    let child = cmd
        .args(["--dsn", &cluster.dsn(), "maintenance", "--yes", "--config", &config.path()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pitstop-cli' AND query LIKE 'VACUUM%waits' AND state = 'active'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert!(
        poll_until(Duration::from_secs(20), || waiting(&mut c) == 1),
        "the VACUUM never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(waiting(&mut c), 1, "the VACUUM is running (waiting for the lock)");

    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = wait_with_timeout(child, Duration::from_secs(20));
    let (out, err) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(130), "exit status after Ctrl-C:\n{out}\n{err}");
    assert_eq!(waiting(&mut c), 0, "the statement was cancelled on the server");
    assert!(
        err.contains("interrupted") && err.contains("vacuum public.waits: cancelled after"),
        "{err}"
    );
    assert!(err.contains("[2/2] vacuum public.next_one: skipped: interrupted (Ctrl-C)"), "{err}");

    let rows = log_rows(&mut c, "cli");
    let waits: Vec<&LogRow> =
        rows.iter().filter(|r| r.1.as_deref() == Some("public.waits")).collect();
    assert_eq!(waits.len(), 1, "{rows:?}");
    assert_eq!(waits[0].2, "cancelled", "{rows:?}");
    assert!(waits[0].4.as_deref().is_some_and(|e| e.contains("57014")), "{rows:?}");
    let next: Vec<&LogRow> =
        rows.iter().filter(|r| r.1.as_deref() == Some("public.next_one")).collect();
    assert_eq!(next.len(), 1, "{rows:?}");
    assert_eq!(next[0].2, "skipped", "no further action starts: {rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_str()), ("run", "cancelled"), "{rows:?}");
    assert_eq!(last_vacuum(&mut c, "next_one"), None);
    assert_untouched(&mut c, holder_pid, "waits", "ShareLock");
    holder.batch_execute("COMMIT").unwrap();
}

/// Waits for `child` to exit (killing it after `timeout`) and collects its output.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> std::process::Output {
    let exited = poll_until(timeout, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        exited,
        "still running after {timeout:?}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `pitstop maintenance` on a pseudo-terminal (util-linux `script`), answering `answer`.
fn on_a_terminal(cluster: &PgCluster, config: &ConfigFile, answer: &str) -> (Option<i32>, String) {
    let line = format!(
        "{} --dsn '{}' maintenance --config '{}'",
        pitstop_bin().display(),
        cluster.dsn(),
        config.path()
    );
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("PITSTOP_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs a command on a pseudo-terminal");
    child.stdin.take().unwrap().write_all(format!("{answer}\n").as_bytes()).unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn on_a_terminal_the_plan_is_shown_and_only_yes_runs_it() {
    let (cluster, mut c) = cluster_with_dead_table("asked", 3_000);
    let config = ConfigFile::new("");

    let (code, shown) = on_a_terminal(&cluster, &config, "n");
    assert!(
        shown.contains("public.asked") && shown.contains("VACUUM (ANALYZE)"),
        "the plan is shown: {shown}"
    );
    assert!(shown.contains("Run this action? [y/N]"), "{shown}");
    assert!(shown.contains("Nothing was run"), "{shown}");
    assert_eq!(code, Some(1), "{shown}");
    assert_eq!(log_count(&mut c), 0, "answering n runs nothing");
    assert_eq!(last_vacuum(&mut c, "asked"), None);

    let (code, shown) = on_a_terminal(&cluster, &config, "");
    assert_eq!(code, Some(1), "the default is no: {shown}");
    assert_eq!(log_count(&mut c), 0);

    let (code, shown) = on_a_terminal(&cluster, &config, "y");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("vacuum public.asked: ok in"), "{shown}");
    assert!(last_vacuum(&mut c, "asked").is_some(), "answering y runs the plan");
    let actions = log_rows_where(&mut c, "action = 'vacuum'");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].2, "ok", "{actions:?}");
}
