//! Load generator and probes for `bench/relay.sh` (not a test).
//!
//! `relay_load latency --dsn DSN --redis URL --rate 1000 --seconds 30 --writers 8 --tables 40`
//!   Writers commit single-row `INSERT INTO bench_w<N>` (each table tracked, so each has its
//!   own tag; writer w takes tables w, w + writers, … in turn, so a table is written every
//!   tables/rate seconds) on an even open-loop schedule. Before each commit the writer
//!   registers a fresh key under the table's tag (SET + SADD); Redis keyspace notifications
//!   tell when the relay deleted it. Prints latency percentiles from COMMIT sent and from
//!   COMMIT acknowledged to key gone.
//!
//! `relay_load drain --metrics-port PORT --rows N [--timeout-s 600]`
//!   Polls the /metrics of a daemon started with a backlog of N rows until its
//!   pitstop_relay_delivered_total reaches N; prints the delivery rate after the first
//!   observed delivery.

use postgres::{Client, NoTls};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn required(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| panic!("missing {name}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("latency") => latency(&args),
        Some("drain") => drain(&args),
        _ => {
            eprintln!("usage: relay_load latency|drain …");
            std::process::exit(2);
        }
    }
}

struct Sample {
    sent: Instant,
    acked: Instant,
}

fn latency(args: &[String]) {
    let dsn = required(args, "--dsn");
    let redis_url = required(args, "--redis");
    let rate: f64 = required(args, "--rate").parse().unwrap();
    let seconds: f64 = required(args, "--seconds").parse().unwrap();
    let writers: usize = arg(args, "--writers").map(|w| w.parse().unwrap()).unwrap_or(8);
    let tables: usize = arg(args, "--tables").map(|t| t.parse().unwrap()).unwrap_or(writers);
    assert!(
        tables >= writers && tables.is_multiple_of(writers),
        "--tables must be a multiple of --writers"
    );
    let database = arg(args, "--database").unwrap_or_else(|| "postgres".into());

    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut admin = redis.get_connection().unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Kg")
        .exec(&mut admin)
        .unwrap();

    // Deletions, timed as they are announced.
    let events = pitstop_tests::Subscriber::start(&redis_url, "__keyspace@0__:bench:k:*");

    let start = Instant::now() + Duration::from_millis(200);
    let per_writer = (rate * seconds / writers as f64).round() as usize;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (dsn, redis, database) = (dsn.clone(), redis.clone(), database.clone());
            std::thread::spawn(move || {
                let mut pg = Client::connect(&dsn, NoTls).unwrap();
                let mine: Vec<usize> = (w..tables).step_by(writers).collect();
                let inserts: Vec<_> = mine
                    .iter()
                    .map(|t| pg.prepare(&format!("INSERT INTO bench_w{t} VALUES ($1)")).unwrap())
                    .collect();
                let tag_keys: Vec<String> = mine
                    .iter()
                    .map(|t| format!("pitstop:tag:{database}.public.bench_w{t}"))
                    .collect();
                let mut r = redis.get_connection().unwrap();
                let mut samples = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let (insert, tag_key) = (&inserts[i % mine.len()], &tag_keys[i % mine.len()]);
                    let due = start + Duration::from_secs_f64((i * writers + w) as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let key = format!("bench:k:{w}:{i}");
                    redis::pipe()
                        .set(&key, 1)
                        .ignore()
                        .sadd(tag_key, &key)
                        .ignore()
                        .exec(&mut r)
                        .unwrap();
                    let sent = Instant::now();
                    pg.execute(insert, &[&(i as i32)]).unwrap();
                    samples.push((key, Sample { sent, acked: Instant::now() }));
                }
                samples
            })
        })
        .collect();
    let samples: Vec<(String, Sample)> =
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let finished = Instant::now();
    // Give the last invalidations time to arrive.
    let deletions =
        |events: &[pitstop_tests::Received]| events.iter().filter(|e| e.payload == "del").count();
    let events = events.wait(Duration::from_secs(5), |e| deletions(e) >= samples.len());
    let mut gone: HashMap<&str, Instant> = HashMap::new();
    for e in events.iter().filter(|e| e.payload == "del") {
        gone.entry(e.channel.trim_start_matches("__keyspace@0__:")).or_insert(e.at);
    }
    let mut from_sent = Vec::new();
    let mut from_acked = Vec::new();
    let (mut missing, mut early) = (0, 0);
    for (key, s) in &samples {
        match gone.get(key.as_str()) {
            None => missing += 1,
            Some(at) if *at < s.sent => early += 1,
            Some(at) => {
                from_sent.push(at.duration_since(s.sent));
                from_acked.push(at.saturating_duration_since(s.acked));
            }
        }
    }
    let achieved = samples.len() as f64 / finished.duration_since(start).as_secs_f64();
    println!("commits: {} in {:.1}s ({achieved:.0}/s, {writers} writers, {tables} tables); keys never deleted: {missing}; deleted before the commit was sent: {early}", samples.len(), finished.duration_since(start).as_secs_f64());
    print_percentiles("commit sent  -> key gone", &mut from_sent);
    print_percentiles("commit acked -> key gone", &mut from_acked);
}

fn print_percentiles(label: &str, values: &mut [Duration]) {
    if values.is_empty() {
        println!("{label}: no samples");
        return;
    }
    values.sort();
    let at =
        |q: f64| values[((values.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{label}: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (n={})",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0),
        values.len()
    );
}

fn delivered(port: u16) -> Option<f64> {
    let (_, body) = pitstop_tests::http_get(port, "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with("pitstop_relay_delivered_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn drain(args: &[String]) {
    let port: u16 = required(args, "--metrics-port").parse().unwrap();
    let rows: f64 = required(args, "--rows").parse().unwrap();
    let timeout =
        Duration::from_secs(arg(args, "--timeout-s").map(|t| t.parse().unwrap()).unwrap_or(600));
    let began = Instant::now();
    // The daemon was just started: its counter began at zero with the backlog.
    let base = 0.0;
    // Timed from the first observed delivery: the rate counts the rows delivered after it.
    let mut first: Option<(Instant, f64)> = None;
    loop {
        let now = delivered(port).unwrap_or(base);
        if now > base && first.is_none() {
            first = Some((Instant::now(), now));
        }
        if now - base >= rows {
            let (at, from) = first.unwrap_or((Instant::now(), now));
            let elapsed = at.elapsed().as_secs_f64().max(1e-3);
            println!("delivered {:.0} rows in {elapsed:.2}s after the first batch: {:.0} invalidations/s", now - from, (now - from) / elapsed);
            return;
        }
        assert!(
            began.elapsed() < timeout,
            "only {} of {rows} rows delivered within {timeout:?}",
            now - base
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
