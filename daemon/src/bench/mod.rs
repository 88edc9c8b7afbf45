//! `pitstop bench`: a load tester on pgbench scripts, with ramp-up stages, an open-loop
//! rate, HdrHistogram percentiles, the server's view of the same statements and `--compare`.

pub mod expr;
mod progress;
mod report;
mod run;
pub mod script;
mod server;
mod socket;
mod stats;
mod wire;

use crate::db::{self, conninfo::Explicit};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Stages: --clients LO:HI --ramp R runs LO, 2·LO, 4·LO, … clients (below HI), each for an equal share of R, then holds HI clients for --duration. --clients N runs N clients for --duration.

Open loop: with --rate N, transactions are scheduled N per second on a fixed schedule and latency is measured from each transaction's scheduled start, not from when a client got to it: a stalled server makes the waiting transactions late, and that lateness counts (no coordinated omission). The clients bound how many run at once; what the schedule has not started by the end of the run is not run.

--compare FILE tests, per script, whether this run's latency is higher than the saved run's: a one-sided Mann-Whitney U test (α = 0.01) on the median latency of each 100 ms window, and the median must have moved by more than 10 %. A rank test, because latencies are skewed and heavy-tailed; windows, because single transactions in a row are not independent. Exit status 1 when a script got slower; 2 on a bad script or option."
)]
pub struct Args {
    /// A pgbench script file, with an optional weight (`-f file.sql@60`); repeatable. One run
    /// of a script is one transaction; scripts are picked at random by weight.
    #[arg(short = 'f', long = "file", value_name = "FILE[@WEIGHT]")]
    pub files: Vec<String>,
    /// One of pgbench's built-in scripts (tpcb-like, select-only), with an optional weight.
    #[arg(short = 'b', long = "builtin", value_name = "NAME[@WEIGHT]")]
    pub builtins: Vec<String>,
    /// Clients (one connection each): N, or LO:HI to ramp from LO to HI over --ramp.
    #[arg(short = 'c', long, default_value = "1", value_name = "N|LO:HI")]
    pub clients: String,
    /// How long the ramp stages last together ("30s").
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub ramp: Duration,
    /// How long the last stage (HI clients) lasts ("2m").
    #[arg(short = 'T', long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Open loop: start N transactions per second in all (see below).
    #[arg(short = 'R', long, value_name = "N")]
    pub rate: Option<f64>,
    /// Prepare each statement once per client and send the variables as parameters (pgbench's
    /// -M prepared); without it each statement goes as text in a simple query.
    #[arg(long)]
    pub prepared: bool,
    /// Set a script variable (`-D scale=10`); `:scale` defaults to pgbench_branches's row
    /// count, `:client_id` is the client's number from 0.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// Threads that run the clients.
    #[arg(short = 'j', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Write the results (with the latency samples --compare needs) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Compare with a file written by --save: which script got slower beyond noise.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// The scripts of -f and -b, parsed.
fn load_scripts(args: &Args) -> Result<Vec<script::Script>, String> {
    let mut scripts = Vec::new();
    for arg in &args.files {
        let (path, weight) = script::split_weight(arg)?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        scripts.push(script::parse(path, &text, weight)?);
    }
    for arg in &args.builtins {
        let (name, weight) = script::split_weight(arg)?;
        let text = script::builtin(name).ok_or_else(|| {
            format!("unknown built-in script \"{name}\" (tpcb-like, select-only)")
        })?;
        scripts.push(script::parse(name, text, weight)?);
    }
    if scripts.is_empty() {
        return Err("no script: give -f FILE or -b tpcb-like".into());
    }
    if scripts.iter().all(|s| s.weight == 0) {
        return Err("every script has weight 0".into());
    }
    Ok(scripts)
}

pub fn parse_clients(text: &str) -> Result<(usize, usize), String> {
    let number = |t: &str| {
        t.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("--clients: \"{t}\" is not a positive number"))
    };
    match text.split_once(':') {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(format!("--clients {text}: the first number must not be larger"));
            }
            Ok((lo, hi))
        }
        None => number(text).map(|n| (n, n)),
    }
}

fn defines(args: &Args) -> Result<expr::Vars, String> {
    let mut vars = expr::Vars::default();
    for d in &args.defines {
        let (name, value) =
            d.split_once('=').ok_or_else(|| format!("-D {d}: NAME=VALUE expected"))?;
        let value = match value.trim().parse::<i64>() {
            Ok(i) => expr::Value::Int(i),
            Err(_) => expr::Value::Double(
                value.trim().parse().map_err(|_| format!("-D {d}: the value must be a number"))?,
            ),
        };
        vars.insert(name.trim().to_string(), value);
    }
    Ok(vars)
}

pub fn command(connection: &Explicit<'_>, args: &Args, json: bool) -> ExitCode {
    let scripts = match load_scripts(args) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let (lo, hi) = match parse_clients(&args.clients) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if lo < hi && args.ramp.is_zero() {
        return fail(format!("--clients {} ramps: give --ramp", args.clients));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return fail("--rate must be a positive number");
    }
    if args.duration.is_zero() {
        return fail("--duration must be more than 0");
    }
    let baseline = match &args.compare {
        None => None,
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<report::Results>(&t).map_err(|e| e.to_string()))
        {
            Ok(b) => Some(b),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
    };
    let mut predefined = match defines(args) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    // One thread: a current-thread runtime, without the cross-thread wake-ups of a pool.
    let mut builder = if args.jobs == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.jobs > 1 {
        builder.worker_threads(usize::from(args.jobs));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let target = match db::cli_target(connection, None, &|name| std::env::var(name).ok()) {
        Ok(mut t) => {
            t.config.application_name("pitstop-bench");
            // Its sessions run the user's scripts, which name the user's tables.
            t.pin_search_path = false;
            // A load test waits for row locks as pgbench does (the CLI's 2 s bound would fail
            // contended TPC-B updates); later -c options win.
            let options =
                format!("{} -c lock_timeout=0", t.config.get_options().unwrap_or_default());
            t.config.options(options);
            t
        }
        Err(e) => return fail(format!("{e:#}")),
    };
    runtime.block_on(async move {
        // The observer runs pitstop's own statements: pinned like every other pitstop session.
        let observer_target = db::Target { pin_search_path: true, ..target.clone() };
        let observer = match db::connect(&observer_target).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let needs = |name: &str| scripts.iter().any(|s| !script::undefined_variables(s, &HashSet::new()).iter().all(|v| v != name));
        if needs("scale") && !predefined.contains_key("scale") {
            // As pgbench: the scale is the number of branches.
            // pgbench_branches is the user's name: counted with the user's search_path.
            let counted = db::with_users_search_path(&observer, async {
                Ok(observer.query_one("SELECT pg_catalog.count(*) FROM pgbench_branches", &[]).await)
            })
            .await;
            match counted {
                Err(e) => return fail(format!("{e:#}")),
                Ok(Ok(row)) => predefined.insert("scale".into(), expr::Value::Int(row.get::<_, i64>(0))),
                Ok(Err(e)) => return fail(format!(":scale is not set and pgbench_branches cannot be counted ({}); give -D scale=N", db::describe_pg(&e))),
            };
        }
        let mut known: HashSet<String> = predefined.keys().cloned().collect();
        known.insert("client_id".into());
        for s in &scripts {
            let missing = script::undefined_variables(s, &known);
            if !missing.is_empty() {
                return fail(format!("{}: variable :{} is used but never set (\\set it or give -D {}=…)", s.name, missing[0], missing[0]));
            }
        }
        let before = server::snapshot(&observer).await;
        let mut sessions = Vec::new();
        for _ in 0..hi {
            sessions.push(async {
                let mut session = run::Session::new(socket::connect(&target).await.map_err(|e| format!("{e:#}"))?);
                if args.prepared {
                    session.prepare(&scripts).await?;
                }
                Ok::<_, String>(session)
            });
        }
        let sessions = match futures_util::future::try_join_all(sessions).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stages = run::stages(lo, hi, args.ramp, args.duration);
        let total = stages.last().map_or(Duration::ZERO, |s| s.end);
        let shared = Arc::new(run::Shared::new(scripts, stages, args.rate, predefined));
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
        let (done, finished) = tokio::sync::oneshot::channel();
        let collector = tokio::spawn(run::collect(shared.clone(), receiver, t0, progress::Progress::new(total), finished));
        let clients: Vec<_> = sessions.into_iter().enumerate().map(|(id, session)| tokio::spawn(run::client(id, session, shared.clone(), t0, sender.clone()))).collect();
        drop(sender);
        let mut times = Vec::new();
        for client in clients {
            times.extend(client.await.ok());
        }
        let _ = done.send(());
        let Ok(collected) = collector.await else { return fail("the collector failed") };
        let times = report::merge_statement_times(times);
        let after = server::snapshot(&observer).await;
        let latency = server::latency(&observer).await;
        let note = match (&before, &after, &latency) {
            (Ok(Some(_)), Ok(Some(_)), Some(_)) => "server: pg_stat_statements deltas over the run; p50/p95/p99 from pitstop.query_latency, since its last reset",
            (Ok(Some(_)), Ok(Some(_)), None) => "server: pg_stat_statements deltas over the run; no pitstop.query_latency here, so no server percentiles",
            (Ok(None), _, _) => "server: pg_stat_statements is not installed in this database",
            _ => "server: pg_stat_statements could not be read",
        };
        let server_view = |text: &str| -> (Option<i64>, Option<f64>, [Option<f64>; 3]) {
            let (Ok(Some(b)), Ok(Some(a))) = (&before, &after) else { return (None, None, [None; 3]) };
            let seen = server::delta(b, a, text);
            let percentiles = seen.queryid.and_then(|q| latency.as_ref()?.get(&q).copied()).unwrap_or([None; 3]);
            (Some(seen.calls), seen.mean_ms, percentiles)
        };
        let results = report::build(&shared, &collected, &times, &server_view, note.to_string());
        println!("{}", report::render(&results, json));
        if let Some(path) = &args.save {
            let text = serde_json::to_string(&results).unwrap_or_default();
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        if let Some(baseline) = baseline {
            let verdicts = report::compare(&baseline, &results);
            println!("{}", report::render_compare(&verdicts, json));
            if verdicts.iter().any(|v| v.verdict == "slower") {
                return ExitCode::FAILURE;
            }
        }
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_n_or_a_range() {
        assert_eq!(parse_clients("8"), Ok((8, 8)));
        assert_eq!(parse_clients("1:64"), Ok((1, 64)));
        assert!(parse_clients("0").is_err());
        assert!(parse_clients("9:3").unwrap_err().contains("must not be larger"));
        assert!(parse_clients("a:3").is_err());
    }
}
