//! The overview: the problems found now, each with its evidence and its fix, most urgent
//! first. `Overview::of` is a pure function of the sections read, the monitor's alerts and
//! the latest index advice.

use super::reader::{ReadError, Rows, Section, Source};
use super::{section_json, sql, Advice, Checks};
use crate::config::monitor::Severity;
pub use crate::http::dashboard::{bytes, seconds};
use crate::monitor::alerts::{Alert, Phase};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// A slow or long-running statement's text is cut to this many characters in the list.
const EVIDENCE_TEXT: usize = 300;
/// Below this many lookups the cache's hit ratio says nothing.
const CACHE_MIN_LOOKUPS: f64 = 100.0;
/// A hit ratio under this is a problem.
const CACHE_LOW_RATIO: f64 = 0.8;

pub struct Inputs {
    pub alerts: Vec<Alert>,
    pub wraparound: Section,
    pub blocking: Section,
    pub long_running: Section,
    pub slow: Section,
    /// Rows of `pitstop.regressions` (sql::REGRESSIONS).
    pub regressions: Section,
    pub vacuum: Section,
    pub settings: Section,
    pub cache: Section,
    /// Index health and bloat, read in the background.
    pub checks: Option<Checks>,
    pub advice: Option<Advice>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// `critical`, `warning` or `info`.
    pub severity: &'static str,
    /// alert, wraparound, blocking_lock, long_transaction, slow_statement, regression,
    /// missing_index, index_health, vacuum, bloat, setting, cache.
    pub category: &'static str,
    pub title: String,
    pub evidence: String,
    /// The DDL, setting or command that fixes it, when there is one.
    pub fix: Option<String>,
    /// The console page with the details.
    pub link: String,
}

/// A section that could not be read, in the words the page shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unread {
    pub section: &'static str,
    pub error: ReadError,
    pub explain: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub generated_at: f64,
    pub problems: Vec<Problem>,
    pub unread: Vec<Unread>,
    /// The index advice's age in seconds (None: not computed yet).
    pub advice_age_seconds: Option<f64>,
    /// The age of index health and bloat in seconds (None: not read yet).
    pub checks_age_seconds: Option<f64>,
    pub cache: Option<Map<String, Value>>,
}

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "warning" => 1,
        _ => 2,
    }
}

fn s<'a>(row: &'a Map<String, Value>, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or("")
}

fn f(row: &Map<String, Value>, key: &str) -> f64 {
    row.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn i(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Whether an index suggestion (a row of `suggest_indexes`) helps statement `queryid`.
pub fn helps(suggestion: &Map<String, Value>, queryid: i64) -> bool {
    suggestion.get("helped").and_then(Value::as_array).is_some_and(|helped| {
        helped.iter().any(|h| h.get("queryid").and_then(Value::as_i64) == Some(queryid))
    })
}

impl Overview {
    pub fn of(input: Inputs, now: f64) -> Overview {
        let mut problems = Vec::new();
        let mut unread = Vec::new();
        let mut rows = |name: &'static str, section: &Section| -> Rows {
            match section {
                Ok(rows) => rows.clone(),
                Err(error) => {
                    unread.push(Unread {
                        section: name,
                        error: error.clone(),
                        explain: error.explain(),
                    });
                    Vec::new()
                }
            }
        };

        for a in input.alerts.iter().filter(|a| a.phase == Phase::Firing) {
            let severity = match a.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let value = a.value.map(|v| format!("{v}")).unwrap_or_else(|| "?".into());
            problems.push(Problem {
                severity,
                category: "alert",
                title: format!("Alert {} is firing", a.rule),
                evidence: format!("{} (value {value}, threshold {})", a.summary, a.threshold),
                fix: None,
                link: "/host".into(),
            });
        }

        for r in
            rows("database_wraparound", &input.wraparound).iter().filter(|r| s(r, "status") != "ok")
        {
            let critical = s(r, "status") == "wraparound risk";
            problems.push(Problem {
                severity: if critical { "critical" } else { "warning" },
                category: "wraparound",
                title: format!("Database {}: {}", s(r, "datname"), s(r, "status")),
                evidence: format!(
                    "oldest xid is {} transactions old ({:.1} % of the way to wraparound); multixact age {}",
                    i(r, "xid_age"),
                    f(r, "wraparound_pct"),
                    i(r, "mxid_age")
                ),
                fix: Some(format!("VACUUM (FREEZE, VERBOSE) the oldest tables of {} (see Vacuum & bloat)", s(r, "datname"))),
                link: "/vacuum".into(),
            });
        }

        for r in rows("blocking_locks", &input.blocking) {
            let waited = f(&r, "waited_seconds");
            let blocker = i(&r, "blocking_pid");
            let idle = s(&r, "blocking_state").starts_with("idle in transaction");
            problems.push(Problem {
                severity: if waited >= 60.0 || idle { "critical" } else { "warning" },
                category: "blocking_lock",
                title: format!(
                    "pid {} has waited {} for {} on {}, blocked by pid {blocker}",
                    i(&r, "blocked_pid"),
                    seconds(waited),
                    s(&r, "lock_mode"),
                    if s(&r, "relation").is_empty() { s(&r, "lock_type") } else { s(&r, "relation") }
                ),
                evidence: format!(
                    "the blocker ({}, {}, transaction open {}) last ran: {}; the waiter runs: {}",
                    s(&r, "blocking_user"),
                    s(&r, "blocking_state"),
                    seconds(f(&r, "blocking_xact_seconds")),
                    clip(s(&r, "blocking_query"), EVIDENCE_TEXT),
                    clip(s(&r, "blocked_query"), EVIDENCE_TEXT),
                ),
                fix: Some(if idle {
                    format!("SELECT pg_terminate_backend({blocker});  -- idle in transaction: its transaction holds the lock")
                } else {
                    format!("SELECT pg_cancel_backend({blocker});  -- or let it finish; pg_terminate_backend({blocker}) ends the session")
                }),
                link: "/connections".into(),
            });
        }

        for r in rows("long_running", &input.long_running) {
            let xact = f(&r, "xact_seconds").max(f(&r, "duration_seconds"));
            let pid = i(&r, "pid");
            problems.push(Problem {
                severity: if xact >= 3600.0 { "critical" } else { "warning" },
                category: "long_transaction",
                title: format!("pid {pid} ({}, {}) has run {} ({})", s(&r, "username"), s(&r, "database"), seconds(xact), s(&r, "state")),
                evidence: format!(
                    "waiting on {}; statement: {}",
                    if s(&r, "wait_event").is_empty() { "nothing".to_string() } else { format!("{}/{}", s(&r, "wait_event_type"), s(&r, "wait_event")) },
                    clip(s(&r, "query"), EVIDENCE_TEXT)
                ),
                fix: Some(format!("SELECT pg_cancel_backend({pid});  -- long transactions hold back vacuum and locks")),
                link: "/connections".into(),
            });
        }

        for r in rows("slow_queries", &input.slow) {
            let queryid = i(&r, "queryid");
            problems.push(Problem {
                severity: "warning",
                category: "slow_statement",
                title: format!("Statement {queryid} ran over the slow threshold {} time(s) in the last hour (slowest {:.0} ms)", i(&r, "executions"), f(&r, "max_ms")),
                evidence: clip(s(&r, "query"), EVIDENCE_TEXT),
                fix: Some("see its captured plan and the plan advice on the statement page".into()),
                link: format!("/queries/{queryid}"),
            });
        }

        for r in rows("regressions", &input.regressions) {
            let queryid = i(&r, "queryid");
            let factor = f(&r, "mean_factor").max(f(&r, "p95_factor"));
            let p95 = match (
                r.get("p95_ms_before").and_then(Value::as_f64),
                r.get("p95_ms_now").and_then(Value::as_f64),
            ) {
                (Some(before), Some(now)) => format!(", p95 {} → {}", ms(before), ms(now)),
                _ => String::new(),
            };
            let plan = r
                .get("captured_plan")
                .filter(|p| !p.is_null())
                .map(plan_summary)
                .filter(|p| !p.is_empty());
            problems.push(Problem {
                severity: "warning",
                category: "regression",
                title: format!("Statement {queryid} ({}) got {factor:.1}× slower than in the window before", s(&r, "role")),
                evidence: format!(
                    "mean {} → {}{p95}, calls {} → {} (windows of {} ending {}): {}",
                    ms(f(&r, "mean_ms_before")),
                    ms(f(&r, "mean_ms_now")),
                    i(&r, "calls_before"),
                    i(&r, "calls_now"),
                    seconds(f(&r, "window_seconds")),
                    s(&r, "window_end"),
                    clip(s(&r, "query"), EVIDENCE_TEXT)
                ),
                fix: Some(match plan {
                    Some(plan) => format!("its latest captured plan: {plan}; compare with the statement page's history (a dropped index, stale statistics: ANALYZE)"),
                    None => "no plan captured (faster than pitstop.slow_query_ms): EXPLAIN it (pitstop report advice '<statement>') and look for a dropped index or stale statistics (ANALYZE)".into(),
                }),
                link: format!("/queries/{queryid}"),
            });
        }

        let advice_age_seconds = input.advice.as_ref().map(|a| (now - a.computed_at).max(0.0));
        if let Some(advice) = &input.advice {
            for r in rows("suggest_indexes", &advice.suggestions) {
                let saved = f(&r, "improvement_pct");
                problems.push(Problem {
                    severity: if saved >= 10.0 { "warning" } else { "info" },
                    category: "missing_index",
                    title: format!(
                        "Missing index on {}: saves {saved:.1} % of the workload's estimated time",
                        s(&r, "table_name")
                    ),
                    evidence: match r.get("estimated_bytes").and_then(Value::as_f64) {
                        Some(size) => format!(
                            "{} (helps {} statement(s); estimated size {})",
                            s(&r, "reason"),
                            i(&r, "queries_helped"),
                            bytes(size)
                        ),
                        None => format!(
                            "{} (helps {} statement(s))",
                            s(&r, "reason"),
                            i(&r, "queries_helped")
                        ),
                    },
                    fix: Some(s(&r, "ddl").to_string()),
                    link: "/indexes".into(),
                });
            }
        }

        let checks_age_seconds = input.checks.as_ref().map(|c| (now - c.computed_at).max(0.0));
        let (index_health, bloat) = match input.checks {
            Some(c) => (c.index_health, c.bloat),
            None => (Ok(Vec::new()), Ok(Vec::new())),
        };
        for r in rows("index_health", &index_health) {
            let problem = s(&r, "problem");
            let severity = match problem {
                "invalid" => "critical",
                "duplicate" | "bloated" | "missing_fk_index" => "warning",
                _ => "info",
            };
            let index = if s(&r, "index_name").is_empty() {
                s(&r, "table_name").to_string()
            } else {
                s(&r, "index_name").to_string()
            };
            problems.push(Problem {
                severity,
                category: "index_health",
                title: format!("{} index: {index}", problem.replace('_', " ")),
                evidence: format!(
                    "{} ({} on {})",
                    s(&r, "detail"),
                    bytes(f(&r, "index_bytes")),
                    s(&r, "table_name")
                ),
                fix: Some(s(&r, "fix").to_string()).filter(|f| !f.is_empty()),
                link: "/indexes".into(),
            });
        }

        for r in rows("vacuum_health", &input.vacuum) {
            let status = s(&r, "status");
            let severity = match status {
                "wraparound risk" => "critical",
                "freeze due" | "vacuum overdue" => "warning",
                _ => "info",
            };
            let last = [s(&r, "last_autovacuum"), s(&r, "last_vacuum")]
                .into_iter()
                .find(|t| !t.is_empty())
                .unwrap_or("never");
            problems.push(Problem {
                severity,
                category: "vacuum",
                title: format!("{}.{}: {status}", s(&r, "schema"), s(&r, "table_name")),
                evidence: format!(
                    "{} dead rows of {} ({:.0} %), last vacuumed {last}; xid age {}{}",
                    i(&r, "n_dead_tup"),
                    i(&r, "n_live_tup") + i(&r, "n_dead_tup"),
                    f(&r, "dead_ratio") * 100.0,
                    i(&r, "xid_age"),
                    if r.get("autovacuum_enabled") == Some(&Value::Bool(false)) {
                        "; autovacuum is disabled on it"
                    } else {
                        ""
                    }
                ),
                fix: Some(s(&r, "action").to_string()).filter(|f| !f.is_empty()),
                link: "/vacuum".into(),
            });
        }

        for r in rows("table_bloat", &bloat).iter().filter(|r| !s(r, "fix").is_empty()) {
            let name = if s(r, "index_name").is_empty() {
                format!("{}.{}", s(r, "schema"), s(r, "table_name"))
            } else {
                s(r, "index_name").to_string()
            };
            problems.push(Problem {
                severity: if f(r, "bloat_pct") >= 50.0 { "warning" } else { "info" },
                category: "bloat",
                title: format!("{} {name} is {:.0} % bloat", s(r, "kind"), f(r, "bloat_pct")),
                evidence: format!(
                    "{} of {} could be reclaimed ({})",
                    bytes(f(r, "bloat_bytes")),
                    bytes(f(r, "bytes")),
                    s(r, "method")
                ),
                fix: Some(s(r, "fix").to_string()),
                link: "/vacuum".into(),
            });
        }

        for r in rows("config_advice", &input.settings)
            .iter()
            .filter(|r| r.get("differs") == Some(&Value::Bool(true)))
        {
            let name = s(r, "name");
            let apply = if r.get("restart_required") == Some(&Value::Bool(true)) {
                "then restart PostgreSQL"
            } else {
                "SELECT pg_reload_conf();"
            };
            problems.push(Problem {
                severity: "info",
                category: "setting",
                title: format!("{name} is {}, suggested {}", s(r, "current"), s(r, "suggested")),
                evidence: s(r, "reason").to_string(),
                fix: Some(format!(
                    "ALTER SYSTEM SET {name} = '{}';  -- {apply}",
                    s(r, "suggested").replace('\'', "''")
                )),
                link: "/settings".into(),
            });
        }

        let cache = rows("cache_stats", &input.cache).into_iter().next();
        if let Some(c) = &cache {
            let lookups = f(c, "hits") + f(c, "misses") + f(c, "bypasses");
            let ratio = f(c, "hit_ratio");
            if lookups >= CACHE_MIN_LOOKUPS && ratio < CACHE_LOW_RATIO {
                problems.push(Problem {
                    severity: if ratio < 0.5 { "warning" } else { "info" },
                    category: "cache",
                    title: format!("Result cache hit ratio is {:.0} %", ratio * 100.0),
                    evidence: format!(
                        "{} hits, {} misses, {} bypasses; top bypass reasons: {}",
                        i(c, "hits"),
                        i(c, "misses"),
                        i(c, "bypasses"),
                        top_reasons(c.get("bypass_reasons"), 3)
                    ),
                    fix: Some("see docs/cache.md for each bypass reason; raise pitstop.cache_size if evictions are high".into()),
                    link: "/cache".into(),
                });
            }
        }

        // Stable: within a severity, the order above (the most telling first).
        problems.sort_by_key(|p| rank(p.severity));
        Overview {
            generated_at: now,
            problems,
            unread,
            advice_age_seconds,
            checks_age_seconds,
            cache,
        }
    }

    pub fn json(&self) -> Value {
        let unread: Map<String, Value> = self
            .unread
            .iter()
            .map(|u| (u.section.to_string(), section_json(&Err(u.error.clone()))))
            .collect();
        json!({
            "generated_at": self.generated_at,
            "problems": self.problems,
            "unread": unread,
            "advice_age_seconds": self.advice_age_seconds,
            "checks_age_seconds": self.checks_age_seconds,
            "cache": self.cache,
        })
    }
}

/// A duration in milliseconds, with precision for sub-millisecond statements.
fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2} ms")
    } else if value < 100.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

/// What a captured plan (EXPLAIN's JSON) does, in a few words: its nodes in order, each scan
/// with its relation and index ("Aggregate, Seq Scan on t").
pub fn plan_summary(plan: &Value) -> String {
    fn walk(node: &Value, out: &mut Vec<String>) {
        if out.len() >= 6 {
            return;
        }
        let Some(kind) = node.get("Node Type").and_then(Value::as_str) else { return };
        let mut text = kind.to_string();
        if let Some(index) = node.get("Index Name").and_then(Value::as_str) {
            text.push_str(&format!(" using {index}"));
        }
        if let Some(relation) = node.get("Relation Name").and_then(Value::as_str) {
            text.push_str(&format!(" on {relation}"));
        }
        out.push(text);
        for child in node.get("Plans").and_then(Value::as_array).into_iter().flatten() {
            walk(child, out);
        }
    }
    let root = match plan {
        Value::Array(items) => items.first().and_then(|p| p.get("Plan")),
        other => other.get("Plan").or(Some(other)),
    };
    let mut nodes = Vec::new();
    if let Some(root) = root {
        walk(root, &mut nodes);
    }
    nodes.join(", ")
}

/// Reads the overview's sections through `source` (the console's session or the command
/// line's connection); the alerts, index health and bloat, and the advice come from the caller.
pub async fn read(
    source: &impl Source,
    alerts: Vec<Alert>,
    checks: Option<Checks>,
    advice: Option<Advice>,
) -> Inputs {
    let workload = "mixed";
    let settings_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&workload];
    let (wraparound, blocking, long_running, slow, regressions, vacuum, settings, cache) = tokio::join!(
        source.rows(sql::WRAPAROUND, &[]),
        source.rows(sql::BLOCKING, &[]),
        source.rows(sql::LONG_RUNNING, &[]),
        source.rows(sql::SLOW_LAST_HOUR, &[]),
        source.rows(sql::REGRESSIONS, &[]),
        source.rows(sql::VACUUM_PROBLEMS, &[]),
        source.rows(sql::CONFIG_ADVICE, &settings_params),
        source.rows(sql::CACHE_STATS, &[]),
    );
    Inputs {
        alerts,
        wraparound,
        blocking,
        long_running,
        slow,
        regressions,
        vacuum,
        settings,
        cache,
        checks,
        advice,
    }
}

/// Index health and the estimated bloat (not the exact scan), read through `source`.
pub async fn checks(source: &impl Source) -> Checks {
    let started = std::time::Instant::now();
    let (index_health, bloat) =
        tokio::join!(source.rows(sql::INDEX_HEALTH, &[]), source.rows(sql::BLOAT, &[]));
    Checks {
        computed_at: crate::service::state::unix_now(),
        took_seconds: started.elapsed().as_secs_f64(),
        index_health,
        bloat,
    }
}

/// The `n` most frequent bypass reasons, "reason (count)", most first.
pub fn top_reasons(reasons: Option<&Value>, n: usize) -> String {
    let mut list: Vec<(&str, i64)> = reasons
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_i64().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect()
        })
        .unwrap_or_default();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if list.is_empty() {
        return "none".into();
    }
    list.iter().take(n).map(|(k, v)| format!("{k} ({v})")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn empty() -> Inputs {
        Inputs {
            alerts: Vec::new(),
            wraparound: Ok(vec![]),
            blocking: Ok(vec![]),
            long_running: Ok(vec![]),
            slow: Ok(vec![]),
            regressions: Ok(vec![]),
            vacuum: Ok(vec![]),
            settings: Ok(vec![]),
            cache: Ok(vec![]),
            checks: None,
            advice: None,
        }
    }

    #[test]
    fn problems_come_most_urgent_first_with_their_fix() {
        let mut input = empty();
        input.settings = Ok(vec![
            row(
                json!({"name": "work_mem", "current": "4MB", "suggested": "16MB", "reason": "r", "restart_required": false, "differs": true}),
            ),
            row(
                json!({"name": "shared_buffers", "current": "1GB", "suggested": "1GB", "reason": "r", "restart_required": true, "differs": false}),
            ),
        ]);
        input.vacuum = Ok(vec![row(
            json!({"schema": "public", "table_name": "t", "n_live_tup": 10, "n_dead_tup": 90, "dead_ratio": 0.9, "status": "vacuum overdue", "action": "VACUUM (ANALYZE) public.t", "xid_age": 5}),
        )]);
        input.blocking = Ok(vec![row(
            json!({"blocked_pid": 11, "blocking_pid": 22, "lock_mode": "AccessExclusiveLock", "lock_type": "relation", "relation": "t", "blocking_state": "idle in transaction", "waited_seconds": 3.0}),
        )]);
        input.advice = Some(Advice {
            computed_at: 100.0,
            took_seconds: 1.0,
            suggestions: Ok(vec![row(
                json!({"ddl": "CREATE INDEX CONCURRENTLY ON public.t (a)", "table_name": "public.t", "improvement_pct": 42.5, "queries_helped": 1, "helped": [{"queryid": 7}], "reason": "x"}),
            )]),
            unhelped: Ok(vec![]),
        });
        input.checks = Some(Checks {
            computed_at: 130.0,
            took_seconds: 0.1,
            index_health: Ok(vec![row(
                json!({"problem": "invalid", "index_name": "public.i", "table_name": "public.t", "index_bytes": 8192, "detail": "d", "fix": "REINDEX INDEX CONCURRENTLY public.i"}),
            )]),
            bloat: Ok(vec![]),
        });
        let o = Overview::of(input, 160.0);
        let order: Vec<_> = o.problems.iter().map(|p| (p.severity, p.category)).collect();
        assert_eq!(
            order,
            [
                ("critical", "blocking_lock"),
                ("critical", "index_health"),
                ("warning", "missing_index"),
                ("warning", "vacuum"),
                ("info", "setting")
            ]
        );
        assert_eq!(o.checks_age_seconds, Some(30.0));
        assert_eq!(o.problems[0].fix.as_deref(), Some("SELECT pg_terminate_backend(22);  -- idle in transaction: its transaction holds the lock"));
        assert_eq!(o.problems[1].fix.as_deref(), Some("REINDEX INDEX CONCURRENTLY public.i"));
        assert!(o.problems[2].title.contains("42.5 %"), "{:?}", o.problems[2]);
        assert_eq!(o.problems[2].fix.as_deref(), Some("CREATE INDEX CONCURRENTLY ON public.t (a)"));
        assert_eq!(
            o.problems[4].fix.as_deref(),
            Some("ALTER SYSTEM SET work_mem = '16MB';  -- SELECT pg_reload_conf();")
        );
        assert_eq!(o.advice_age_seconds, Some(60.0));
        assert!(o.unread.is_empty());
    }

    #[test]
    fn a_denied_section_is_reported_not_fatal() {
        let mut input = empty();
        input.vacuum = Err(ReadError {
            kind: "denied",
            sqlstate: Some("42501".into()),
            message: "permission denied for view vacuum_health".into(),
        });
        input.slow = Ok(vec![row(
            json!({"queryid": 5, "executions": 2, "max_ms": 1500.0, "query": "select pg_sleep(2)"}),
        )]);
        let o = Overview::of(input, 0.0);
        assert_eq!(o.problems.len(), 1);
        assert_eq!(o.problems[0].link, "/queries/5");
        assert_eq!(o.unread.len(), 1);
        assert_eq!(o.unread[0].section, "vacuum_health");
        assert!(
            o.unread[0].explain.contains("lacks the rights")
                && o.unread[0].explain.contains("pg_monitor"),
            "{}",
            o.unread[0].explain
        );
        assert_eq!(o.json()["unread"]["vacuum_health"]["error"]["sqlstate"], "42501");
    }

    #[test]
    fn a_low_cache_hit_ratio_names_the_top_bypass_reasons() {
        let mut input = empty();
        input.cache = Ok(vec![row(
            json!({"hits": 10, "misses": 40, "bypasses": 150, "hit_ratio": 0.05, "bypass_reasons": {"volatile": 100, "too_large": 50, "disabled": 0}}),
        )]);
        let o = Overview::of(input, 0.0);
        assert_eq!(o.problems.len(), 1);
        assert!(
            o.problems[0].evidence.ends_with("top bypass reasons: volatile (100), too_large (50)"),
            "{}",
            o.problems[0].evidence
        );
        // Too few lookups to judge.
        let mut input = empty();
        input.cache = Ok(vec![row(
            json!({"hits": 0, "misses": 5, "bypasses": 5, "hit_ratio": 0.0, "bypass_reasons": {}}),
        )]);
        assert!(Overview::of(input, 0.0).problems.is_empty());
    }

    #[test]
    fn a_regression_shows_before_and_after_and_its_plan() {
        let mut input = empty();
        let plan = json!({"Plan": {"Node Type": "Aggregate", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t"}]}});
        input.regressions = Ok(vec![
            row(
                json!({"queryid": 9, "role": "app", "query": "SELECT v FROM t WHERE id = $1", "calls_before": 20, "mean_ms_before": 0.05,
                       "p95_ms_before": 0.08, "calls_now": 25, "mean_ms_now": 12.5, "p95_ms_now": 14.0, "mean_factor": 250.0,
                       "p95_factor": 175.0, "window_seconds": 3600.0, "window_start": "a", "window_end": "2026-01-01 10:00", "captured_plan": plan}),
            ),
            row(
                json!({"queryid": 8, "role": "app", "query": "q", "calls_before": 10, "mean_ms_before": 20.0, "p95_ms_before": null,
                       "calls_now": 10, "mean_ms_now": 50.0, "p95_ms_now": null, "mean_factor": 2.5, "p95_factor": null,
                       "window_seconds": 2.0, "window_end": "e", "captured_plan": null}),
            ),
        ]);
        let o = Overview::of(input, 0.0);
        assert_eq!(o.problems.len(), 2);
        let p = &o.problems[0];
        assert_eq!(
            (p.severity, p.category, p.link.as_str()),
            ("warning", "regression", "/queries/9")
        );
        assert!(p.title.contains("250.0× slower"), "{}", p.title);
        assert!(
            p.evidence.starts_with("mean 0.05 ms → 12.5 ms, p95 0.08 ms → 14.0 ms, calls 20 → 25"),
            "{}",
            p.evidence
        );
        assert!(
            p.fix
                .as_deref()
                .unwrap()
                .starts_with("its latest captured plan: Aggregate, Seq Scan on t;"),
            "{:?}",
            p.fix
        );
        assert!(
            o.problems[1].evidence.starts_with("mean 20.0 ms → 50.0 ms, calls 10 → 10"),
            "{}",
            o.problems[1].evidence
        );
        assert!(
            o.problems[1].fix.as_deref().unwrap().starts_with("no plan captured"),
            "{:?}",
            o.problems[1].fix
        );
    }

    #[test]
    fn plan_summary_names_scans_with_their_relation_and_index() {
        let plan = json!([{"Plan": {"Node Type": "Index Scan", "Index Name": "t_pkey", "Relation Name": "t"}}]);
        assert_eq!(plan_summary(&plan), "Index Scan using t_pkey on t");
        assert_eq!(plan_summary(&json!({"nothing": 1})), "");
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("héllo wörld", 5), "héllo…");
        assert_eq!(clip("  short ", 10), "short");
    }
}
