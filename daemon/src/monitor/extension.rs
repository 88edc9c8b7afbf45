//! The extension's signals for `/metrics`: the result cache, slow statement capture, the
//! latency table, the maintenance log, vacuum, wraparound and bloat, read through the
//! extension's SQL with the daemon's role on the monitor's schedule (a scrape never runs a
//! query). Each source is one statement under a short `statement_timeout`; a source the role
//! cannot read (or that fails) is absent from `/metrics` and counted in
//! `pitstop_extension_scrape_errors_total{source}`. Gauges are per database at most, never
//! per table or statement.

use super::sample::Sample;
use std::time::{Duration, Instant};
use tokio_postgres::SimpleQueryMessage;

/// The longest one source may run.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// One answer: rows of text values (NULL as None), in the statement's column order.
pub type Rows = Vec<Vec<Option<String>>>;

pub struct Source {
    pub name: &'static str,
    /// Read at most this often (catalog-wide views cost more than shared-memory counters).
    every: Duration,
    sql: &'static str,
    parse: fn(&Rows) -> Result<Vec<Sample>, String>,
}

const CHEAP: Duration = Duration::ZERO;
const CATALOG: Duration = Duration::from_secs(60);

pub const SOURCES: &[Source] = &[
    Source {
        name: "cache",
        every: CHEAP,
        sql: "SELECT hits, misses, fills, invalidations, stale, evictions, ttl_only_calls, entries, bytes_used, bytes_configured, bypass_reasons::text FROM pitstop.cache_stats()",
        parse: cache,
    },
    Source {
        name: "slow_queries",
        every: CHEAP,
        sql: "SELECT captured, capture_failures, dropped_busy, plans_too_large, entries, capacity FROM pitstop.slow_query_stats()",
        parse: slow_queries,
    },
    Source {
        name: "latency",
        every: CHEAP,
        sql: "SELECT statements, capacity, recorded, evictions, missed_samples, no_queryid FROM pitstop.latency_stats()",
        parse: latency,
    },
    Source {
        name: "maintenance",
        every: CHEAP,
        sql: "SELECT CASE WHEN action = 'run' THEN 'run' ELSE 'action' END, outcome, count(*), \
              extract(epoch FROM max(started_at) FILTER (WHERE action = 'run' AND outcome = 'ok')) \
              FROM pitstop.maintenance_log GROUP BY 1, 2",
        parse: maintenance,
    },
    Source {
        name: "vacuum",
        every: CATALOG,
        sql: "SELECT current_database(), status, count(*), coalesce(sum(n_dead_tup), 0), coalesce(sum(n_live_tup), 0) \
              FROM pitstop.vacuum_health GROUP BY status \
              UNION ALL SELECT current_database(), NULL, 0, 0, 0",
        parse: vacuum,
    },
    Source {
        name: "wraparound",
        every: CHEAP,
        sql: "SELECT datname, xid_age, wraparound_pct, mxid_age, mxid_wraparound_pct FROM pitstop.database_wraparound",
        parse: wraparound,
    },
    Source {
        name: "bloat",
        every: CATALOG,
        sql: "SELECT current_database(), kind, count(*), coalesce(sum(bloat_bytes), 0), coalesce(sum(bytes), 0) FROM pitstop.table_bloat GROUP BY kind \
              UNION ALL SELECT current_database(), NULL, 0, 0, 0",
        parse: bloat,
    },
];

/// What one source last gave.
#[derive(Debug, Clone, Default)]
struct Last {
    read_at: Option<Instant>,
    samples: Vec<Sample>,
    up: bool,
    errors: u64,
}

/// A source's state as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceState {
    pub name: &'static str,
    pub up: bool,
    pub errors: u64,
}

#[derive(Default)]
pub struct Reader {
    last: Vec<Last>,
}

/// Why a read stopped early: the session is unusable (no answer in time) and must be reopened.
pub struct SessionLost(pub String);

impl Reader {
    /// Reads every source that is due; a source that fails loses its samples until it works.
    pub async fn read(
        &mut self,
        client: &tokio_postgres::Client,
        timeout: Duration,
    ) -> Result<(), SessionLost> {
        self.last.resize(SOURCES.len(), Last::default());
        let timeout = timeout.min(TIMEOUT);
        for (source, last) in SOURCES.iter().zip(self.last.iter_mut()) {
            if last.up && last.read_at.is_some_and(|t| t.elapsed() < source.every) {
                continue;
            }
            // A local setting lasts the implicit transaction of this one multi-statement query:
            // the session's own timeout is back for the next statement, even after an error.
            // set_config rather than SET LOCAL, so that pg_stat_statements' record of it is
            // pitstop's own by the rule of sql/queries/own_statement.sql.
            let sql = format!(
                "SELECT pg_catalog.set_config('statement_timeout', '{}', true); {}",
                timeout.as_millis().max(1),
                source.sql
            );
            let answer = match tokio::time::timeout(
                timeout + Duration::from_secs(2),
                client.simple_query(&sql),
            )
            .await
            {
                Ok(answer) => answer,
                Err(_) => {
                    return Err(SessionLost(format!(
                        "extension source {}: no answer within {}",
                        source.name,
                        humantime::format_duration(timeout)
                    )))
                }
            };
            last.read_at = Some(Instant::now());
            let parsed = answer
                .map_err(|e| crate::db::describe_pg(&e))
                .and_then(|messages| (source.parse)(&rows(messages)));
            match parsed {
                Ok(samples) => {
                    if !last.up && last.errors > 0 {
                        tracing::info!("monitor: extension source {} is read again", source.name);
                    }
                    last.samples = samples;
                    last.up = true;
                }
                Err(e) => {
                    if last.up || last.errors == 0 {
                        tracing::warn!("monitor: cannot read extension source {} (its metrics are left out of /metrics): {e}", source.name);
                    }
                    last.samples.clear();
                    last.up = false;
                    last.errors += 1;
                }
            }
        }
        Ok(())
    }

    /// Without a session every source is down; its samples go, its error count stays.
    pub fn unreachable(&mut self) {
        for last in &mut self.last {
            last.samples.clear();
            last.up = false;
        }
    }

    /// Forgets everything (the extension is not installed: there is nothing to report).
    pub fn clear(&mut self) {
        self.last.clear();
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.last.iter().flat_map(|l| l.samples.iter().cloned()).collect()
    }

    pub fn states(&self) -> Vec<SourceState> {
        SOURCES
            .iter()
            .zip(&self.last)
            .map(|(s, l)| SourceState { name: s.name, up: l.up, errors: l.errors })
            .collect()
    }
}

/// The rows of the source's statement: those after the first statement's (set_config).
fn rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    messages
        .into_iter()
        .skip_while(|m| !matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .skip(1)
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn number(row: &[Option<String>], i: usize) -> Result<f64, String> {
    match row.get(i) {
        Some(Some(v)) => v.parse().map_err(|_| format!("column {}: {v:?} is not a number", i + 1)),
        Some(None) => Ok(0.0),
        None => Err(format!("column {} missing", i + 1)),
    }
}

fn text(row: &[Option<String>], i: usize) -> Result<String, String> {
    row.get(i).cloned().flatten().ok_or_else(|| format!("column {} is NULL or missing", i + 1))
}

fn one(rows: &Rows) -> Result<&[Option<String>], String> {
    match rows.as_slice() {
        [row] => Ok(row),
        _ => Err(format!("expected one row, got {}", rows.len())),
    }
}

/// A label value of a status or kind: lower case, words joined by `_` (`vacuum overdue`).
fn snake(value: &str) -> String {
    value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
        .to_ascii_lowercase()
}

fn cache(rows: &Rows) -> Result<Vec<Sample>, String> {
    let plain = [
        "pitstop_cache_hits_total",
        "pitstop_cache_misses_total",
        "pitstop_cache_fills_total",
        "pitstop_cache_invalidations_total",
        "pitstop_cache_stale_total",
        "pitstop_cache_evictions_total",
        "pitstop_cache_ttl_only_calls_total",
        "pitstop_cache_entries",
        "pitstop_cache_used_bytes",
        "pitstop_cache_size_bytes",
    ];
    let r = one(rows)?;
    let mut s = columns(r, &plain)?;
    let reasons: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text(r, plain.len())?).map_err(|e| format!("bypass_reasons: {e}"))?;
    // The extension reports every reason it knows (0 when none), so the series stay put.
    for (reason, n) in reasons {
        s.push(Sample::labelled(
            "pitstop_cache_bypasses_total",
            "reason",
            snake(&reason),
            n.as_f64().unwrap_or(0.0),
        ));
    }
    Ok(s)
}

/// A row whose first columns are, in order, the values of `names`.
fn columns(r: &[Option<String>], names: &[&'static str]) -> Result<Vec<Sample>, String> {
    names.iter().enumerate().map(|(i, name)| Ok(Sample::new(name, number(r, i)?))).collect()
}

fn slow_queries(rows: &Rows) -> Result<Vec<Sample>, String> {
    columns(
        one(rows)?,
        &[
            "pitstop_slow_queries_captured_total",
            "pitstop_slow_queries_capture_failures_total",
            "pitstop_slow_queries_dropped_total",
            "pitstop_slow_queries_plans_too_large_total",
            "pitstop_slow_queries_entries",
            "pitstop_slow_queries_capacity",
        ],
    )
}

fn latency(rows: &Rows) -> Result<Vec<Sample>, String> {
    columns(
        one(rows)?,
        &[
            "pitstop_latency_statements",
            "pitstop_latency_capacity",
            "pitstop_latency_recorded_total",
            "pitstop_latency_evictions_total",
            "pitstop_latency_missed_samples_total",
            "pitstop_latency_no_queryid_total",
        ],
    )
}

/// Finished outcomes (a run or action leaves `running` when it ends).
const OUTCOMES: &[&str] = &["ok", "failed", "skipped", "cancelled"];

fn maintenance(rows: &Rows) -> Result<Vec<Sample>, String> {
    let mut runs: Vec<(String, f64)> = OUTCOMES.iter().map(|o| (o.to_string(), 0.0)).collect();
    let mut actions = runs.clone();
    let (mut running, mut last_ok) = (0.0, None);
    for r in rows {
        let (what, outcome, n) = (text(r, 0)?, text(r, 1)?, number(r, 2)?);
        if outcome == "running" {
            if what == "run" {
                running += n;
            }
            continue;
        }
        let list = if what == "run" { &mut runs } else { &mut actions };
        match list.iter_mut().find(|(o, _)| *o == outcome) {
            Some(entry) => entry.1 += n,
            None => list.push((snake(&outcome), n)),
        }
        if let Some(Some(t)) = r.get(3) {
            last_ok = Some(t.parse::<f64>().map_err(|_| format!("{t:?} is not a time"))?);
        }
    }
    let mut s: Vec<Sample> = runs
        .into_iter()
        .map(|(o, n)| Sample::labelled("pitstop_maintenance_runs_total", "outcome", o, n))
        .collect();
    s.push(Sample::new("pitstop_maintenance_runs_running", running));
    s.extend(
        actions
            .into_iter()
            .map(|(o, n)| Sample::labelled("pitstop_maintenance_actions_total", "outcome", o, n)),
    );
    s.extend(last_ok.map(|t| Sample::new("pitstop_maintenance_last_success_timestamp_seconds", t)));
    Ok(s)
}

/// `vacuum_health.status` values, worst first (always shown, 0 when no table has it).
const VACUUM_STATUSES: &[&str] = &[
    "wraparound risk",
    "freeze due",
    "vacuum overdue",
    "analyze overdue",
    "autovacuum disabled",
    "ok",
];

fn per_database(
    name: &'static str,
    database: &str,
    label: &'static str,
    value: &str,
    n: f64,
) -> Sample {
    Sample {
        metric: name,
        labels: vec![("database", database.to_string()), (label, value.to_string())],
        value: n,
    }
}

fn vacuum(rows: &Rows) -> Result<Vec<Sample>, String> {
    let database = match rows.first() {
        Some(r) => text(r, 0)?,
        None => return Ok(Vec::new()),
    };
    let mut tables: Vec<(String, f64)> =
        VACUUM_STATUSES.iter().map(|st| (snake(st), 0.0)).collect();
    let (mut dead, mut live) = (0.0, 0.0);
    // The row without a status only names the database (there may be no table at all).
    for r in rows.iter().filter(|r| r.get(1).is_some_and(Option::is_some)) {
        let status = snake(&text(r, 1)?);
        let n = number(r, 2)?;
        match tables.iter_mut().find(|(st, _)| *st == status) {
            Some(entry) => entry.1 += n,
            None => tables.push((status, n)),
        }
        dead += number(r, 3)?;
        live += number(r, 4)?;
    }
    let mut s: Vec<Sample> = tables
        .into_iter()
        .map(|(st, n)| per_database("pitstop_vacuum_tables", &database, "status", &st, n))
        .collect();
    s.push(Sample::labelled("pitstop_vacuum_dead_tuples", "database", database.clone(), dead));
    s.push(Sample::labelled("pitstop_vacuum_live_tuples", "database", database, live));
    Ok(s)
}

fn wraparound(rows: &Rows) -> Result<Vec<Sample>, String> {
    let mut s = Vec::new();
    for r in rows {
        let database = text(r, 0)?;
        // Column, metric, and the divisor that turns a percentage into a ratio.
        for (column, metric, divisor) in [
            (1, "pitstop_database_xid_age", 1.0),
            (2, "pitstop_database_xid_wraparound_ratio", 100.0),
            (3, "pitstop_database_mxid_age", 1.0),
            (4, "pitstop_database_mxid_wraparound_ratio", 100.0),
        ] {
            let value = number(r, column)? / divisor;
            s.push(Sample::labelled(metric, "database", database.clone(), value));
        }
    }
    Ok(s)
}

fn bloat(rows: &Rows) -> Result<Vec<Sample>, String> {
    let mut s = Vec::new();
    let database = match rows.first() {
        Some(r) => text(r, 0)?,
        None => return Ok(s),
    };
    for kind in ["table", "index"] {
        let row = rows.iter().find(|r| r.get(1).cloned().flatten().as_deref() == Some(kind));
        let (count, bloat, size) = match row {
            Some(r) => (number(r, 2)?, number(r, 3)?, number(r, 4)?),
            None => (0.0, 0.0, 0.0),
        };
        s.push(per_database("pitstop_bloat_relations", &database, "kind", kind, count));
        s.push(per_database("pitstop_bloat_bytes", &database, "kind", kind, bloat));
        s.push(per_database("pitstop_bloat_size_bytes", &database, "kind", kind, size));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::catalog::EXTENSION_FAMILIES;
    use super::*;

    fn row(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| (*v != "NULL").then(|| v.to_string())).collect()
    }

    fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.metric == metric
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn every_source_maps_its_columns_to_catalog_families() {
        let cache_row = row(&[
            "5",
            "3",
            "2",
            "1",
            "0",
            "0",
            "0",
            "2",
            "4096",
            "67108864",
            r#"{"volatile_function": 4, "not_select": 1}"#,
        ]);
        let s = cache(&vec![cache_row]).unwrap();
        assert_eq!(value(&s, "pitstop_cache_hits_total", &[]), Some(5.0));
        assert_eq!(value(&s, "pitstop_cache_used_bytes", &[]), Some(4096.0));
        assert_eq!(value(&s, "pitstop_cache_size_bytes", &[]), Some(67108864.0));
        assert_eq!(
            value(&s, "pitstop_cache_bypasses_total", &[("reason", "volatile_function")]),
            Some(4.0)
        );

        let s = wraparound(&vec![
            row(&["app", "1000", "25.5", "10", "0"]),
            row(&["postgres", "900", "NULL", "NULL", "NULL"]),
        ])
        .unwrap();
        assert_eq!(
            value(&s, "pitstop_database_xid_wraparound_ratio", &[("database", "app")]),
            Some(0.255),
            "percent becomes a 0-1 ratio"
        );
        assert_eq!(value(&s, "pitstop_database_xid_age", &[("database", "postgres")]), Some(900.0));

        let s = vacuum(&vec![
            row(&["app", "vacuum overdue", "2", "5000", "100"]),
            row(&["app", "ok", "7", "10", "90000"]),
            row(&["app", "NULL", "0", "0", "0"]),
        ])
        .unwrap();
        assert_eq!(
            value(
                &s,
                "pitstop_vacuum_tables",
                &[("database", "app"), ("status", "vacuum_overdue")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "pitstop_vacuum_tables", &[("status", "wraparound_risk")]),
            Some(0.0),
            "every status is shown"
        );
        assert_eq!(value(&s, "pitstop_vacuum_dead_tuples", &[("database", "app")]), Some(5010.0));

        let s = maintenance(&vec![
            row(&["run", "ok", "3", "1700000000.5"]),
            row(&["run", "running", "1", "NULL"]),
            row(&["action", "failed", "2", "NULL"]),
        ])
        .unwrap();
        assert_eq!(value(&s, "pitstop_maintenance_runs_total", &[("outcome", "ok")]), Some(3.0));
        assert_eq!(
            value(&s, "pitstop_maintenance_runs_total", &[("outcome", "failed")]),
            Some(0.0)
        );
        assert!(
            !s.iter().any(|x| x.labels.iter().any(|(_, v)| v == "running")),
            "running is no counter: it leaves when the run ends"
        );
        assert_eq!(value(&s, "pitstop_maintenance_runs_running", &[]), Some(1.0));
        assert_eq!(
            value(&s, "pitstop_maintenance_actions_total", &[("outcome", "failed")]),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "pitstop_maintenance_last_success_timestamp_seconds", &[]),
            Some(1700000000.5)
        );

        let s = vacuum(&vec![row(&["empty", "NULL", "0", "0", "0"])]).unwrap();
        assert_eq!(
            value(&s, "pitstop_vacuum_tables", &[("database", "empty"), ("status", "ok")]),
            Some(0.0),
            "a database without tables has zeros"
        );
        let s = bloat(&vec![
            row(&["app", "index", "2", "8192", "65536"]),
            row(&["app", "NULL", "0", "0", "0"]),
        ])
        .unwrap();
        assert_eq!(value(&s, "pitstop_bloat_relations", &[("kind", "index")]), Some(2.0));
        assert_eq!(value(&s, "pitstop_bloat_bytes", &[("kind", "index")]), Some(8192.0));
        assert_eq!(value(&s, "pitstop_bloat_size_bytes", &[("kind", "table")]), Some(0.0));

        let all = [
            cache(&vec![row(&["1", "1", "1", "1", "1", "1", "1", "1", "1", "1", r#"{"a": 1}"#])])
                .unwrap(),
            slow_queries(&vec![row(&["1", "1", "1", "1", "1", "1"])]).unwrap(),
            latency(&vec![row(&["1", "1", "1", "1", "1", "1"])]).unwrap(),
        ]
        .concat();
        for sample in all.iter().chain(&s) {
            assert!(
                EXTENSION_FAMILIES.iter().any(|f| f.name == sample.metric),
                "{} is not in the catalog",
                sample.metric
            );
        }
        assert!(
            slow_queries(&vec![]).is_err() && cache(&vec![row(&["x"])]).is_err(),
            "a wrong answer is an error, not zeros"
        );
    }
}
