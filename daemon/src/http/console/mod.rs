//! The DBA console: read-only pages rendered on the server (`view`, maud templates that
//! escape every value) over the extension's SQL (`sql`, run by `reader` on the daemon's
//! connection settings under a short statement timeout), each page's data also as JSON under
//! `/api/<page>`. What is heavy runs in a background task (`Console::background`) on a
//! schedule and pages show it with its age: the index advice (it plans the whole workload)
//! every 10 minutes, index health and bloat (the overview's two slowest reads) every minute.

pub mod overview;
pub mod reader;
pub mod sql;
pub mod view;

use crate::config::Config;
use crate::service::state::{unix_now, State};
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reader::{ReadError, Reader, Section};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the index advice is computed again.
pub const ADVICE_INTERVAL: Duration = Duration::from_secs(600);
/// How often index health and bloat (tens of milliseconds each on the demo database, too
/// slow for every overview) are read again.
pub const CHECKS_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed computation (PostgreSQL down), try again sooner.
const RETRY: Duration = Duration::from_secs(30);
/// Longest one background statement may run.
const ADVICE_TIMEOUT: Duration = Duration::from_secs(120);

/// The index advisor's latest answer.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// Seconds since the Unix epoch when the computation finished.
    pub computed_at: f64,
    pub took_seconds: f64,
    pub suggestions: Section,
    pub unhelped: Section,
}

/// The latest index health and bloat estimates.
#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    pub computed_at: f64,
    pub took_seconds: f64,
    pub index_health: Section,
    pub bloat: Section,
}

pub struct Console {
    pub state: Arc<State>,
    pub reader: Reader,
    /// The background checks.
    advisor: Reader,
    /// The index advice in the background, and the statement page's plan advice: they plan
    /// the workload's own texts, which name tables as their roles' sessions find them.
    planner: Reader,
    page_planner: Reader,
    advice: Mutex<Option<Advice>>,
    checks: Mutex<Option<Checks>>,
}

impl Console {
    pub fn new(state: Arc<State>, config: watch::Receiver<Arc<Config>>) -> Console {
        Console {
            state,
            reader: Reader::new(config.clone(), reader::PAGE_TIMEOUT, "pitstop-console"),
            advisor: Reader::new(config.clone(), ADVICE_TIMEOUT, "pitstop-console-advisor"),
            planner: Reader::new(config.clone(), ADVICE_TIMEOUT, "pitstop-console-advisor")
                .planning_users_statements(),
            page_planner: Reader::new(config, reader::PAGE_TIMEOUT, "pitstop-console")
                .planning_users_statements(),
            advice: Mutex::new(None),
            checks: Mutex::new(None),
        }
    }

    pub fn advice(&self) -> Option<Advice> {
        self.advice.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn checks(&self) -> Option<Checks> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn compute_advice(&self) -> Advice {
        let started = std::time::Instant::now();
        let suggestions = self.planner.rows(sql::SUGGEST_INDEXES, &[]).await;
        let unhelped = self.planner.rows(sql::UNHELPED, &[]).await;
        Advice {
            computed_at: unix_now(),
            took_seconds: started.elapsed().as_secs_f64(),
            suggestions,
            unhelped,
        }
    }

    async fn compute_checks(&self) -> Checks {
        overview::checks(&self.advisor).await
    }

    /// Computes the checks and the advice now, then every `CHECKS_INTERVAL` and
    /// `ADVICE_INTERVAL` (after `RETRY` while PostgreSQL is unreachable).
    pub async fn background(self: Arc<Self>, cancel: CancellationToken) {
        let unreachable = |s: &Section| matches!(s, Err(e) if e.kind == "unavailable");
        let (mut next_checks, mut next_advice) = (Instant::now(), Instant::now());
        loop {
            if Instant::now() >= next_checks {
                let checks = tokio::select! {
                    _ = cancel.cancelled() => return,
                    checks = self.compute_checks() => checks,
                };
                next_checks = Instant::now()
                    + if unreachable(&checks.index_health) { RETRY } else { CHECKS_INTERVAL };
                *self.checks.lock().unwrap_or_else(|e| e.into_inner()) = Some(checks);
            }
            if Instant::now() >= next_advice {
                let advice = tokio::select! {
                    _ = cancel.cancelled() => return,
                    advice = self.compute_advice() => advice,
                };
                if let Err(e) = &advice.suggestions {
                    tracing::warn!("console: index advice failed: {}", e.explain());
                }
                next_advice = Instant::now()
                    + if unreachable(&advice.suggestions) { RETRY } else { ADVICE_INTERVAL };
                *self.advice.lock().unwrap_or_else(|e| e.into_inner()) = Some(advice);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next_checks.min(next_advice)) => {}
            }
        }
    }
}

pub fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview_page))
        .route("/api/overview", get(overview_api))
        .route("/queries", get(queries_page))
        .route("/api/queries", get(queries_api))
        .route("/queries/{queryid}", get(statement_page))
        .route("/api/queries/{queryid}", get(statement_api))
        .route("/indexes", get(indexes_page))
        .route("/api/indexes", get(indexes_api))
        .route("/vacuum", get(vacuum_page))
        .route("/api/vacuum", get(vacuum_api))
        .route("/settings", get(settings_page))
        .route("/api/settings", get(settings_api))
        .route("/connections", get(connections_page))
        .route("/api/connections", get(connections_api))
        .route("/cache", get(cache_page))
        .route("/api/cache", get(cache_api))
        .route("/maintenance", get(maintenance_page))
        .route("/api/maintenance", get(maintenance_api))
        .route("/api/host", get(host_api))
        .with_state(console)
        .layer(axum::middleware::map_response(security_headers))
}

/// The pages load nothing but themselves: no script, no frame, no form, inline style only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(CSP),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

type C = Shared<Arc<Console>>;

/// A page's data: named sections, in display order.
#[derive(Debug, Clone, Serialize)]
pub struct Sections {
    pub generated_at: f64,
    pub sections: Vec<(&'static str, Section)>,
}

impl Sections {
    pub fn json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, section) in &self.sections {
            map.insert((*name).to_string(), section_json(section));
        }
        json!({ "generated_at": self.generated_at, "sections": map })
    }

    pub fn get(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

/// `{"rows": [...]}` or `{"error": {...}}`.
pub fn section_json(section: &Section) -> Value {
    match section {
        Ok(rows) => json!({ "rows": rows }),
        Err(e) => {
            json!({ "error": { "kind": e.kind, "sqlstate": e.sqlstate, "message": e.message, "explain": e.explain() } })
        }
    }
}

fn advice_json(advice: &Option<Advice>) -> Value {
    match advice {
        Some(a) => json!({
            "computed_at": a.computed_at,
            "age_seconds": (unix_now() - a.computed_at).max(0.0),
            "took_seconds": a.took_seconds,
            "suggestions": section_json(&a.suggestions),
            "unhelped": section_json(&a.unhelped),
        }),
        None => Value::Null,
    }
}

// Overview.

async fn overview_data(c: &Console) -> overview::Overview {
    let data = overview::read(&c.reader, c.state.live.view().alerts, c.checks(), c.advice()).await;
    overview::Overview::of(data, unix_now())
}

async fn overview_page(Shared(c): C) -> Html<String> {
    Html(view::overview(&overview_data(&c).await).into_string())
}

async fn overview_api(Shared(c): C) -> Json<Value> {
    Json(overview_data(&c).await.json())
}

// Queries.

#[derive(Debug, Deserialize, Default)]
pub struct SortQuery {
    pub sort: Option<String>,
}

/// The query list's sort keys and their ORDER BY expressions.
pub const SORTS: &[(&str, &str, &str)] = &[
    ("total", "t.total_ms", "total time"),
    ("mean", "t.mean_ms", "mean time"),
    ("calls", "t.calls", "calls"),
    ("io", "coalesce(io.io_blocks, 0)", "blocks read (I/O)"),
];

pub fn sort_key(
    sort: Option<&str>,
) -> Result<&'static (&'static str, &'static str, &'static str), String> {
    let wanted = sort.unwrap_or("total");
    SORTS.iter().find(|(k, _, _)| *k == wanted).ok_or_else(|| {
        format!(
            "unknown sort {wanted:?}; use one of {}",
            SORTS.iter().map(|(k, _, _)| *k).collect::<Vec<_>>().join(", ")
        )
    })
}

async fn queries_data(c: &Console, sort: &'static str, order_by: &str) -> Value {
    let schema = c.reader.rows(crate::maintenance::snapshot::FIND, &[]).await;
    let rows = match schema.as_ref().map(|rows| rows.first().and_then(|r| r["schema"].as_str())) {
        Ok(Some(schema)) => c.reader.rows(&sql::top_queries(schema, order_by), &[]).await,
        Ok(None) => Err(ReadError {
            kind: "missing",
            sqlstate: None,
            message: crate::maintenance::snapshot::MISSING.into(),
        }),
        Err(e) => Err(e.clone()),
    };
    json!({ "generated_at": unix_now(), "sort": sort, "statements": section_json(&rows) })
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn queries_page(Shared(c): C, Query(q): Query<SortQuery>) -> Response {
    match sort_key(q.sort.as_deref()) {
        Ok((key, order_by, _)) => {
            Html(view::queries(&queries_data(&c, key, order_by).await).into_string())
                .into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn queries_api(Shared(c): C, Query(q): Query<SortQuery>) -> Response {
    match sort_key(q.sort.as_deref()) {
        Ok((key, order_by, _)) => Json(queries_data(&c, key, order_by).await).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn statement_data(c: &Console, queryid: i64) -> Value {
    let r = &c.reader;
    let id: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&queryid];
    let (stats, latency, snapshots, slow) = tokio::join!(
        r.rows(sql::STATEMENT, &id),
        r.rows(sql::STATEMENT_LATENCY, &id),
        r.rows(sql::STATEMENT_SNAPSHOTS, &id),
        r.rows(sql::STATEMENT_SLOW, &id),
    );
    // The plan advice of the slowest captured execution the daemon's role ran itself (planned
    // again, not run). Planning runs functions (constant folding): another role's statement is
    // never planned with the daemon's rights.
    let runs = slow.as_ref().map(Vec::as_slice).unwrap_or_default();
    let own = runs.iter().position(|row| row.get("own") == Some(&Value::Bool(true)));
    let text = own.and_then(|i| runs[i].get("query")).and_then(Value::as_str);
    let (advice, not_planned) = match text {
        Some(text) => {
            let timeout_ms = reader::PAGE_TIMEOUT.as_millis() as i32;
            match c.page_planner.rows(sql::EXPLAIN_ADVICE, &[&text, &timeout_ms]).await {
                // A statement sent with bind parameters was captured with its $n.
                Err(e) if e.sqlstate.as_deref() == Some("42P02") => (
                    Ok(Vec::new()),
                    Some("not planned here: the captured text has bind parameters ($1, …); run pitstop report advice with values in their place".to_string()),
                ),
                advice => (advice, None),
            }
        }
        None if runs.is_empty() => (Ok(Vec::new()), None),
        None => {
            let role = runs[0].get("username").and_then(Value::as_str).unwrap_or("another role");
            let why = format!(
                "not planned here: the captured executions are {role}'s, and the console plans only the daemon's own statements \
                 (planning runs functions, which must not run with the daemon's rights); as {role}, run: pitstop report advice '<statement>'"
            );
            (Ok(Vec::new()), Some(why))
        }
    };
    let helping: Vec<Value> = match c.advice().map(|a| a.suggestions) {
        Some(Ok(rows)) => {
            rows.into_iter().filter(|s| overview::helps(s, queryid)).map(Value::Object).collect()
        }
        _ => Vec::new(),
    };
    json!({
        "generated_at": unix_now(),
        "queryid": queryid,
        "statistics": section_json(&stats),
        "latency": section_json(&latency),
        "snapshots": section_json(&snapshots),
        "slow_executions": section_json(&slow),
        "explain_advice": section_json(&advice),
        "explain_advice_run": own,
        "explain_advice_not_planned": not_planned,
        "helping_indexes": helping,
        "advice_computed_at": c.advice().map(|a| a.computed_at),
    })
}

async fn statement_page(Shared(c): C, Path(queryid): Path<i64>) -> Html<String> {
    Html(view::statement(&statement_data(&c, queryid).await).into_string())
}

async fn statement_api(Shared(c): C, Path(queryid): Path<i64>) -> Json<Value> {
    Json(statement_data(&c, queryid).await)
}

// The table pages.

async fn indexes_data(c: &Console) -> Value {
    let health = c.reader.rows(sql::INDEX_HEALTH, &[]).await;
    json!({ "generated_at": unix_now(), "advice": advice_json(&c.advice()), "index_health": section_json(&health) })
}

async fn indexes_page(Shared(c): C) -> Html<String> {
    Html(view::indexes(&indexes_data(&c).await).into_string())
}

async fn indexes_api(Shared(c): C) -> Json<Value> {
    Json(indexes_data(&c).await)
}

async fn sections(c: &Console, list: &[(&'static str, &'static str)]) -> Sections {
    let futures = list.iter().map(|(_, statement)| c.reader.rows(statement, &[]));
    let results = futures_util::future::join_all(futures).await;
    Sections {
        generated_at: unix_now(),
        sections: list.iter().map(|(name, _)| *name).zip(results).collect(),
    }
}

const VACUUM: &[(&str, &str)] = &[
    ("database_wraparound", sql::WRAPAROUND),
    ("vacuum_health", sql::VACUUM_ALL),
    ("table_bloat", sql::BLOAT),
];
const CONNECTIONS: &[(&str, &str)] = &[
    ("blocking_locks", sql::BLOCKING),
    ("long_running", sql::LONG_RUNNING),
    ("connections", sql::CONNECTIONS),
];
const CACHE: &[(&str, &str)] =
    &[("cache_stats", sql::CACHE_STATS), ("cache_entries", sql::CACHE_ENTRIES)];
const MAINTENANCE: &[(&str, &str)] =
    &[("maintenance_plan", sql::MAINTENANCE_PLAN), ("maintenance_log", sql::MAINTENANCE_LOG)];

async fn vacuum_page(Shared(c): C) -> Html<String> {
    Html(view::sections_page("vacuum", &sections(&c, VACUUM).await).into_string())
}

async fn vacuum_api(Shared(c): C) -> Json<Value> {
    Json(sections(&c, VACUUM).await.json())
}

async fn connections_page(Shared(c): C) -> Html<String> {
    Html(view::sections_page("connections", &sections(&c, CONNECTIONS).await).into_string())
}

async fn connections_api(Shared(c): C) -> Json<Value> {
    Json(sections(&c, CONNECTIONS).await.json())
}

async fn cache_page(Shared(c): C) -> Html<String> {
    Html(view::sections_page("cache", &sections(&c, CACHE).await).into_string())
}

async fn cache_api(Shared(c): C) -> Json<Value> {
    Json(sections(&c, CACHE).await.json())
}

async fn maintenance_data(c: &Console) -> Value {
    let mut data = sections(c, MAINTENANCE).await.json();
    data["jobs"] = serde_json::to_value(c.state.maintenance_jobs()).unwrap_or(Value::Null);
    data
}

async fn maintenance_page(Shared(c): C) -> Html<String> {
    let s = sections(&c, MAINTENANCE).await;
    Html(view::maintenance(&s, &c.state.maintenance_jobs()).into_string())
}

async fn maintenance_api(Shared(c): C) -> Json<Value> {
    Json(maintenance_data(&c).await)
}

#[derive(Debug, Deserialize, Default)]
pub struct WorkloadQuery {
    pub workload: Option<String>,
}

pub const WORKLOADS: &[&str] = &["mixed", "web", "oltp", "dw"];

async fn settings_data(c: &Console, workload: &str) -> Sections {
    let rows = c.reader.rows(sql::CONFIG_ADVICE, &[&workload]).await;
    Sections { generated_at: unix_now(), sections: vec![("config_advice", rows)] }
}

fn workload(q: &WorkloadQuery) -> Result<&'static str, String> {
    let wanted = q.workload.as_deref().unwrap_or("mixed");
    WORKLOADS
        .iter()
        .copied()
        .find(|w| *w == wanted)
        .ok_or_else(|| format!("unknown workload {wanted:?}; use one of {}", WORKLOADS.join(", ")))
}

async fn settings_page(Shared(c): C, Query(q): Query<WorkloadQuery>) -> Response {
    match workload(&q) {
        Ok(w) => Html(view::settings(w, &settings_data(&c, w).await).into_string()).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn settings_api(Shared(c): C, Query(q): Query<WorkloadQuery>) -> Response {
    match workload(&q) {
        Ok(w) => {
            let mut data = settings_data(&c, w).await.json();
            data["workload"] = json!(w);
            Json(data).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn host_api(Shared(c): C) -> Json<Value> {
    Json(super::status_json(&c.state))
}
