//! `pitstop bench` on a real cluster: ramp stages, errors by SQLSTATE, the server's view of
//! the statements, and --save/--compare.

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{pitstop, PgCluster, ScratchDir};
use serde_json::Value;
use std::path::PathBuf;

/// A bench script in a scratch directory of its own (removed with it).
struct Script {
    dir: ScratchDir,
    path: PathBuf,
}

impl Script {
    /// `file` holding `text`, in a scratch directory named after `name`.
    fn new(name: &str, file: &str, text: &str) -> Script {
        let dir = ScratchDir::new(&format!("bench-test-{name}"));
        let script = Script { path: dir.path().join(file), dir };
        script.write(text);
        script
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

fn bench(cluster: &PgCluster, args: &[&str]) -> (i32, String, String) {
    let dsn = cluster.dsn();
    let mut all = vec!["bench", "--dsn", &dsn];
    all.extend_from_slice(args);
    pitstop(&all)
}

fn bench_json(cluster: &PgCluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout, stderr) = bench(cluster, &all);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    // With --compare a second JSON document follows the results.
    let mut docs = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    docs.next().expect("a JSON document").expect("valid JSON")
}

/// `pitstop bench --dsn <dsn> -f <script>` with two clients for a second, `--json`, without and
/// with --prepared: each run must succeed, its only errors division by zero (22012), with
/// transactions both through and failed. Per run (ok, failed).
fn runs_failing_by_division(dsn: &str, script: &str) -> Vec<(u64, u64)> {
    let mut counts = Vec::new();
    for protocol in [&[][..], &["--prepared"][..]] {
        let mut all = vec![
            "bench",
            "--dsn",
            dsn,
            "-f",
            script,
            "--clients",
            "2",
            "--duration",
            "1s",
            "--json",
        ];
        all.extend_from_slice(protocol);
        let (code, stdout, stderr) = pitstop(&all);
        assert_eq!(code, 0, "{all:?}: {stdout}\n{stderr}");
        let out: Value = serde_json::from_str(&stdout).unwrap();
        let errors = out["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{all:?}: {out:#}");
        assert_eq!(errors[0]["sqlstate"], "22012");
        let (ok, failed) =
            (out["transactions"].as_u64().unwrap(), errors[0]["count"].as_u64().unwrap());
        assert!(ok > 0 && failed > 0, "{all:?}: {ok} ok, {failed} failed");
        assert_eq!(out["scripts"][0]["errors"].as_u64().unwrap(), failed);
        counts.push((ok, failed));
    }
    counts
}

/// The report's row of the statement whose text holds `marker`.
fn statement_row<'a>(out: &'a Value, marker: &str) -> &'a Value {
    out["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["statement"].as_str().unwrap().contains(marker))
        .expect("the statement's row")
}

fn cluster() -> PgCluster {
    let setup = "CREATE EXTENSION pg_stat_statements;
                 CREATE TABLE seen(client int, at timestamptz DEFAULT clock_timestamp())";
    PgCluster::with_extension(setup).0
}

#[test]
fn a_ramp_reports_each_stage_with_its_clients_and_the_servers_view() {
    let cluster = cluster();
    let file = Script::new("ramp", "probe.sql", "\\set pause random(0, 1)\nINSERT INTO seen(client) VALUES (:client_id);\nSELECT :pause AS bench_probe;\n");
    let f = file.path();
    let started = std::time::Instant::now();
    let out =
        bench_json(&cluster, &["-f", f, "--clients", "1:4", "--ramp", "2s", "--duration", "2s"]);
    assert!(started.elapsed().as_secs_f64() >= 4.0, "ramp 2 s + hold 2 s");
    let stages = out["stages"].as_array().unwrap();
    let shape: Vec<(&str, u64)> = stages
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["clients"].as_u64().unwrap()))
        .collect();
    assert_eq!(shape, [("ramp 1", 1), ("ramp 2", 2), ("hold", 4)], "{out:#}");
    for stage in stages {
        assert!(
            stage["transactions"].as_u64().unwrap() > 0 && stage["tps"].as_f64().unwrap() > 0.0,
            "{stage}"
        );
        assert!(stage["p50_ms"].as_f64().unwrap() <= stage["p99_ms"].as_f64().unwrap());
        assert_eq!(stage["errors"], 0);
    }
    // Every client ran: the hold stage had four distinct ones, and the first ran alone first.
    let mut client = cluster.connect();
    let distinct: i64 =
        client.query_one("SELECT count(DISTINCT client) FROM seen", &[]).unwrap().get(0);
    assert_eq!(distinct, 4);
    let first: i32 =
        client.query_one("SELECT client FROM seen ORDER BY at LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(first, 0);
    let rows: i64 = client.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
    assert_eq!(rows as u64, out["transactions"].as_u64().unwrap());
    // The server counted exactly the client's calls of the probe.
    let probe = statement_row(&out, "bench_probe");
    assert_eq!(probe["line"], 3);
    assert_eq!(probe["client_calls"], probe["server_calls"], "{probe}");
    assert!(probe["client_calls"].as_u64().unwrap() > 0);
    let has_latency_view: bool = client
        .query_one("SELECT to_regclass('pitstop.query_latency') IS NOT NULL", &[])
        .unwrap()
        .get(0);
    if has_latency_view {
        assert!(probe["server_p50_ms"].is_number(), "{probe}");
    } else {
        assert!(probe["server_p50_ms"].is_null());
        assert!(
            out["server_note"].as_str().unwrap().contains("no pitstop.query_latency"),
            "{out:#}"
        );
    }
}

#[test]
fn failed_statements_are_counted_by_sqlstate_in_both_protocols() {
    let cluster = cluster();
    // Half the transactions divide by zero inside BEGIN … END; the client rolls back and goes on.
    let file = Script::new(
        "errors",
        "fails.sql",
        "\\set x random(1, 2)\nBEGIN;\nSELECT 1 / (:x - 1);\nEND;\n",
    );
    let f = file.path();
    let dsn = cluster.dsn();
    runs_failing_by_division(&dsn, f);
    // No session was left in a failed transaction.
    let idle_in_failed = scalar_i64(
        &mut cluster.connect(),
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)'",
    );
    assert_eq!(idle_in_failed, 0);
    // A bad script is refused before connecting, with file and line.
    file.write("SELECT 1;\n\\set x random(1)\n");
    let (code, _, stderr) = bench(&cluster, &["-f", f]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("{f}:2: \\set x: random() takes 2 argument(s)")), "{stderr}");
}

/// Without TLS, over a Unix socket or TCP with sslmode=disable, the clients use a socket of
/// their own (woken by readability only): a statement larger than the socket buffers goes out
/// whole, a result larger than them comes back whole, errors still count, in both protocols.
#[test]
fn a_plaintext_session_carries_more_than_the_socket_buffers_hold() {
    let cluster = cluster();
    let big = "x".repeat(4 << 20);
    let text = format!("\\set n random(1, 2)\nINSERT INTO seen(client) SELECT :client_id WHERE length('{big}') = {};\nSELECT repeat('y', 3000000 * :n) AS big_result;\nSELECT 1 / (:n - 1);\n", big.len());
    let file = Script::new("plaintext", "big.sql", &text);
    let f = file.path();
    let mut client = cluster.connect();
    let socket_dir: String = client.query_one("SHOW unix_socket_directories", &[]).unwrap().get(0);
    let unix = format!("host={socket_dir} port={} user=postgres dbname=postgres", cluster.port);
    let tcp = format!("{} sslmode=disable", cluster.dsn());
    let mut attempted = 0;
    for dsn in [&unix, &tcp] {
        attempted +=
            runs_failing_by_division(dsn, f).iter().map(|(ok, failed)| ok + failed).sum::<u64>();
    }
    // Every transaction's 4 MB statement arrived whole (its length matched: a row each).
    let rows: i64 = client.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
    assert_eq!(rows as u64, attempted);
}

#[test]
fn compare_finds_a_slower_script_and_not_an_identical_run() {
    let cluster = cluster();
    // Written by each run below.
    let file = Script::new("compare", "sleepy.sql", "");
    let baseline = file.dir.path().join("baseline.json");
    let f = file.path();
    let run = |sleep: &str, extra: &[&str]| {
        file.write(&format!("SELECT pg_sleep({sleep});\n"));
        let mut args = vec!["-f", f, "--clients", "2", "--duration", "3s", "--json"];
        args.extend_from_slice(extra);
        bench(&cluster, &args)
    };
    let (code, _, stderr) = run("0.01", &["--save", baseline.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let verdict = |stdout: &str| -> Value {
        let docs: Vec<Value> = serde_json::Deserializer::from_str(stdout)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect();
        assert!(docs[1]["test"].as_str().unwrap().contains("Mann-Whitney U"), "{:#}", docs[1]);
        docs[1]["scripts"][0].clone()
    };
    let (code, stdout, stderr) = run("0.01", &["--compare", baseline.to_str().unwrap()]);
    assert_eq!(
        (code, verdict(&stdout)["verdict"].as_str().unwrap()),
        (0, "no significant change"),
        "{stdout}\n{stderr}"
    );
    let (code, stdout, stderr) = run("0.03", &["--compare", baseline.to_str().unwrap()]);
    let slower = verdict(&stdout);
    assert_eq!((code, slower["verdict"].as_str().unwrap()), (1, "slower"), "{stdout}\n{stderr}");
    assert!(slower["median_change_pct"].as_f64().unwrap() > 100.0, "{slower}");
    assert!(slower["p_value"].as_f64().unwrap() < 0.01);
}

#[test]
fn a_rate_is_kept_and_latency_counts_from_the_scheduled_start() {
    let cluster = cluster();
    let file = Script::new("rate", "quick.sql", "SELECT 1;\n");
    let f = file.path();
    // 50 transactions a second for 2 s: 100 started, whatever the clients could do more.
    let out =
        bench_json(&cluster, &["-f", f, "--clients", "2", "--duration", "2s", "--rate", "50"]);
    let n = out["transactions"].as_u64().unwrap();
    assert!((95..=100).contains(&n), "{n} transactions at 50/s for 2 s");
    // One client that needs 200 ms a transaction, asked for 20 a second: the schedule slips
    // further behind with every transaction, and the latency says so (closed-loop timing
    // would show 200 ms throughout).
    file.write("SELECT pg_sleep(0.2);\n");
    let started = std::time::Instant::now();
    let out =
        bench_json(&cluster, &["-f", f, "--clients", "1", "--duration", "2s", "--rate", "20"]);
    // Nothing starts after the end, however far behind the schedule is (40 scheduled = 8 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    let script = &out["scripts"][0];
    assert!(script["max_ms"].as_f64().unwrap() > 1000.0, "{script}");
    assert!(script["p50_ms"].as_f64().unwrap() > 400.0, "{script}");
}

/// A DSN for the bench's own protocol loop: TCP without TLS, one host.
/// Runs `pitstop bench` on `dsn` with script `f` and no ~/.pgpass to fall back on; asserts that
/// it failed and returns its stderr.
fn bench_refused(dsn: &str, f: &str) -> String {
    let (code, stdout, stderr) = pitstop_tests::pitstop_env(
        &["bench", "--dsn", dsn, "-f", f, "--duration", "1s"],
        &[("HOME", "/nonexistent")],
    );
    assert_ne!(code, 0, "{stdout}");
    stderr
}

fn plaintext_dsn(cluster: &PgCluster, user: &str, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=disable {extra}",
        cluster.port
    )
}

/// The plaintext path authenticates as libpq does: trust, md5 and SCRAM-SHA-256 with a
/// password (from the DSN or PGPASSWORD), in both protocols; a wrong password or none is a
/// clear error.
#[test]
fn the_plaintext_path_authenticates_with_trust_md5_and_scram() {
    let cluster = PgCluster::start_with(pitstop_tests::ClusterOptions {
        settings: vec![("log_connections", "on".into())],
        ..Default::default()
    });
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN SUPERUSER PASSWORD 'md5 secret';
             SET password_encryption = 'scram-sha-256'; CREATE ROLE scramuser LOGIN SUPERUSER PASSWORD 'scram secret';",
        )
        .unwrap();
    let hba = cluster.data_dir().join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\nhost all md5user 127.0.0.1/32 md5\nhost all scramuser 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The reload is asynchronous: wait until a password is asked for.
    assert!(pitstop_tests::poll_until(std::time::Duration::from_secs(20), || {
        postgres::Client::connect(&plaintext_dsn(&cluster, "md5user", ""), postgres::NoTls).is_err()
    }));
    let file = Script::new("auth", "who.sql", "SELECT current_user AS bench_auth_probe;\n");
    let f = file.path();
    type Run<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let runs: [Run; 3] = [
        ("trust", plaintext_dsn(&cluster, "postgres", ""), vec![]),
        ("md5", plaintext_dsn(&cluster, "md5user", "password='md5 secret'"), vec![]),
        (
            "scram-sha-256",
            plaintext_dsn(&cluster, "scramuser", ""),
            vec![("PGPASSWORD", "scram secret")],
        ),
    ];
    for (method, dsn, env) in &runs {
        let mut env = env.clone();
        env.push(("HOME", "/nonexistent"));
        for protocol in [&[][..], &["--prepared"][..]] {
            let mut args = vec![
                "bench",
                "--dsn",
                dsn,
                "-f",
                f,
                "--clients",
                "2",
                "--duration",
                "1s",
                "--json",
            ];
            args.extend_from_slice(protocol);
            let (code, stdout, stderr) = pitstop_tests::pitstop_env(&args, &env);
            assert_eq!(code, 0, "{method} {protocol:?}: {stdout}\n{stderr}");
            let out: Value = serde_json::from_str(&stdout).unwrap();
            assert!(out["transactions"].as_u64().unwrap() > 0, "{method}: {out:#}");
            assert_eq!(out["errors"].as_array().unwrap().len(), 0, "{method}: {out:#}");
        }
    }
    // The server used each method (PostgreSQL logs it for password methods).
    let log = cluster.log();
    for method in ["method=md5", "method=scram-sha-256"] {
        assert!(
            log.lines().any(|l| l.contains("connection authenticated") && l.contains(method)),
            "{method} not in the log:\n{log}"
        );
    }
    // A wrong password and a missing one fail the run before it starts (the observer's session
    // is the first to connect; the protocol loop's own messages are unit-tested in wire.rs).
    let wrong = plaintext_dsn(&cluster, "scramuser", "password=wrong");
    let stderr = bench_refused(&wrong, f);
    assert!(
        stderr.contains("cannot connect to PostgreSQL")
            && stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let missing = plaintext_dsn(&cluster, "md5user", "");
    let stderr = bench_refused(&missing, f);
    assert!(
        stderr.contains("cannot connect to PostgreSQL") && stderr.contains("password"),
        "{stderr}"
    );
}

/// On the plaintext path, a statement that fails inside a transaction counts by SQLSTATE, the
/// transaction's earlier writes are rolled back, and the session goes on, in both protocols.
#[test]
fn the_plaintext_path_reports_an_error_mid_transaction_by_sqlstate_and_rolls_back() {
    let cluster = cluster();
    let file = Script::new("midtx", "midtx.sql", "\\set x random(1, 2)\nBEGIN;\nINSERT INTO seen(client) VALUES (:client_id);\nSELECT 1 / (:x - 1);\nEND;\n");
    let f = file.path();
    let dsn = plaintext_dsn(&cluster, "postgres", "");
    let committed: u64 = runs_failing_by_division(&dsn, f).iter().map(|(ok, _)| ok).sum();
    let mut client = cluster.connect();
    // Only the committed transactions' rows are there.
    let rows: i64 = client.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
    assert_eq!(rows as u64, committed);
    let aborted = scalar_i64(
        &mut client,
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)'",
    );
    assert_eq!(aborted, 0);
}

/// The server shut down under a running bench: each client stops at once and says why (the
/// server's FATAL message and its SQLSTATE), the run ends long before its duration, and the
/// report counts the lost connections.
#[test]
fn a_server_shut_down_mid_run_ends_the_run_with_a_clear_error() {
    let cluster = cluster();
    let file = Script::new("shutdown", "loop.sql", "SELECT pg_sleep(0.005);\n");
    let f = file.path();
    let dsn = plaintext_dsn(&cluster, "postgres", "");
    for protocol in [&[][..], &["--prepared"][..]] {
        let started = std::time::Instant::now();
        let child = std::process::Command::new(pitstop_tests::pitstop_bin())
            .args([
                "bench",
                "--dsn",
                &dsn,
                "-f",
                f,
                "--clients",
                "2",
                "--duration",
                "60s",
                "--json",
            ])
            .args(protocol)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until both clients are connected and running.
        let mut admin = cluster.connect();
        assert!(pitstop_tests::poll_until(std::time::Duration::from_secs(30), || {
            admin.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pitstop-bench' AND query LIKE '%pg_sleep%'", &[]).unwrap().get::<_, i64>(0) >= 2
        }));
        drop(admin);
        cluster.stop();
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "{protocol:?}: the run went on after the server stopped: {stderr}"
        );
        assert!(stderr.contains("connection lost: terminating connection due to administrator command (SQLSTATE 57P01)"), "{protocol:?}: {stderr}");
        let results: Value = serde_json::Deserializer::from_str(&stdout)
            .into_iter::<Value>()
            .next()
            .expect("a report")
            .unwrap();
        let lost: u64 = results["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["sqlstate"] == "connection lost")
            .map(|e| e["count"].as_u64().unwrap())
            .sum();
        assert_eq!(lost, 2, "{protocol:?}: {results:#}");
        cluster.start_again();
    }
}

/// The check: for statements of known duration, the client's p50/p95 and
/// pitstop.query_latency's agree, within the histogram's bound (2 %) and a round trip. The
/// round-trip allowance is generous (a loaded machine adds milliseconds); what it proves is
/// that both sides time the same statements (a 20 ms and a 60 ms one, never confused).
#[test]
fn the_clients_percentiles_agree_with_pitstop_query_latency() {
    let cluster = cluster();
    let mut client = cluster.connect();
    client.batch_execute("SELECT pitstop.query_latency_reset()").unwrap();
    let file = Script::new(
        "agree",
        "sleeps.sql",
        "SELECT pg_sleep(0.02);\nSELECT 1 FROM pg_sleep(0.06);\n",
    );
    let f = file.path();
    let dsn = plaintext_dsn(&cluster, "postgres", "");
    let (code, stdout, stderr) = pitstop(&[
        "bench",
        "--dsn",
        &dsn,
        "-f",
        f,
        "--clients",
        "2",
        "--duration",
        "3s",
        "--json",
        "--prepared",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let statements = out["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{out:#}");
    for (row, sleep_ms) in statements.iter().zip([20.0, 60.0]) {
        assert_eq!(row["client_calls"].as_i64(), row["server_calls"].as_i64(), "{row}");
        for p in ["p50", "p95"] {
            let ours = row[format!("client_{p}_ms")].as_f64().unwrap_or_else(|| panic!("{row}"));
            let server = row[format!("server_{p}_ms")]
                .as_f64()
                .unwrap_or_else(|| panic!("no server percentile: {row}\n{}", out["server_note"]));
            // The server's value: the sleep, within its histogram's 2 %.
            assert!(server >= sleep_ms * 0.98, "{p} server {server} ms < {sleep_ms} ms: {row}");
            // The client's: the server's time plus a round trip, within both histograms' bounds.
            assert!(
                ours >= server * 0.97,
                "{p}: client {ours} ms below the server's {server} ms: {row}"
            );
            assert!(
                ours <= server * 1.03 + 40.0,
                "{p}: client {ours} ms, server {server} ms: {row}"
            );
        }
    }
}

/// Review R17 finding 3: the observer reads pg_stat_statements with pitstop's own statements;
/// a relation of that name planted ahead on the user's path (here the schema named after the
/// superuser, the default path's "$user") is never read, and the server's columns are real.
#[test]
fn the_observer_reads_pg_stat_statements_where_the_extension_is_not_a_planted_view() {
    let cluster = cluster();
    let mut client = cluster.connect();
    let me: String = client.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    let schema = format!("\"{}\"", me.replace('"', "\"\""));
    client
        .batch_execute(&format!(
            "CREATE ROLE planter;
             CREATE TABLE public.planted_reads(who text);
             GRANT INSERT ON public.planted_reads TO PUBLIC;
             CREATE SCHEMA {schema} AUTHORIZATION planter;
             SET ROLE planter;
             CREATE FUNCTION {schema}.note() RETURNS bool LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.planted_reads VALUES (current_user); RETURN false; END $$;
             CREATE VIEW {schema}.pg_stat_statements AS
                 SELECT * FROM public.pg_stat_statements WHERE {schema}.note();
             RESET ROLE;"
        ))
        .unwrap();
    let file = Script::new("planted", "probe.sql", "SELECT 1 AS bench_planted_probe;\n");
    let out = bench_json(&cluster, &["-f", file.path(), "--duration", "1s"]);
    let read: i64 =
        client.query_one("SELECT count(*) FROM public.planted_reads", &[]).unwrap().get(0);
    assert_eq!(read, 0, "the planted view ran as the bench's role");
    let probe = statement_row(&out, "bench_planted_probe");
    assert!(probe["client_calls"].as_u64().unwrap() > 0, "{probe}");
    assert_eq!(probe["client_calls"], probe["server_calls"], "{probe}");
}
