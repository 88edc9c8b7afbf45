//! The results of a run: tables or JSON, the file `--save` writes, and `--compare`.

use super::run::{Collected, Shared, StatementTimes};
use super::script::Command;
use super::stats;
use crate::output::{self, Style};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Significance level of `--compare`, and the smallest change of the median it reports.
pub const ALPHA: f64 = 0.01;
pub const MIN_CHANGE: f64 = 0.10;
/// Fewer windows than this on either side: no verdict.
const MIN_WINDOWS: usize = 5;

pub const TEST_NAME: &str = "one-sided Mann-Whitney U on per-100 ms median latencies, α = 0.01, and a median change over 10 %";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        (!h.is_empty()).then(|| Percentiles {
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

#[derive(Serialize, Deserialize, Debug)]
pub struct StageResult {
    pub stage: String,
    pub clients: usize,
    pub seconds: f64,
    pub transactions: u64,
    pub tps: f64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: Option<Percentiles>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ScriptResult {
    pub script: String,
    pub weight: u32,
    pub transactions: u64,
    pub tps: f64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: Option<Percentiles>,
    /// Median latency (µs) of each 100 ms window: the samples `--compare` tests.
    pub windows_us: Vec<f64>,
    /// The whole run's histogram as (µs, count) pairs.
    pub histogram: Vec<(u64, u64)>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorRow {
    pub script: String,
    pub stage: String,
    pub sqlstate: String,
    pub count: u64,
}

/// One statement: the client's timing next to the server's.
#[derive(Serialize, Deserialize, Debug)]
pub struct StatementRow {
    pub script: String,
    pub line: usize,
    pub statement: String,
    pub client_calls: u64,
    pub client_p50_ms: Option<f64>,
    pub client_p95_ms: Option<f64>,
    pub client_p99_ms: Option<f64>,
    pub server_calls: Option<i64>,
    pub server_mean_ms: Option<f64>,
    pub server_p50_ms: Option<f64>,
    pub server_p95_ms: Option<f64>,
    pub server_p99_ms: Option<f64>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Results {
    pub format: u32,
    pub seconds: f64,
    pub transactions: u64,
    pub tps: f64,
    pub stages: Vec<StageResult>,
    pub scripts: Vec<ScriptResult>,
    pub errors: Vec<ErrorRow>,
    pub statements: Vec<StatementRow>,
    pub server_note: String,
}

/// Per script and command: (calls, p50, p95, p99) of the client-side statement time.
pub fn merge_statement_times(all: Vec<StatementTimes>) -> StatementTimes {
    let mut merged: Option<StatementTimes> = None;
    for times in all {
        match &mut merged {
            None => merged = Some(times),
            Some(m) => {
                for (ms, ts) in m.iter_mut().zip(times) {
                    for (mh, th) in ms.iter_mut().zip(ts) {
                        match (mh.as_mut(), th) {
                            (Some(a), Some(b)) => {
                                let _ = a.add(&b);
                            }
                            (None, Some(b)) => *mh = Some(b),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    merged.unwrap_or_default()
}

/// The server's view of one statement's text: pg_stat_statements calls and mean (ms), and
/// pitstop.query_latency's p50, p95, p99 (ms).
pub type ServerView<'a> = &'a dyn Fn(&str) -> (Option<i64>, Option<f64>, [Option<f64>; 3]);

pub fn build(
    shared: &Shared,
    c: &Collected,
    times: &StatementTimes,
    server: ServerView<'_>,
    server_note: String,
) -> Results {
    let errors_where = |script: Option<usize>, stage: Option<usize>| -> u64 {
        c.errors
            .iter()
            .filter(|((sc, st, _), _)| {
                script.is_none_or(|s| s == *sc) && stage.is_none_or(|s| s == *st)
            })
            .map(|(_, n)| n)
            .sum()
    };
    let stages = shared
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let mut h = super::run::histogram();
            for per_script in &c.by_script_stage {
                let _ = h.add(&per_script[i]);
            }
            let seconds = (stage.end - stage.start).as_secs_f64();
            StageResult {
                stage: stage.name.clone(),
                clients: stage.clients,
                seconds,
                transactions: h.len(),
                tps: h.len() as f64 / seconds.max(1e-9),
                errors: errors_where(None, Some(i)),
                latency: Percentiles::of(&h),
            }
        })
        .collect();
    let seconds = shared.stages.last().map_or(0.0, |s| s.end.as_secs_f64());
    let scripts: Vec<ScriptResult> = shared
        .scripts
        .iter()
        .enumerate()
        .map(|(i, script)| {
            let mut h = super::run::histogram();
            for per_stage in &c.by_script_stage[i] {
                let _ = h.add(per_stage);
            }
            ScriptResult {
                script: script.name.clone(),
                weight: script.weight,
                transactions: h.len(),
                tps: h.len() as f64 / seconds.max(1e-9),
                errors: errors_where(Some(i), None),
                latency: Percentiles::of(&h),
                windows_us: c.windows[i].clone(),
                histogram: h
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect(),
            }
        })
        .collect();
    let errors = c
        .errors
        .iter()
        .map(|((script, stage, code), count)| ErrorRow {
            script: shared.scripts[*script].name.clone(),
            stage: shared.stages[*stage].name.clone(),
            sqlstate: code.clone(),
            count: *count,
        })
        .collect();
    let mut statements = Vec::new();
    for (i, script) in shared.scripts.iter().enumerate() {
        for (j, command) in script.commands.iter().enumerate() {
            let Command::Sql(statement) = command else { continue };
            let h = times.get(i).and_then(|t| t[j].as_ref());
            let q = |q: f64| {
                h.filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(q) as f64 / 1000.0)
            };
            let (server_calls, server_mean_ms, [p50, p95, p99]) =
                server(&statement.parameterized().0);
            statements.push(StatementRow {
                script: script.name.clone(),
                line: statement.line,
                statement: statement.display(),
                client_calls: h.map_or(0, Histogram::len),
                client_p50_ms: q(0.5),
                client_p95_ms: q(0.95),
                client_p99_ms: q(0.99),
                server_calls,
                server_mean_ms,
                server_p50_ms: p50,
                server_p95_ms: p95,
                server_p99_ms: p99,
            });
        }
    }
    let transactions = scripts.iter().map(|s| s.transactions).sum();
    Results {
        format: 1,
        seconds,
        transactions,
        tps: transactions as f64 / seconds.max(1e-9),
        stages,
        scripts,
        errors,
        statements,
        server_note,
    }
}

fn rows<T: Serialize>(items: &[T], drop: &[&str]) -> Vec<Map<String, Value>> {
    items
        .iter()
        .filter_map(|item| match serde_json::to_value(item) {
            Ok(Value::Object(mut m)) => {
                for key in drop {
                    m.shift_remove(*key);
                }
                for v in m.values_mut() {
                    if let Some(f) = v.as_f64().filter(|_| v.is_f64()) {
                        *v = json!((f * 1000.0).round() / 1000.0);
                    }
                }
                Some(m)
            }
            _ => None,
        })
        .collect()
}

pub fn render(results: &Results, json: bool) -> String {
    if json {
        let mut value = serde_json::to_value(results).unwrap_or(Value::Null);
        for script in value["scripts"].as_array_mut().into_iter().flatten() {
            if let Some(m) = script.as_object_mut() {
                m.shift_remove("histogram");
                m.shift_remove("windows_us");
            }
        }
        return serde_json::to_string_pretty(&value).unwrap_or_default();
    }
    let table = |rows: Vec<Map<String, Value>>, empty: &str| {
        output::render(&rows, Style::Table { wide: false }, empty)
    };
    let mut out = format!(
        "{} transactions in {:.1} s, {:.1} tps\n\nStages\n",
        results.transactions, results.seconds, results.tps
    );
    out += &table(rows(&results.stages, &[]), "no stage");
    out += "\n\nScripts (latency of the whole script: one transaction)\n";
    out += &table(rows(&results.scripts, &["windows_us", "histogram", "weight"]), "no script");
    out += "\n\nErrors by SQLSTATE\n";
    out += &table(rows(&results.errors, &[]), "none");
    out += &format!("\n\nStatements: client time next to the server's ({})\n", results.server_note);
    out += &table(rows(&results.statements, &[]), "no statement");
    out
}

#[derive(Serialize, Debug, PartialEq)]
pub struct Verdict {
    pub script: String,
    pub baseline_p50_ms: Option<f64>,
    pub current_p50_ms: Option<f64>,
    pub baseline_p95_ms: Option<f64>,
    pub current_p95_ms: Option<f64>,
    pub median_change_pct: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: String,
}

/// Each script of `current` against the same-named script of `baseline`.
pub fn compare(baseline: &Results, current: &Results) -> Vec<Verdict> {
    current
        .scripts
        .iter()
        .map(|cur| {
            let base = baseline.scripts.iter().find(|b| b.script == cur.script);
            let p = |s: Option<&ScriptResult>, f: fn(&Percentiles) -> f64| {
                s.and_then(|s| s.latency.as_ref()).map(f)
            };
            let mut v = Verdict {
                script: cur.script.clone(),
                baseline_p50_ms: p(base, |l| l.p50_ms),
                current_p50_ms: p(Some(cur), |l| l.p50_ms),
                baseline_p95_ms: p(base, |l| l.p95_ms),
                current_p95_ms: p(Some(cur), |l| l.p95_ms),
                median_change_pct: None,
                p_value: None,
                verdict: String::new(),
            };
            let Some(base) = base else {
                v.verdict = "not in the baseline".into();
                return v;
            };
            if base.windows_us.len() < MIN_WINDOWS || cur.windows_us.len() < MIN_WINDOWS {
                v.verdict = format!("too few samples (need {MIN_WINDOWS} windows on each side)");
                return v;
            }
            let (Some(mb), Some(mc)) =
                (stats::median(&base.windows_us), stats::median(&cur.windows_us))
            else {
                unreachable!("windows are not empty")
            };
            let change = mc / mb - 1.0;
            let slower = stats::mann_whitney_greater(&base.windows_us, &cur.windows_us);
            let faster = stats::mann_whitney_greater(&cur.windows_us, &base.windows_us);
            v.median_change_pct = Some((change * 1000.0).round() / 10.0);
            v.p_value = Some(slower.min(faster));
            v.verdict = if slower < ALPHA && change > MIN_CHANGE {
                "slower".into()
            } else if faster < ALPHA && change < -MIN_CHANGE {
                "faster".into()
            } else {
                "no significant change".into()
            };
            v
        })
        .collect()
}

pub fn render_compare(verdicts: &[Verdict], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(&json!({"test": TEST_NAME, "scripts": verdicts}))
            .unwrap_or_default();
    }
    format!(
        "Compared with the baseline ({TEST_NAME})\n{}",
        output::render(&rows(verdicts, &[]), Style::Table { wide: false }, "no script")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, windows: Vec<f64>) -> Results {
        let script = ScriptResult {
            script: name.into(),
            weight: 1,
            transactions: 1,
            tps: 1.0,
            errors: 0,
            latency: None,
            windows_us: windows,
            histogram: vec![],
        };
        Results {
            format: 1,
            seconds: 1.0,
            transactions: 1,
            tps: 1.0,
            stages: vec![],
            scripts: vec![script],
            errors: vec![],
            statements: vec![],
            server_note: String::new(),
        }
    }

    #[test]
    fn compare_flags_a_clear_slowdown_only() {
        let mut rng = super::super::expr::Rng::new(5);
        let mut noisy =
            |base: f64| (0..40).map(|_| base * (1.0 + 0.05 * rng.unit())).collect::<Vec<_>>();
        let baseline = result("s", noisy(10_000.0));
        let same = result("s", noisy(10_000.0));
        let slow = result("s", noisy(30_000.0));
        let fast = result("s", noisy(5_000.0));
        assert_eq!(compare(&baseline, &same)[0].verdict, "no significant change");
        assert_eq!(compare(&baseline, &slow)[0].verdict, "slower");
        assert!(compare(&baseline, &slow)[0].median_change_pct.unwrap() > 150.0);
        assert_eq!(compare(&baseline, &fast)[0].verdict, "faster");
        // A significant but small shift (3 %) is not called slower.
        let slight = result("s", noisy(10_300.0));
        assert_eq!(compare(&baseline, &slight)[0].verdict, "no significant change");
        assert!(compare(&baseline, &result("s", vec![1.0; 3]))[0]
            .verdict
            .starts_with("too few samples"));
        assert_eq!(
            compare(&baseline, &result("other", noisy(1.0)))[0].verdict,
            "not in the baseline"
        );
    }

    #[test]
    fn saved_results_read_back() {
        let r = result("s", vec![1.5, 2.0]);
        let text = serde_json::to_string(&r).unwrap();
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back.scripts[0].windows_us, [1.5, 2.0]);
    }
}
