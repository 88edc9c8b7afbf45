//! The overview page: the problems found now, most urgent first.

use super::*;

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
