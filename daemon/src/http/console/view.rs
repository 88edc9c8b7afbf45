//! The console's HTML: maud templates (every interpolated value is escaped by the engine),
//! one layout with the navigation and inline CSS, no script and no external asset.

use super::overview::{bytes, clip, seconds, top_reasons, Overview};
use super::reader::{ReadError, Rows};
use super::{Sections, SORTS, WORKLOADS};
use crate::service::state::{unix_now, MaintenanceJob};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{Map, Value};

/// The pages, in the navigation's order: (path, label, key).
pub const PAGES: &[(&str, &str, &str)] = &[
    ("/", "Overview", "overview"),
    ("/queries", "Queries", "queries"),
    ("/indexes", "Indexes", "indexes"),
    ("/vacuum", "Vacuum & bloat", "vacuum"),
    ("/settings", "Settings", "settings"),
    ("/connections", "Connections & locks", "connections"),
    ("/cache", "Cache", "cache"),
    ("/maintenance", "Maintenance", "maintenance"),
    ("/host", "Host", "host"),
];

pub const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}\
main{padding:.6rem 1.2rem 2rem;max-width:1400px}\
h1{font-size:1.35rem;margin:.6rem 0}h2{font-size:1.05rem;margin:1.3rem 0 .4rem}\
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;width:100%}\
th,td{text-align:left;padding:.25rem .55rem;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#eef0f3;font-weight:600;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
code,pre{font:12.5px/1.4 ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}pre{background:#fff;border:1px solid #e3e6ea;padding:.5rem;margin:.3rem 0}\
.b{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;font-weight:600;color:#fff;background:#7a828c}\
.critical,.high{background:#c0392b}.warning{background:#c98a0b}.info{background:#3a6fb0}.ok{background:#2f8a4b}\
.muted{color:#6b737c}.err{background:#fdecea;border-left:4px solid #c0392b;padding:.4rem .7rem;margin:.4rem 0}\
.problem{background:#fff;border:1px solid #e3e6ea;border-radius:.4rem;padding:.5rem .8rem;margin:.5rem 0}\
.problem h3{font-size:1rem;margin:0 0 .2rem}.problem p{margin:.2rem 0}\
ul.plan,ul.plan ul{list-style:none;padding-left:1.1rem;margin:0;border-left:1px dotted #b8c0c8}ul.plan{border:0;padding-left:0}\
ul.plan li{margin:.15rem 0}.node{font-weight:600}.finding{margin:.1rem 0 .1rem .3rem}\
svg{background:#fff;border:1px solid #e3e6ea;max-width:100%;height:auto}svg polyline{fill:none;stroke:#3a6fb0;stroke-width:1.5}\
.sorts a{margin-right:.7rem}.sorts a.on{font-weight:700}footer{color:#6b737c;font-size:.9em;margin-top:1.5rem}\
@media (max-width:700px){main{padding:.4rem .5rem}th,td{padding:.2rem .3rem}body{font-size:13px}}";

/// The navigation bar's style (the Host page has its own stylesheet).
pub const NAV_CSS: &str = "nav{background:#1d2b3a;padding:.4rem 1rem;display:flex;flex-wrap:wrap;gap:.2rem .9rem;align-items:center}\
nav a{color:#cfd8e3;text-decoration:none;padding:.2rem 0}nav a.on{color:#fff;font-weight:700;border-bottom:2px solid #6fb1ff}\
nav b{color:#fff;margin-right:.6rem}";

/// The navigation bar; `active` is the current page's key.
pub fn nav(active: &str) -> Markup {
    html! {
        nav {
            b { "pitstop" }
            @for (href, label, key) in PAGES {
                a href=(href) class=[(*key == active).then_some("on")] { (label) }
            }
        }
    }
}

pub fn layout(active: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pitstop" }
                style { (PreEscaped(CSS)) (PreEscaped(NAV_CSS)) }
            }
            body {
                (nav(active))
                main {
                    h1 { (title) }
                    (body)
                    footer { "Read-only. Rendered " (chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")) " by pitstop " (env!("CARGO_PKG_VERSION")) "." }
                }
            }
        }
    }
}

fn badge(class: &str) -> Markup {
    html! { span class={ "b " (class) } { (class) } }
}

fn error_box(e: &ReadError) -> Markup {
    html! { div class="err" { (e.explain()) } }
}

fn age_of(computed_at: f64) -> String {
    seconds(unix_now() - computed_at)
}

/// How a column's values are shown.
#[derive(Clone, Copy)]
pub enum Fmt {
    Text,
    /// Text cut to a few hundred characters.
    Clip,
    Code,
    Num,
    /// Two decimals.
    Ms,
    Bytes,
    /// Already a percentage.
    Pct,
    /// A 0–1 ratio shown as a percentage.
    Ratio,
    Secs,
}

pub struct Col(pub &'static str, pub &'static str, pub Fmt);

fn cell(value: Option<&Value>, fmt: Fmt) -> Markup {
    let v = match value {
        None | Some(Value::Null) => return html! { td { span class="muted" { "–" } } },
        Some(v) => v,
    };
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let num = v.as_f64();
    match (fmt, num) {
        (Fmt::Num, Some(x)) => html! { td class="n" { (if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.2}") }) } },
        (Fmt::Ms, Some(x)) => html! { td class="n" { (format!("{x:.2}")) } },
        (Fmt::Bytes, Some(x)) => html! { td class="n" { (bytes(x)) } },
        (Fmt::Pct, Some(x)) => html! { td class="n" { (format!("{x:.1} %")) } },
        (Fmt::Ratio, Some(x)) => html! { td class="n" { (format!("{:.1} %", x * 100.0)) } },
        (Fmt::Secs, Some(x)) => html! { td class="n" { (seconds(x)) } },
        (Fmt::Code, _) => html! { td { code { (text) } } },
        (Fmt::Clip, _) => html! { td { code { (clip(&text, 300)) } } },
        _ => html! { td { (text) } },
    }
}

pub fn table(rows: &[Map<String, Value>], cols: &[Col]) -> Markup {
    html! {
        div class="scroll" {
            table {
                thead { tr { @for c in cols { th { (c.1) } } } }
                tbody {
                    @for r in rows {
                        tr { @for c in cols { (cell(r.get(c.0), c.2)) } }
                    }
                }
            }
        }
    }
}

/// A section: its table, "nothing" text when empty, or why it could not be read.
fn section(title: &str, data: Option<&Result<Rows, ReadError>>, cols: &[Col], empty: &str) -> Markup {
    html! {
        h2 { (title) }
        @match data {
            Some(Ok(rows)) if rows.is_empty() => p class="muted" { (empty) },
            Some(Ok(rows)) => (table(rows, cols)),
            Some(Err(e)) => (error_box(e)),
            None => p class="muted" { "not read" },
        }
    }
}

/// A section given as `{"rows": [...]}` or `{"error": {...}}` (the API's form).
fn json_section(title: &str, data: &Value, cols: &[Col], empty: &str) -> Markup {
    let parsed: Option<Result<Rows, ReadError>> = if let Some(rows) = data.get("rows").and_then(Value::as_array) {
        Some(Ok(rows.iter().filter_map(|r| r.as_object().cloned()).collect()))
    } else {
        data.get("error").map(|e| {
            Err(ReadError {
                kind: match e.get("kind").and_then(Value::as_str) {
                    Some("denied") => "denied",
                    Some("missing") => "missing",
                    Some("unavailable") => "unavailable",
                    _ => "failed",
                },
                sqlstate: e.get("sqlstate").and_then(Value::as_str).map(String::from),
                message: e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            })
        })
    };
    section(title, parsed.as_ref(), cols, empty)
}

fn json_rows(data: &Value) -> Vec<Map<String, Value>> {
    data.get("rows").and_then(Value::as_array).map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect()).unwrap_or_default()
}

// Pages.

pub fn overview(o: &Overview) -> Markup {
    let count = |sev: &str| o.problems.iter().filter(|p| p.severity == sev).count();
    let body = html! {
        p {
            (badge("critical")) " " (count("critical")) " · " (badge("warning")) " " (count("warning")) " · " (badge("info")) " " (count("info"))
            span class="muted" {
                " · index advice "
                @match o.advice_age_seconds { Some(age) => { "computed " (seconds(age)) " ago" }, None => "not computed yet (it runs in the background)" }
                " · index health and bloat "
                @match o.checks_age_seconds { Some(age) => { "read " (seconds(age)) " ago" }, None => "not read yet" }
            }
        }
        @for u in &o.unread {
            div class="err" { b { (u.section) ": " } (u.explain) }
        }
        @if o.problems.is_empty() {
            p { "No problems found now." }
        }
        @for p in &o.problems {
            div class="problem" {
                h3 { (badge(p.severity)) " " (p.title) }
                p class="muted" { (p.evidence) }
                @if let Some(fix) = &p.fix { p { "Fix: " code { (fix) } } }
                p { a href=(p.link) { "details" } span class="muted" { " · " (p.category.replace('_', " ")) } }
            }
        }
        @if let Some(c) = &o.cache {
            h2 { "Result cache" }
            p {
                "Hit ratio " b { (format!("{:.1} %", c.get("hit_ratio").and_then(Value::as_f64).unwrap_or(0.0) * 100.0)) }
                " · top bypass reasons: " (top_reasons(c.get("bypass_reasons"), 3))
                " · " a href="/cache" { "cache" }
            }
        }
    };
    layout("overview", "Overview: problems found now", body)
}

pub fn queries(data: &Value) -> Markup {
    let sort = data.get("sort").and_then(Value::as_str).unwrap_or("total");
    let rows = json_rows(&data["statements"]);
    let body = html! {
        p class="sorts" {
            "Sort by: "
            @for (key, _, label) in SORTS {
                a href={ "/queries?sort=" (key) } class=[(*key == sort).then_some("on")] { (label) }
            }
        }
        @if let Some(e) = data["statements"].get("error") {
            div class="err" { (e.get("explain").and_then(Value::as_str).unwrap_or("")) }
        } @else if rows.is_empty() {
            p class="muted" { "pg_stat_statements has no statement for this database yet." }
        } @else {
            div class="scroll" {
                table {
                    thead { tr { th { "statement" } th { "role" } th { "calls" } th { "total ms" } th { "mean ms" } th { "max ms" } th { "% of total" } th { "hit %" } th { "blocks read" } } }
                    tbody {
                        @for r in &rows {
                            @let id = r.get("queryid").and_then(Value::as_i64).unwrap_or(0);
                            tr {
                                td { a href={ "/queries/" (id) } { code { (clip(r.get("query").and_then(Value::as_str).unwrap_or(""), 160)) } } }
                                (cell(r.get("username"), Fmt::Text))
                                (cell(r.get("calls"), Fmt::Num))
                                (cell(r.get("total_ms"), Fmt::Ms))
                                (cell(r.get("mean_ms"), Fmt::Ms))
                                (cell(r.get("max_ms"), Fmt::Ms))
                                (cell(r.get("pct_total_time"), Fmt::Pct))
                                (cell(r.get("shared_hit_pct"), Fmt::Pct))
                                (cell(r.get("io_blocks"), Fmt::Num))
                            }
                        }
                    }
                }
            }
        }
    };
    layout("queries", "Queries", body)
}

/// Points for a chart: (x, y) pairs, oldest first, drawn as a polyline in a `w`×`h` box.
pub fn chart(points: &[(f64, f64)], w: f64, h: f64, label: &str) -> Markup {
    let (x0, x1) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
    let ymax = points.iter().map(|(_, y)| *y).fold(0.0, f64::max);
    let sx = |x: f64| if x1 > x0 { 4.0 + (x - x0) / (x1 - x0) * (w - 8.0) } else { w / 2.0 };
    let sy = |y: f64| if ymax > 0.0 { h - 14.0 - y / ymax * (h - 24.0) } else { h - 14.0 };
    let line: String = points.iter().map(|(x, y)| format!("{:.1},{:.1} ", sx(*x), sy(*y))).collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            text x="4" y="11" font-size="10" fill="#555" { (label) " (max " (format!("{ymax:.2}")) ")" }
            polyline points=(line.trim_end()) {}
        }
    }
}

/// Per interval between consecutive snapshots: (time, calls, mean ms); intervals across a
/// counter reset (fewer calls than before) are skipped.
pub fn intervals(snapshots: &[Map<String, Value>]) -> Vec<(f64, f64, f64)> {
    let mut points: Vec<(f64, f64, f64)> = snapshots
        .iter()
        .map(|r| {
            let g = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            (g("at"), g("calls"), g("total_exec_time_ms"))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
        .windows(2)
        .filter_map(|w| {
            let calls = w[1].1 - w[0].1;
            let time = w[1].2 - w[0].2;
            (calls >= 0.0 && time >= 0.0).then(|| (w[1].0, calls, if calls > 0.0 { time / calls } else { 0.0 }))
        })
        .collect()
}

/// The explain_advice label of a plan node: `#<preorder index> <Node Type>[ on schema.table]`.
fn node_label(id: usize, node: &Value) -> (String, String) {
    let kind = node.get("Node Type").and_then(Value::as_str).unwrap_or("?");
    let on = match (node.get("Schema").and_then(Value::as_str), node.get("Relation Name").and_then(Value::as_str)) {
        (Some(s), Some(r)) => format!(" on {s}.{r}"),
        (None, Some(r)) => format!(" on {r}"),
        _ => String::new(),
    };
    (format!("#{id} "), format!("{kind}{on}"))
}

/// Whether a finding's `node` names the node with preorder index `id` and kind `kind`
/// (identifiers may be quoted in the finding).
fn finding_matches(finding_node: &str, id: usize, kind: &str) -> bool {
    let prefix = format!("#{id} ");
    finding_node.strip_prefix(&prefix).is_some_and(|rest| rest.replace('"', "") == kind)
}

/// A captured plan as a tree; each finding of `advice` sits on the node it names.
pub fn plan_tree(plan: &Value, advice: &[Map<String, Value>], placed: &mut Vec<bool>) -> Markup {
    let root = match plan {
        Value::Array(items) => items.first().and_then(|p| p.get("Plan")),
        Value::Object(_) => plan.get("Plan"),
        _ => None,
    };
    let Some(root) = root else {
        return html! { p class="muted" { "no plan captured" } };
    };
    let mut next = 0usize;
    html! { ul class="plan" { (plan_node(root, &mut next, advice, placed)) } }
}

fn plan_node(node: &Value, next: &mut usize, advice: &[Map<String, Value>], placed: &mut Vec<bool>) -> Markup {
    let id = *next;
    *next += 1;
    let (prefix, kind) = node_label(id, node);
    let n = |k: &str| node.get(k).and_then(Value::as_f64);
    let mut facts = Vec::new();
    if let Some(c) = n("Total Cost") {
        facts.push(format!("cost {c:.1}"));
    }
    if let Some(r) = n("Plan Rows") {
        facts.push(format!("est. rows {r:.0}"));
    }
    if let Some(r) = n("Actual Rows") {
        facts.push(format!("actual rows {r:.0} × {} loops", n("Actual Loops").unwrap_or(1.0)));
    }
    if let Some(t) = n("Actual Total Time") {
        facts.push(format!("{t:.2} ms"));
    }
    let detail = ["Index Name", "Filter", "Index Cond", "Hash Cond", "Join Filter", "Sort Key"]
        .iter()
        .filter_map(|k| {
            let v = node.get(*k)?;
            Some(format!("{k}: {}", v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
        })
        .collect::<Vec<_>>();
    let mine: Vec<usize> = advice
        .iter()
        .enumerate()
        .filter(|(_, f)| finding_matches(f.get("node").and_then(Value::as_str).unwrap_or(""), id, &kind))
        .map(|(i, _)| i)
        .collect();
    for i in &mine {
        placed[*i] = true;
    }
    let children: Vec<&Value> = node.get("Plans").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default();
    html! {
        li {
            span class="muted" { (prefix) } span class="node" { (kind) } " " span class="muted" { (facts.join(" · ")) }
            @for d in &detail { br; code class="muted" { (d) } }
            @for i in &mine { (finding(&advice[*i])) }
            @if !children.is_empty() {
                ul { @for c in children { (plan_node(c, next, advice, placed)) } }
            }
        }
    }
}

fn finding(f: &Map<String, Value>) -> Markup {
    let g = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    html! {
        div class="finding" {
            (badge(&g("severity"))) " " b { (g("finding")) } " " (g("detail"))
            @if !g("suggestion").is_empty() { br; "Fix: " code { (g("suggestion")) } }
        }
    }
}

pub fn statement(data: &Value) -> Markup {
    let queryid = data.get("queryid").and_then(Value::as_i64).unwrap_or(0);
    let stats = json_rows(&data["statistics"]);
    let slow = json_rows(&data["slow_executions"]);
    let advice = json_rows(&data["explain_advice"]);
    let text = stats
        .first()
        .or(slow.first())
        .and_then(|r| r.get("query"))
        .and_then(Value::as_str)
        .unwrap_or("(not in pg_stat_statements nor in the slow-query capture)");
    let series = intervals(&json_rows(&data["snapshots"]));
    let mut placed = vec![false; advice.len()];
    let helping: Vec<Map<String, Value>> =
        data.get("helping_indexes").and_then(Value::as_array).map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect()).unwrap_or_default();
    let body = html! {
        pre { (text) }
        (json_section("Statistics (pg_stat_statements, per role)", &data["statistics"], &[
            Col("username", "role", Fmt::Text), Col("calls", "calls", Fmt::Num), Col("total_ms", "total ms", Fmt::Ms),
            Col("mean_ms", "mean ms", Fmt::Ms), Col("stddev_ms", "stddev ms", Fmt::Ms), Col("max_ms", "max ms", Fmt::Ms),
            Col("rows", "rows", Fmt::Num), Col("shared_hit_pct", "hit %", Fmt::Pct), Col("pct_total_time", "% of total", Fmt::Pct),
        ], "Not in pg_stat_statements (reset, or another database)."))
        (json_section("Latency percentiles (pitstop.query_latency)", &data["latency"], &[
            Col("username", "role", Fmt::Text), Col("calls", "calls", Fmt::Num), Col("p50", "p50 ms", Fmt::Ms), Col("p90", "p90 ms", Fmt::Ms),
            Col("p95", "p95 ms", Fmt::Ms), Col("p99", "p99 ms", Fmt::Ms), Col("max", "max ms", Fmt::Ms),
        ], "No latency histogram (needs the preload)."))
        h2 { "Over the snapshots (pitstop.query_snapshots)" }
        @if series.is_empty() {
            p class="muted" { "Fewer than two snapshots of this statement (the daemon's snapshot job writes one per run)." }
        } @else {
            p {
                (chart(&series.iter().map(|(t, c, _)| (*t, *c)).collect::<Vec<_>>(), 360.0, 90.0, "calls per interval")) " "
                (chart(&series.iter().map(|(t, _, m)| (*t, *m)).collect::<Vec<_>>(), 360.0, 90.0, "mean ms per interval"))
            }
        }
        h2 { "Captured slow executions (pitstop.slow_queries)" }
        @if let Some(e) = data["slow_executions"].get("error") {
            div class="err" { (e.get("explain").and_then(Value::as_str).unwrap_or("")) }
        } @else if slow.is_empty() {
            p class="muted" { "None captured (statements over pitstop.slow_query_ms are)." }
        }
        @for (n, run) in slow.iter().enumerate() {
            @let g = |k: &str| run.get(k).map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).unwrap_or_default();
            h3 { (g("started_at")) ": " (format!("{:.1}", run.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0))) " ms, " (g("rows")) " rows, by " (g("username")) }
            @if Some(n as u64) == data.get("explain_advice_run").and_then(Value::as_u64) {
                @let tree = plan_tree(run.get("plan").unwrap_or(&Value::Null), &advice, &mut placed);
                (tree)
            } @else {
                (plan_tree(run.get("plan").unwrap_or(&Value::Null), &[], &mut Vec::new()))
            }
        }
        @if let Some(why) = data.get("explain_advice_not_planned").and_then(Value::as_str) {
            h2 { "Plan advice" }
            p class="muted" { "Plan advice " (why) }
        } @else if let Some(e) = data["explain_advice"].get("error") {
            h2 { "Plan advice" }
            div class="err" { (e.get("explain").and_then(Value::as_str).unwrap_or("")) }
        } @else if placed.iter().any(|p| !p) {
            h2 { "Plan advice (pitstop.explain_advice) on nodes the captured plan does not have" }
            @for (i, f) in advice.iter().enumerate() {
                @if !placed[i] { div { code { (f.get("node").and_then(Value::as_str).unwrap_or("")) } (finding(f)) } }
            }
        }
        h2 { "Indexes that would help it (pitstop.suggest_indexes)" }
        @if helping.is_empty() {
            p class="muted" {
                @match data.get("advice_computed_at").and_then(Value::as_f64) {
                    Some(at) => { "None in the index advice computed " (age_of(at)) " ago." },
                    None => "The index advice is not computed yet.",
                }
            }
        } @else {
            (table(&helping, &[Col("ddl", "DDL", Fmt::Code), Col("improvement_pct", "workload saved", Fmt::Pct), Col("reason", "why", Fmt::Text)]))
        }
    };
    layout("queries", &format!("Statement {queryid}"), body)
}

pub fn indexes(data: &Value) -> Markup {
    let advice = &data["advice"];
    let body = html! {
        @if advice.is_null() {
            h2 { "Suggested indexes" }
            p class="muted" { "The index advice is computed in the background and is not ready yet." }
        } @else {
            p class="muted" {
                "Index advice computed " (seconds(advice["age_seconds"].as_f64().unwrap_or(0.0))) " ago in "
                (format!("{:.1}", advice["took_seconds"].as_f64().unwrap_or(0.0))) " s (planner estimates over the top statements; recomputed every "
                (super::ADVICE_INTERVAL.as_secs() / 60) " min)."
            }
            (json_section("Suggested indexes (pitstop.suggest_indexes)", &advice["suggestions"], &[
                Col("rank", "#", Fmt::Num), Col("ddl", "DDL", Fmt::Code), Col("improvement_pct", "workload saved", Fmt::Pct),
                Col("queries_helped", "statements helped", Fmt::Num), Col("estimated_bytes", "size", Fmt::Bytes),
                Col("write_cost", "write cost", Fmt::Num), Col("reason", "why", Fmt::Text),
            ], "No index would lower the workload's cost enough."))
            (json_section("Statements no index helps (pitstop.unhelped_queries)", &advice["unhelped"], &[
                Col("queryid", "queryid", Fmt::Num), Col("query", "statement", Fmt::Clip), Col("calls", "calls", Fmt::Num),
                Col("role", "role", Fmt::Text), Col("reason", "why", Fmt::Text),
            ], "Every statement is helped or needs no index."))
        }
        (json_section("Index health (pitstop.index_health)", &data["index_health"], &[
            Col("problem", "problem", Fmt::Text), Col("index_name", "index", Fmt::Text), Col("table_name", "table", Fmt::Text),
            Col("index_bytes", "size", Fmt::Bytes), Col("detail", "detail", Fmt::Text), Col("fix", "fix", Fmt::Code),
        ], "No unused, invalid, duplicate or bloated index; every foreign key has an index."))
    };
    layout("indexes", "Indexes", body)
}

/// A page of plain sections (Vacuum & bloat, Connections & locks, Cache).
pub fn sections_page(page: &str, s: &Sections) -> Markup {
    let body = match page {
        "vacuum" => html! {
            (section("Wraparound (pitstop.database_wraparound)", s.get("database_wraparound"), &[
                Col("datname", "database", Fmt::Text), Col("xid_age", "xid age", Fmt::Num), Col("wraparound_pct", "to wraparound", Fmt::Pct),
                Col("mxid_age", "multixact age", Fmt::Num), Col("status", "status", Fmt::Text),
            ], "No database."))
            (section("Tables (pitstop.vacuum_health), problems first", s.get("vacuum_health"), &[
                Col("schema", "schema", Fmt::Text), Col("table_name", "table", Fmt::Text), Col("status", "status", Fmt::Text),
                Col("n_live_tup", "live", Fmt::Num), Col("n_dead_tup", "dead", Fmt::Num), Col("dead_ratio", "dead %", Fmt::Ratio),
                Col("last_autovacuum", "last autovacuum", Fmt::Text), Col("last_autoanalyze", "last autoanalyze", Fmt::Text),
                Col("xid_age", "xid age", Fmt::Num), Col("action", "fix", Fmt::Code),
            ], "No user table."))
            (section("Bloat (pitstop.table_bloat, estimated)", s.get("table_bloat"), &[
                Col("kind", "kind", Fmt::Text), Col("schema", "schema", Fmt::Text), Col("table_name", "table", Fmt::Text),
                Col("index_name", "index", Fmt::Text), Col("bytes", "size", Fmt::Bytes), Col("bloat_bytes", "bloat", Fmt::Bytes),
                Col("bloat_pct", "bloat %", Fmt::Pct), Col("fix", "fix", Fmt::Code),
            ], "No bloat worth fixing."))
        },
        "connections" => html! {
            (section("Blocking locks (pitstop.blocking_locks)", s.get("blocking_locks"), &[
                Col("blocked_pid", "waiting pid", Fmt::Num), Col("blocked_user", "waiting role", Fmt::Text), Col("blocked_query", "waiting statement", Fmt::Clip),
                Col("lock_mode", "lock", Fmt::Text), Col("relation", "relation", Fmt::Text), Col("waited_seconds", "waited", Fmt::Secs),
                Col("blocking_pid", "blocking pid", Fmt::Num), Col("blocking_state", "blocker state", Fmt::Text), Col("blocking_query", "blocker's statement", Fmt::Clip),
            ], "No session waits for a lock another holds."))
            (section("Long-running statements and transactions (pitstop.long_running, 1 min+)", s.get("long_running"), &[
                Col("pid", "pid", Fmt::Num), Col("username", "role", Fmt::Text), Col("database", "database", Fmt::Text), Col("state", "state", Fmt::Text),
                Col("duration_seconds", "statement", Fmt::Secs), Col("xact_seconds", "transaction", Fmt::Secs),
                Col("wait_event", "waiting on", Fmt::Text), Col("query", "statement", Fmt::Clip),
            ], "Nothing has run for a minute or more."))
            (section("Connections (pitstop.connections)", s.get("connections"), &[
                Col("database", "database", Fmt::Text), Col("username", "role", Fmt::Text), Col("application_name", "application", Fmt::Text),
                Col("client_addr", "client", Fmt::Text), Col("state", "state", Fmt::Text), Col("connections", "connections", Fmt::Num),
                Col("pct_of_max", "% of max", Fmt::Pct), Col("longest_in_state_seconds", "longest in state", Fmt::Secs),
                Col("longest_transaction_seconds", "longest transaction", Fmt::Secs),
            ], "No client connection."))
        },
        _ => html! {
            @if let Some(Ok(stats)) = s.get("cache_stats") {
                @if let Some(c) = stats.first() {
                    p { "Top bypass reasons: " (top_reasons(c.get("bypass_reasons"), 5)) }
                }
            }
            (section("Statistics since the server started (pitstop.cache_stats)", s.get("cache_stats"), &[
                Col("hits", "hits", Fmt::Num), Col("misses", "misses", Fmt::Num), Col("fills", "fills", Fmt::Num),
                Col("bypasses", "bypasses", Fmt::Num), Col("invalidations", "invalidations", Fmt::Num), Col("evictions", "evictions", Fmt::Num),
                Col("entries", "entries", Fmt::Num), Col("bytes_used", "used", Fmt::Bytes), Col("bytes_configured", "size", Fmt::Bytes),
                Col("hit_ratio", "hit ratio", Fmt::Ratio),
            ], "No statistics."))
            (section("Entries, most hits first (pitstop.cache_entries)", s.get("cache_entries"), &[
                Col("query", "query", Fmt::Clip), Col("role", "role", Fmt::Text), Col("relations", "reads", Fmt::Text),
                Col("bytes", "size", Fmt::Bytes), Col("hits", "hits", Fmt::Num), Col("age_seconds", "age", Fmt::Secs), Col("fresh", "fresh", Fmt::Text),
            ], "The cache is empty."))
        },
    };
    let title = PAGES.iter().find(|(_, _, k)| *k == page).map(|(_, l, _)| *l).unwrap_or("pitstop");
    layout(page, title, body)
}

pub fn settings(workload: &str, s: &Sections) -> Markup {
    let body = html! {
        p class="sorts" {
            "Workload: "
            @for w in WORKLOADS { a href={ "/settings?workload=" (w) } class=[(*w == workload).then_some("on")] { (w) } }
        }
        (section("Settings (pitstop.config_advice), differing first", s.get("config_advice"), &[
            Col("name", "setting", Fmt::Code), Col("current", "current", Fmt::Text), Col("suggested", "suggested", Fmt::Text),
            Col("differs", "differs", Fmt::Text), Col("restart_required", "restart", Fmt::Text), Col("reason", "why", Fmt::Text),
        ], "No advice."))
        p class="muted" { "Apply with ALTER SYSTEM SET name = 'suggested'; then SELECT pg_reload_conf(); (or a restart where marked)." }
    };
    layout("settings", "Settings", body)
}

pub fn maintenance(s: &Sections, jobs: &[MaintenanceJob]) -> Markup {
    let body = html! {
        h2 { "Jobs of this daemon" }
        @if jobs.is_empty() {
            p class="muted" { "No maintenance job is configured." }
        } @else {
            div class="scroll" { table {
                thead { tr { th { "job" } th { "kind" } th { "schedule" } th { "enabled" } th { "next run" } th { "last run" } } }
                tbody { @for j in jobs { tr {
                    td { (j.name) } td { (j.kind) } td { code { (j.schedule) } } td { (j.enabled) }
                    td { (j.next_run.as_deref().unwrap_or("–")) }
                    td { @if let Some(r) = &j.last_run { (r.started_at) " " (badge(&r.outcome)) " " (r.detail) } @else { "–" } }
                } } }
            } }
        }
        (section("What a run would do now (pitstop.maintenance_plan)", s.get("maintenance_plan"), &[
            Col("priority", "priority", Fmt::Num), Col("action", "action", Fmt::Text), Col("target", "target", Fmt::Text),
            Col("command", "command", Fmt::Code), Col("reason", "why", Fmt::Text),
        ], "Nothing to do."))
        (section("Log (pitstop.maintenance_log), newest first", s.get("maintenance_log"), &[
            Col("started_at", "started", Fmt::Text), Col("job", "job", Fmt::Text), Col("action", "action", Fmt::Text), Col("target", "target", Fmt::Text),
            Col("outcome", "outcome", Fmt::Text), Col("duration_ms", "ms", Fmt::Ms), Col("command", "command", Fmt::Code), Col("error", "error", Fmt::Text),
        ], "No maintenance has run."))
    };
    layout("maintenance", "Maintenance", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_escaped_by_the_engine() {
        let rows = vec![json!({"query": "<script>alert(1)</script>", "n": 3}).as_object().unwrap().clone()];
        let html = table(&rows, &[Col("query", "q", Fmt::Clip), Col("n", "n", Fmt::Num)]).into_string();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn findings_sit_on_the_node_they_name() {
        let plan = json!([{"Plan": {"Node Type": "Aggregate", "Total Cost": 10.0, "Plans": [
            {"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "orders", "Filter": "(customer_id = 42)", "Plan Rows": 5.0}
        ]}}]);
        let advice = vec![json!({"finding": "seq_scan_selective_filter", "node": "#1 Seq Scan on public.orders", "severity": "high",
                                 "detail": "reads 100000 rows", "suggestion": "CREATE INDEX ON public.orders (customer_id)"}).as_object().unwrap().clone(),
                          json!({"finding": "missing_statistics", "node": "#7 Seq Scan on public.gone", "severity": "info", "detail": "", "suggestion": ""}).as_object().unwrap().clone()];
        let mut placed = vec![false; 2];
        let html = plan_tree(&plan, &advice, &mut placed).into_string();
        assert_eq!(placed, [true, false]);
        let scan = html.find("Seq Scan on public.orders").expect(&html);
        let found = html.find("seq_scan_selective_filter").expect(&html);
        assert!(found > scan, "the finding follows its node:\n{html}");
        assert!(html.contains("Filter: (customer_id = 42)"), "{html}");
        // A quoted identifier in the finding still matches.
        assert!(finding_matches("#1 Seq Scan on \"public\".\"orders\"", 1, "Seq Scan on public.orders"));
        assert!(!finding_matches("#10 Seq Scan on public.orders", 1, "Seq Scan on public.orders"));
    }

    #[test]
    fn intervals_skip_counter_resets() {
        let snaps: Vec<Map<String, Value>> = [(3.0, 5.0, 50.0), (1.0, 0.0, 0.0), (2.0, 10.0, 20.0), (4.0, 15.0, 100.0)]
            .iter()
            .map(|(at, c, t)| json!({"at": at, "calls": c, "total_exec_time_ms": t}).as_object().unwrap().clone())
            .collect();
        // 1→2: 10 calls 2 ms each; 2→3: a reset (fewer calls), skipped; 3→4: 10 calls 5 ms each.
        assert_eq!(intervals(&snaps), vec![(2.0, 10.0, 2.0), (4.0, 10.0, 5.0)]);
        let svg = chart(&[(2.0, 10.0), (4.0, 10.0)], 100.0, 40.0, "calls").into_string();
        assert!(svg.contains("<polyline points=\"4.0,10.0 96.0,10.0\""), "the top of the plot is the maximum: {svg}");
    }
}
