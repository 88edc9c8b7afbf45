//! The statement list and a statement's page (its chart, captured plans as trees with the plan advice on their nodes).

use super::*;

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
    let (x0, x1) =
        points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
    let ymax = points.iter().map(|(_, y)| *y).fold(0.0, f64::max);
    let sx = |x: f64| if x1 > x0 { 4.0 + (x - x0) / (x1 - x0) * (w - 8.0) } else { w / 2.0 };
    let sy = |y: f64| if ymax > 0.0 { h - 14.0 - y / ymax * (h - 24.0) } else { h - 14.0 };
    let line: String =
        points.iter().map(|(x, y)| format!("{:.1},{:.1} ", sx(*x), sy(*y))).collect();
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
            (calls >= 0.0 && time >= 0.0)
                .then(|| (w[1].0, calls, if calls > 0.0 { time / calls } else { 0.0 }))
        })
        .collect()
}

/// The explain_advice label of a plan node: `#<preorder index> <Node Type>[ on schema.table]`.
fn node_label(id: usize, node: &Value) -> (String, String) {
    let kind = node.get("Node Type").and_then(Value::as_str).unwrap_or("?");
    let on = match (
        node.get("Schema").and_then(Value::as_str),
        node.get("Relation Name").and_then(Value::as_str),
    ) {
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

fn plan_node(
    node: &Value,
    next: &mut usize,
    advice: &[Map<String, Value>],
    placed: &mut Vec<bool>,
) -> Markup {
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
        .filter(|(_, f)| {
            finding_matches(f.get("node").and_then(Value::as_str).unwrap_or(""), id, &kind)
        })
        .map(|(i, _)| i)
        .collect();
    for i in &mine {
        placed[*i] = true;
    }
    let children: Vec<&Value> =
        node.get("Plans").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default();
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
    let helping: Vec<Map<String, Value>> = data
        .get("helping_indexes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert!(finding_matches(
            "#1 Seq Scan on \"public\".\"orders\"",
            1,
            "Seq Scan on public.orders"
        ));
        assert!(!finding_matches("#10 Seq Scan on public.orders", 1, "Seq Scan on public.orders"));
    }

    #[test]
    fn intervals_skip_counter_resets() {
        let snaps: Vec<Map<String, Value>> =
            [(3.0, 5.0, 50.0), (1.0, 0.0, 0.0), (2.0, 10.0, 20.0), (4.0, 15.0, 100.0)]
                .iter()
                .map(|(at, c, t)| {
                    json!({"at": at, "calls": c, "total_exec_time_ms": t})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect();
        // 1→2: 10 calls 2 ms each; 2→3: a reset (fewer calls), skipped; 3→4: 10 calls 5 ms each.
        assert_eq!(intervals(&snaps), vec![(2.0, 10.0, 2.0), (4.0, 10.0, 5.0)]);
        let svg = chart(&[(2.0, 10.0), (4.0, 10.0)], 100.0, 40.0, "calls").into_string();
        assert!(
            svg.contains("<polyline points=\"4.0,10.0 96.0,10.0\""),
            "the top of the plot is the maximum: {svg}"
        );
    }
}
