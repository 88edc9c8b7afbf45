//! The console's HTML: maud templates (every interpolated value is escaped by the engine),
//! one layout with the navigation and inline CSS, no script and no external asset. The pages
//! are in one file each: `overview`, `queries` (the list and a statement's page) and `tables`
//! (indexes, vacuum, connections, cache, settings, maintenance).

use super::overview::{bytes, clip, seconds, top_reasons, Overview};
use super::reader::{ReadError, Rows};
use super::{Sections, SORTS, WORKLOADS};
use crate::service::state::{unix_now, MaintenanceJob};
use maud::{html, Markup, PreEscaped, DOCTYPE};

mod overview;
mod queries;
mod tables;

pub use overview::overview;
pub use queries::{queries, statement};
use serde_json::{Map, Value};
pub use tables::{indexes, maintenance, sections_page, settings};

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
        (Fmt::Num, Some(x)) => {
            html! { td class="n" { (if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.2}") }) } }
        }
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
fn section(
    title: &str,
    data: Option<&Result<Rows, ReadError>>,
    cols: &[Col],
    empty: &str,
) -> Markup {
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
    let parsed: Option<Result<Rows, ReadError>> =
        if let Some(rows) = data.get("rows").and_then(Value::as_array) {
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
    data.get("rows")
        .and_then(Value::as_array)
        .map(|rows| rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_escaped_by_the_engine() {
        let rows = vec![json!({"query": "<script>alert(1)</script>", "n": 3})
            .as_object()
            .unwrap()
            .clone()];
        let html =
            table(&rows, &[Col("query", "q", Fmt::Clip), Col("n", "n", Fmt::Num)]).into_string();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
    }
}
