//! `pitstop bench` on a real cluster: ramp stages, errors by SQLSTATE, the server's view of
//! the statements, and --save/--compare.

use pitstop_tests::{pitstop, PgCluster};
use serde_json::Value;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pitstop-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

fn cluster() -> PgCluster {
    let cluster = PgCluster::start();
    cluster.connect().batch_execute("CREATE EXTENSION pitstop; CREATE EXTENSION pg_stat_statements; CREATE TABLE seen(client int, at timestamptz DEFAULT clock_timestamp())").unwrap();
    cluster
}

#[test]
fn a_ramp_reports_each_stage_with_its_clients_and_the_servers_view() {
    let cluster = cluster();
    let dir = scratch("ramp");
    let script = dir.join("probe.sql");
    std::fs::write(&script, "\\set pause random(0, 1)\nINSERT INTO seen(client) VALUES (:client_id);\nSELECT :pause AS bench_probe;\n").unwrap();
    let f = script.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = bench_json(&cluster, &["-f", f, "--clients", "1:4", "--ramp", "2s", "--duration", "2s"]);
    assert!(started.elapsed().as_secs_f64() >= 4.0, "ramp 2 s + hold 2 s");
    let stages = out["stages"].as_array().unwrap();
    let shape: Vec<(&str, u64)> = stages.iter().map(|s| (s["stage"].as_str().unwrap(), s["clients"].as_u64().unwrap())).collect();
    assert_eq!(shape, [("ramp 1", 1), ("ramp 2", 2), ("hold", 4)], "{out:#}");
    for stage in stages {
        assert!(stage["transactions"].as_u64().unwrap() > 0 && stage["tps"].as_f64().unwrap() > 0.0, "{stage}");
        assert!(stage["p50_ms"].as_f64().unwrap() <= stage["p99_ms"].as_f64().unwrap());
        assert_eq!(stage["errors"], 0);
    }
    // Every client ran: the hold stage had four distinct ones, and the first ran alone first.
    let mut client = cluster.connect();
    let distinct: i64 = client.query_one("SELECT count(DISTINCT client) FROM seen", &[]).unwrap().get(0);
    assert_eq!(distinct, 4);
    let first: i32 = client.query_one("SELECT client FROM seen ORDER BY at LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(first, 0);
    let rows: i64 = client.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
    assert_eq!(rows as u64, out["transactions"].as_u64().unwrap());
    // The server counted exactly the client's calls of the probe.
    let probe = out["statements"].as_array().unwrap().iter().find(|s| s["statement"].as_str().unwrap().contains("bench_probe")).expect("probe row");
    assert_eq!(probe["line"], 3);
    assert_eq!(probe["client_calls"], probe["server_calls"], "{probe}");
    assert!(probe["client_calls"].as_u64().unwrap() > 0);
    let has_latency_view: bool = client.query_one("SELECT to_regclass('pitstop.query_latency') IS NOT NULL", &[]).unwrap().get(0);
    if has_latency_view {
        assert!(probe["server_p50_ms"].is_number(), "{probe}");
    } else {
        assert!(probe["server_p50_ms"].is_null());
        assert!(out["server_note"].as_str().unwrap().contains("no pitstop.query_latency"), "{out:#}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn failed_statements_are_counted_by_sqlstate_in_both_protocols() {
    let cluster = cluster();
    let dir = scratch("errors");
    let script = dir.join("fails.sql");
    // Half the transactions divide by zero inside BEGIN … END; the client rolls back and goes on.
    std::fs::write(&script, "\\set x random(1, 2)\nBEGIN;\nSELECT 1 / (:x - 1);\nEND;\n").unwrap();
    let f = script.to_str().unwrap();
    for protocol in [&[][..], &["--prepared"][..]] {
        let mut args = vec!["-f", f, "--clients", "2", "--duration", "1s"];
        args.extend_from_slice(protocol);
        let out = bench_json(&cluster, &args);
        let errors = out["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{protocol:?}: {out:#}");
        assert_eq!(errors[0]["sqlstate"], "22012");
        let (failed, ok) = (errors[0]["count"].as_u64().unwrap(), out["transactions"].as_u64().unwrap());
        assert!(failed > 0 && ok > 0, "{protocol:?}: {failed} failed, {ok} ok");
        assert_eq!(out["scripts"][0]["errors"].as_u64().unwrap(), failed);
    }
    // No session was left in a failed transaction.
    let idle_in_failed: i64 = cluster.connect().query_one("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)'", &[]).unwrap().get(0);
    assert_eq!(idle_in_failed, 0);
    // A bad script is refused before connecting, with file and line.
    std::fs::write(&script, "SELECT 1;\n\\set x random(1)\n").unwrap();
    let (code, _, stderr) = bench(&cluster, &["-f", f]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("{f}:2: \\set x: random() takes 2 argument(s)")), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Without TLS, over a Unix socket or TCP with sslmode=disable, the clients use a socket of
/// their own (woken by readability only): a statement larger than the socket buffers goes out
/// whole, a result larger than them comes back whole, errors still count, in both protocols.
#[test]
fn a_plaintext_session_carries_more_than_the_socket_buffers_hold() {
    let cluster = cluster();
    let dir = scratch("plaintext");
    let script = dir.join("big.sql");
    let big = "x".repeat(4 << 20);
    let text = format!("\\set n random(1, 2)\nINSERT INTO seen(client) SELECT :client_id WHERE length('{big}') = {};\nSELECT repeat('y', 3000000 * :n) AS big_result;\nSELECT 1 / (:n - 1);\n", big.len());
    std::fs::write(&script, text).unwrap();
    let f = script.to_str().unwrap();
    let mut client = cluster.connect();
    let socket_dir: String = client.query_one("SHOW unix_socket_directories", &[]).unwrap().get(0);
    let unix = format!("host={socket_dir} port={} user=postgres dbname=postgres", cluster.port);
    let tcp = format!("{} sslmode=disable", cluster.dsn());
    let mut attempted = 0;
    for dsn in [&unix, &tcp] {
        for protocol in [&[][..], &["--prepared"][..]] {
            let mut args = vec!["bench", "--dsn", dsn, "-f", f, "--clients", "2", "--duration", "1s", "--json"];
            args.extend_from_slice(protocol);
            let (code, stdout, stderr) = pitstop(&args);
            assert_eq!(code, 0, "{dsn} {protocol:?}: {stdout}\n{stderr}");
            let out: Value = serde_json::from_str(&stdout).unwrap();
            let ok = out["transactions"].as_u64().unwrap();
            let errors = out["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{dsn} {protocol:?}: {out:#}");
            assert_eq!(errors[0]["sqlstate"], "22012");
            let failed = errors[0]["count"].as_u64().unwrap();
            assert!(ok > 0 && failed > 0, "{dsn} {protocol:?}: {ok} ok, {failed} failed");
            attempted += ok + failed;
        }
    }
    // Every transaction's 4 MB statement arrived whole (its length matched: a row each).
    let rows: i64 = client.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
    assert_eq!(rows as u64, attempted);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_finds_a_slower_script_and_not_an_identical_run() {
    let cluster = cluster();
    let dir = scratch("compare");
    let script = dir.join("sleepy.sql");
    let baseline = dir.join("baseline.json");
    let f = script.to_str().unwrap();
    let run = |sleep: &str, extra: &[&str]| {
        std::fs::write(&script, format!("SELECT pg_sleep({sleep});\n")).unwrap();
        let mut args = vec!["-f", f, "--clients", "2", "--duration", "3s", "--json"];
        args.extend_from_slice(extra);
        bench(&cluster, &args)
    };
    let (code, _, stderr) = run("0.01", &["--save", baseline.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let verdict = |stdout: &str| -> Value {
        let docs: Vec<Value> = serde_json::Deserializer::from_str(stdout).into_iter::<Value>().map(Result::unwrap).collect();
        assert!(docs[1]["test"].as_str().unwrap().contains("Mann-Whitney U"), "{:#}", docs[1]);
        docs[1]["scripts"][0].clone()
    };
    let (code, stdout, stderr) = run("0.01", &["--compare", baseline.to_str().unwrap()]);
    assert_eq!((code, verdict(&stdout)["verdict"].as_str().unwrap()), (0, "no significant change"), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = run("0.03", &["--compare", baseline.to_str().unwrap()]);
    let slower = verdict(&stdout);
    assert_eq!((code, slower["verdict"].as_str().unwrap()), (1, "slower"), "{stdout}\n{stderr}");
    assert!(slower["median_change_pct"].as_f64().unwrap() > 100.0, "{slower}");
    assert!(slower["p_value"].as_f64().unwrap() < 0.01);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_rate_is_kept_and_latency_counts_from_the_scheduled_start() {
    let cluster = cluster();
    let dir = scratch("rate");
    let script = dir.join("quick.sql");
    std::fs::write(&script, "SELECT 1;\n").unwrap();
    let f = script.to_str().unwrap();
    // 50 transactions a second for 2 s: 100 started, whatever the clients could do more.
    let out = bench_json(&cluster, &["-f", f, "--clients", "2", "--duration", "2s", "--rate", "50"]);
    let n = out["transactions"].as_u64().unwrap();
    assert!((95..=100).contains(&n), "{n} transactions at 50/s for 2 s");
    // One client that needs 200 ms a transaction, asked for 20 a second: the schedule slips
    // further behind with every transaction, and the latency says so (closed-loop timing
    // would show 200 ms throughout).
    std::fs::write(&script, "SELECT pg_sleep(0.2);\n").unwrap();
    let started = std::time::Instant::now();
    let out = bench_json(&cluster, &["-f", f, "--clients", "1", "--duration", "2s", "--rate", "20"]);
    // Nothing starts after the end, however far behind the schedule is (40 scheduled = 8 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    let script = &out["scripts"][0];
    assert!(script["max_ms"].as_f64().unwrap() > 1000.0, "{script}");
    assert!(script["p50_ms"].as_f64().unwrap() > 400.0, "{script}");
    let _ = std::fs::remove_dir_all(dir);
}
