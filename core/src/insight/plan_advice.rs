//! Findings from an EXPLAIN (FORMAT JSON, VERBOSE [, ANALYZE]) plan. Pure logic over the
//! plan JSON plus a few facts about the relations, so it is unit-tested without Postgres; the
//! extension's `insight/explain_advice.rs` runs EXPLAIN and reads the facts.

use crate::ident::quote_ident;
use serde_json::Value;
use std::collections::HashMap;

/// The EXPLAIN options the advice reads: VERBOSE names each relation's schema; with `analyze`
/// the actual rows, loops and buffers.
pub fn explain_options(analyze: bool) -> &'static str {
    if analyze {
        "VERBOSE, ANALYZE, BUFFERS"
    } else {
        "VERBOSE"
    }
}

/// A table with at least this many rows is worth an index for a selective filter.
const LARGE_TABLE_ROWS: f64 = 10_000.0;
/// A filter keeping at most this share of the rows is selective.
const SELECTIVE_FRACTION: f64 = 0.05;
/// Estimates off by more than this factor (either way) are misestimates…
const MISESTIMATE_FACTOR: f64 = 10.0;
/// …when at least this many rows are involved (tiny counts are noise).
const MISESTIMATE_MIN_ROWS: f64 = 100.0;
/// A nested loop whose inner side runs at least this many times.
const NESTED_LOOP_OUTER_ROWS: f64 = 10_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    High,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub finding: &'static str,
    pub node: String,
    pub severity: Severity,
    pub detail: String,
    pub suggestion: String,
}

/// What the catalog says about a relation the plan reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RelationFacts {
    /// pg_class.reltuples (-1 when never vacuumed or analyzed).
    pub reltuples: f64,
    /// Whether pg_stats has any column statistics for it.
    pub has_column_stats: bool,
}

/// Settings that decide whether sorts and hashes fit in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemorySettings {
    pub work_mem_kb: f64,
    pub hash_mem_multiplier: f64,
}

pub type RelationKey = (String, String);

/// One plan node with its position in the tree.
struct Node<'a> {
    id: usize,
    json: &'a Value,
    children: Vec<usize>,
}

fn flatten(plan: &Value) -> Vec<Node<'_>> {
    fn walk<'a>(json: &'a Value, out: &mut Vec<Node<'a>>) -> usize {
        let id = out.len();
        out.push(Node { id, json, children: Vec::new() });
        if let Some(children) = json.get("Plans").and_then(Value::as_array) {
            for child in children {
                let child_id = walk(child, out);
                out[id].children.push(child_id);
            }
        }
        id
    }
    let mut out = Vec::new();
    if let Some(root) = root_plan(plan) {
        walk(root, &mut out);
    }
    out
}

/// The "Plan" object of EXPLAIN's JSON (an array with one object) or of a captured plan.
fn root_plan(plan: &Value) -> Option<&Value> {
    match plan {
        Value::Array(items) => items.first()?.get("Plan"),
        Value::Object(_) => plan.get("Plan"),
        _ => None,
    }
}

fn text<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str)
}

fn num(node: &Value, key: &str) -> Option<f64> {
    node.get(key).and_then(Value::as_f64)
}

fn relation(node: &Value) -> Option<RelationKey> {
    Some((text(node, "Schema")?.to_string(), text(node, "Relation Name")?.to_string()))
}

fn qualified((schema, name): &RelationKey) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn label(node: &Node) -> String {
    let kind = text(node.json, "Node Type").unwrap_or("?");
    match relation(node.json) {
        Some(rel) => format!("#{} {} on {}", node.id, kind, qualified(&rel)),
        None => format!("#{} {}", node.id, kind),
    }
}

/// Actual rows per loop and loops, when the plan was run with ANALYZE and the node executed.
fn actual(node: &Value) -> Option<(f64, f64)> {
    let loops = num(node, "Actual Loops")?;
    (loops > 0.0).then(|| (num(node, "Actual Rows").unwrap_or(0.0), loops))
}

/// Every relation the plan reads, in plan order, without duplicates.
pub fn relations_in(plan: &Value) -> Vec<RelationKey> {
    let mut seen = Vec::new();
    for node in flatten(plan) {
        if let Some(rel) = relation(node.json) {
            if !seen.contains(&rel) {
                seen.push(rel);
            }
        }
    }
    seen
}

/// All findings for a plan, most severe first, then in plan order.
pub fn findings(
    plan: &Value,
    relations: &HashMap<RelationKey, RelationFacts>,
    memory: MemorySettings,
) -> Vec<Finding> {
    let nodes = flatten(plan);
    let mut out = Vec::new();
    missing_statistics(&nodes, relations, &mut out);
    for node in &nodes {
        seq_scan_selective_filter(node, relations, &mut out);
        spills(node, memory, &mut out);
        nested_loop_many_rows(node, &nodes, &mut out);
    }
    row_misestimates(&nodes, &mut out);
    out.sort_by_key(|f| f.severity);
    out
}

fn missing_statistics(
    nodes: &[Node],
    relations: &HashMap<RelationKey, RelationFacts>,
    out: &mut Vec<Finding>,
) {
    let mut reported = Vec::new();
    for node in nodes {
        let Some(rel) = relation(node.json) else { continue };
        let Some(facts) = relations.get(&rel) else { continue };
        if facts.has_column_stats || reported.contains(&rel) {
            continue;
        }
        let state = if facts.reltuples < 0.0 {
            "has never been analyzed or vacuumed"
        } else {
            "has no column statistics"
        };
        out.push(Finding {
            finding: "missing_statistics",
            node: label(node),
            severity: Severity::Warning,
            detail: format!("{} {state}; the planner is guessing its row counts", qualified(&rel)),
            suggestion: format!("ANALYZE {};", qualified(&rel)),
        });
        reported.push(rel);
    }
}

fn seq_scan_selective_filter(
    node: &Node,
    relations: &HashMap<RelationKey, RelationFacts>,
    out: &mut Vec<Finding>,
) {
    let json = node.json;
    if text(json, "Node Type") != Some("Seq Scan") {
        return;
    }
    let (Some(filter), Some(rel)) = (text(json, "Filter"), relation(json)) else { return };
    let catalog_rows = relations.get(&rel).map(|f| f.reltuples).filter(|r| *r > 0.0);
    // Rows scanned and returned per scan: measured when we have actuals, else estimated.
    let (scanned, returned, loops) = match actual(json) {
        // A parallel scan's loops are its workers sharing one pass over the table.
        Some((rows, workers)) if json.get("Parallel Aware") == Some(&Value::Bool(true)) => {
            let removed = num(json, "Rows Removed by Filter").unwrap_or(0.0);
            ((rows + removed) * workers, rows * workers, 1.0)
        }
        Some((rows, loops)) => {
            let removed = num(json, "Rows Removed by Filter").unwrap_or(0.0);
            (rows + removed, rows, loops)
        }
        None => match catalog_rows {
            Some(total) => (total, num(json, "Plan Rows").unwrap_or(0.0), 1.0),
            None => return,
        },
    };
    if scanned < LARGE_TABLE_ROWS || scanned <= 0.0 {
        return;
    }
    let fraction = returned / scanned;
    if fraction > SELECTIVE_FRACTION {
        return;
    }
    let severity =
        if scanned >= 1_000_000.0 || loops > 1.0 { Severity::High } else { Severity::Warning };
    let alias = text(json, "Alias").unwrap_or(&rel.1);
    let columns = filter_columns(filter, alias);
    let suggestion = if columns.is_empty() {
        format!(
            "index {} on the expressions of the filter so the rows can be found without reading the table",
            qualified(&rel)
        )
    } else {
        format!(
            "CREATE INDEX CONCURRENTLY ON {} ({});",
            qualified(&rel),
            columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
        )
    };
    let repeated = if loops > 1.0 { format!(", repeated {loops} times") } else { String::new() };
    out.push(Finding {
        finding: "seq_scan_selective_filter",
        node: label(node),
        severity,
        detail: format!(
            "reads ~{} rows to keep ~{} ({:.2}%){repeated}; filter: {filter}",
            scanned.round(),
            returned.round(),
            fraction * 100.0
        ),
        suggestion,
    });
}

/// Columns of `alias` compared in a deparsed filter, equality columns first (an index on
/// them serves the filter best in that order). Columns inside function calls are skipped:
/// a plain index on them would not help.
pub fn filter_columns(filter: &str, alias: &str) -> Vec<String> {
    let prefix = format!("{}.", quote_ident(alias));
    let (mut equality, mut other) = (Vec::new(), Vec::new());
    let mut search_from = 0;
    while let Some(found) = filter[search_from..].find(&prefix) {
        let start = search_from + found;
        search_from = start + prefix.len();
        // Must not be the tail of a longer identifier, nor the argument of a function.
        let before = filter[..start].trim_end_matches('(');
        let opened = filter[before.len()..start].len();
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '"') {
            continue;
        }
        let rest = &filter[search_from..];
        let column: String = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.split('"').next().unwrap_or("").to_string()
        } else {
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
        };
        if column.is_empty() {
            continue;
        }
        let mut after =
            &filter[search_from + column.len() + usize::from(rest.starts_with('"')) * 2..];
        // `(alias.col)::type` casts: step over the closing parens we opened and the cast.
        for _ in 0..opened {
            after = after.strip_prefix(')').unwrap_or(after);
            if let Some(cast) = after.strip_prefix("::") {
                let end = cast.find([' ', ')']).unwrap_or(cast.len());
                after = &cast[end..];
            }
        }
        let after = after.trim_start();
        let is_comparison =
            ["= ", "<", ">", "~~", "IS ", "<> ", "!= "].iter().any(|op| after.starts_with(op));
        if !is_comparison || equality.contains(&column) || other.contains(&column) {
            continue;
        }
        if after.starts_with("= ") {
            equality.push(column);
        } else {
            other.push(column);
        }
    }
    equality.extend(other);
    equality
}

fn spills(node: &Node, memory: MemorySettings, out: &mut Vec<Finding>) {
    let json = node.json;
    let kind = text(json, "Node Type").unwrap_or("");
    let hash_limit_kb = memory.work_mem_kb * memory.hash_mem_multiplier;
    let push = |out: &mut Vec<Finding>, finding, severity, detail: String, needed_kb: f64| {
        out.push(Finding {
            finding,
            node: label(node),
            severity,
            detail,
            suggestion: format!(
                "raise work_mem for this query (SET LOCAL work_mem = '{}MB') or reduce the rows it must hold",
                suggested_work_mem_mb(needed_kb)
            ),
        });
    };
    let measured = actual(json).is_some();
    match kind {
        "Sort" if text(json, "Sort Space Type") == Some("Disk") => {
            let used = num(json, "Sort Space Used").unwrap_or(0.0);
            let method = text(json, "Sort Method").unwrap_or("external");
            let detail = format!(
                "sort spilled {used} kB to disk ({method}); work_mem is {} kB",
                memory.work_mem_kb
            );
            push(out, "sort_spilled_to_disk", Severity::Warning, detail, used * 2.0);
        }
        "Sort" if !measured => {
            let bytes =
                num(json, "Plan Rows").unwrap_or(0.0) * num(json, "Plan Width").unwrap_or(0.0);
            let kb = bytes / 1024.0;
            if kb > memory.work_mem_kb {
                let detail = format!(
                    "estimated {:.0} kB to sort exceeds work_mem ({} kB)",
                    kb, memory.work_mem_kb
                );
                push(out, "sort_may_spill", Severity::Info, detail, kb * 1.5);
            }
        }
        "Hash" if num(json, "Hash Batches").unwrap_or(1.0) > 1.0 => {
            let batches = num(json, "Hash Batches").unwrap_or(1.0);
            let peak = num(json, "Peak Memory Usage").unwrap_or(0.0);
            let detail =
                format!("hash table split into {batches} batches on disk (peak memory {peak} kB)");
            push(out, "hash_spilled_to_disk", Severity::Warning, detail, peak * batches);
        }
        "Hash" if !measured => {
            let bytes = num(json, "Plan Rows").unwrap_or(0.0)
                * (num(json, "Plan Width").unwrap_or(0.0) + 48.0);
            let kb = bytes / 1024.0;
            if kb > hash_limit_kb {
                let detail = format!("estimated hash table of {kb:.0} kB exceeds work_mem × hash_mem_multiplier ({hash_limit_kb} kB)");
                push(
                    out,
                    "hash_may_spill",
                    Severity::Info,
                    detail,
                    kb / memory.hash_mem_multiplier,
                );
            }
        }
        "Aggregate"
            if num(json, "HashAgg Batches").unwrap_or(0.0) > 1.0
                || num(json, "Disk Usage").unwrap_or(0.0) > 0.0 =>
        {
            let disk = num(json, "Disk Usage").unwrap_or(0.0);
            let peak = num(json, "Peak Memory Usage").unwrap_or(0.0);
            let detail = format!("hash aggregate wrote {disk} kB to disk (peak memory {peak} kB)");
            push(out, "hash_agg_spilled_to_disk", Severity::Warning, detail, (disk + peak) * 2.0);
        }
        _ => {}
    }
}

/// A round work_mem (MB, power of two, at least 4) that holds `needed_kb`.
pub fn suggested_work_mem_mb(needed_kb: f64) -> u64 {
    let mb = (needed_kb / 1024.0).ceil().max(4.0) as u64;
    mb.next_power_of_two()
}

fn nested_loop_many_rows(node: &Node, nodes: &[Node], out: &mut Vec<Finding>) {
    if text(node.json, "Node Type") != Some("Nested Loop") {
        return;
    }
    let child = |relationship| {
        node.children
            .iter()
            .map(|&c| &nodes[c])
            .find(|c| text(c.json, "Parent Relationship") == Some(relationship))
    };
    let (Some(outer), Some(inner)) = (child("Outer"), child("Inner")) else { return };
    let outer_rows = match actual(outer.json) {
        Some((rows, loops)) => rows * loops,
        None => num(outer.json, "Plan Rows").unwrap_or(0.0),
    };
    if outer_rows < NESTED_LOOP_OUTER_ROWS {
        return;
    }
    let inner_seq_scan = text(inner.json, "Node Type") == Some("Seq Scan");
    let severity =
        if inner_seq_scan || outer_rows >= 100_000.0 { Severity::High } else { Severity::Warning };
    let suggestion = if inner_seq_scan {
        "index the inner table's join column so each loop is an index lookup, \
         or check the outer estimate (ANALYZE) so the planner can choose a hash join"
    } else {
        "check the outer row estimate (ANALYZE, CREATE STATISTICS); for this many rows a hash \
         or merge join is usually cheaper"
    };
    out.push(Finding {
        finding: "nested_loop_many_rows",
        node: label(node),
        severity,
        detail: format!(
            "inner side {} runs ~{} times, once per outer row",
            label(inner),
            outer_rows.round()
        ),
        suggestion: suggestion.to_string(),
    });
}

/// Reports where a misestimate starts (a node whose children are estimated well), since
/// one bad estimate propagates to every node above it.
fn row_misestimates(nodes: &[Node], out: &mut Vec<Finding>) {
    let misestimate = |node: &Node| -> Option<(f64, f64, f64)> {
        let (actual_rows, _) = actual(node.json)?;
        let estimated = num(node.json, "Plan Rows")?;
        let (low, high) = (estimated.min(actual_rows), estimated.max(actual_rows));
        let factor = high / low.max(1.0);
        (factor > MISESTIMATE_FACTOR && high >= MISESTIMATE_MIN_ROWS).then_some((
            estimated,
            actual_rows,
            factor,
        ))
    };
    for node in nodes {
        let Some((estimated, actual_rows, factor)) = misestimate(node) else { continue };
        if node.children.iter().any(|&c| misestimate(&nodes[c]).is_some()) {
            continue;
        }
        let direction = if actual_rows > estimated { "under" } else { "over" };
        let grouping = matches!(text(node.json, "Node Type"), Some("Aggregate" | "Group"));
        let suggestion = match relation(node.json) {
            _ if grouping => "the planner misjudges the number of groups: CREATE STATISTICS (ndistinct) \
                              ON <grouped columns or expressions> FROM <table>, then ANALYZE it"
                .to_string(),
            Some(rel) => format!(
                "ANALYZE {rel}; if the filtered columns are correlated, CREATE STATISTICS ON <columns> FROM {rel}; ANALYZE {rel};",
                rel = qualified(&rel)
            ),
            None => "ANALYZE the tables below this node; for correlated join or filter columns \
                     use CREATE STATISTICS, or raise their statistics target"
                .to_string(),
        };
        out.push(Finding {
            finding: "row_misestimate",
            node: label(node),
            severity: if factor >= 1000.0 { Severity::High } else { Severity::Warning },
            detail: format!(
                "{direction}estimated {factor:.0}×: planned {estimated} rows, got {actual_rows} per loop"
            ),
            suggestion,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MEMORY: MemorySettings = MemorySettings { work_mem_kb: 4096.0, hash_mem_multiplier: 2.0 };

    fn facts(rows: f64, stats: bool) -> RelationFacts {
        RelationFacts { reltuples: rows, has_column_stats: stats }
    }

    fn rels(entries: &[(&str, RelationFacts)]) -> HashMap<RelationKey, RelationFacts> {
        entries.iter().map(|(n, f)| (("public".to_string(), n.to_string()), *f)).collect()
    }

    fn seq_scan(rows: f64, filter: &str) -> Value {
        json!({"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "orders",
               "Alias": "orders", "Plan Rows": rows, "Plan Width": 40, "Filter": filter})
    }

    fn codes(found: &[Finding]) -> Vec<&'static str> {
        found.iter().map(|f| f.finding).collect()
    }

    #[test]
    fn selective_seq_scan_on_a_large_table_suggests_an_index() {
        let plan = json!([{"Plan": seq_scan(12.0, "(orders.customer_id = 42)")}]);
        let found = findings(&plan, &rels(&[("orders", facts(1_000_000.0, true))]), MEMORY);
        assert_eq!(codes(&found), ["seq_scan_selective_filter"]);
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(
            found[0].suggestion,
            "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
        );
        assert_eq!(found[0].node, "#0 Seq Scan on public.orders");
    }

    #[test]
    fn unselective_or_small_scans_are_fine() {
        let plan = json!([{"Plan": seq_scan(600_000.0, "(orders.total > 10)")}]);
        assert!(findings(&plan, &rels(&[("orders", facts(1_000_000.0, true))]), MEMORY).is_empty());
        let plan = json!([{"Plan": seq_scan(1.0, "(orders.id = 1)")}]);
        assert!(findings(&plan, &rels(&[("orders", facts(500.0, true))]), MEMORY).is_empty());
    }

    #[test]
    fn analyzed_scan_uses_rows_removed_by_filter() {
        let mut node = seq_scan(5.0, "(orders.status = 'x'::text)");
        node["Actual Rows"] = json!(3.0);
        node["Actual Loops"] = json!(1.0);
        node["Rows Removed by Filter"] = json!(49_997.0);
        let found = findings(&json!([{"Plan": node}]), &HashMap::new(), MEMORY);
        assert_eq!(codes(&found), ["seq_scan_selective_filter"]);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].detail.contains("reads ~50000 rows to keep ~3"), "{}", found[0].detail);
    }

    #[test]
    fn parallel_scan_workers_are_one_pass_not_repetitions() {
        let mut node = seq_scan(5.0, "(orders.status = 'x'::text)");
        node["Parallel Aware"] = json!(true);
        node["Actual Rows"] = json!(100.0);
        node["Actual Loops"] = json!(3.0);
        node["Rows Removed by Filter"] = json!(300_000.0);
        let found = findings(&json!([{"Plan": node}]), &HashMap::new(), MEMORY);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(
            found[0].detail.starts_with("reads ~900300 rows to keep ~300 (0.03%); filter"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn filter_columns_put_equality_first_and_skip_functions() {
        let filter =
            "((orders.created_at > '2024-01-01'::date) AND ((orders.status)::text = 'paid'::text) \
                      AND (lower(orders.email) = 'a'::text) AND (orders.customer_id = 7))";
        assert_eq!(filter_columns(filter, "orders"), ["status", "customer_id", "created_at"]);
        assert_eq!(filter_columns("(o.\"Total\" < 5)", "o"), ["Total"]);
        assert!(filter_columns("(x.a = 1)", "o").is_empty());
        assert!(filter_columns("(bo.a = 1)", "o").is_empty());
    }

    #[test]
    fn misestimate_reported_where_it_starts() {
        let leaf = json!({"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "orders",
            "Alias": "orders", "Parent Relationship": "Outer", "Plan Rows": 10.0, "Actual Rows": 5000.0,
            "Actual Loops": 1.0});
        let plan = json!([{"Plan": {"Node Type": "Hash Join", "Plan Rows": 10.0, "Actual Rows": 5000.0,
            "Actual Loops": 1.0, "Plans": [leaf]}}]);
        let found = findings(&plan, &HashMap::new(), MEMORY);
        assert_eq!(codes(&found), ["row_misestimate"]);
        assert_eq!(found[0].node, "#1 Seq Scan on public.orders");
        assert!(found[0].detail.starts_with("underestimated 500×"), "{}", found[0].detail);
    }

    #[test]
    fn group_count_misestimate_points_at_ndistinct_statistics() {
        let plan = json!([{"Plan": {"Node Type": "Aggregate", "Plan Rows": 50000.0, "Actual Rows": 200.0, "Actual Loops": 1.0}}]);
        let found = findings(&plan, &HashMap::new(), MEMORY);
        assert_eq!(codes(&found), ["row_misestimate"]);
        assert!(found[0].suggestion.contains("ndistinct"), "{}", found[0].suggestion);
    }

    #[test]
    fn small_misestimates_are_noise() {
        let plan = json!([{"Plan": {"Node Type": "Result", "Plan Rows": 1.0, "Actual Rows": 50.0, "Actual Loops": 1.0}}]);
        assert!(findings(&plan, &HashMap::new(), MEMORY).is_empty());
    }

    #[test]
    fn disk_sort_and_hash_batches_are_spills() {
        let plan = json!([{"Plan": {"Node Type": "Sort", "Sort Method": "external merge",
            "Sort Space Used": 20_000.0, "Sort Space Type": "Disk", "Plan Rows": 1.0, "Actual Rows": 1.0,
            "Actual Loops": 1.0, "Plans": [{"Node Type": "Hash", "Parent Relationship": "Outer",
            "Hash Batches": 8, "Peak Memory Usage": 4000, "Plan Rows": 1.0, "Actual Rows": 1.0, "Actual Loops": 1.0}]}}]);
        let found = findings(&plan, &HashMap::new(), MEMORY);
        assert_eq!(codes(&found), ["sort_spilled_to_disk", "hash_spilled_to_disk"]);
        assert!(found[0].suggestion.contains("'64MB'"), "{}", found[0].suggestion);
    }

    #[test]
    fn estimated_sort_larger_than_work_mem_may_spill() {
        let plan =
            json!([{"Plan": {"Node Type": "Sort", "Plan Rows": 1_000_000.0, "Plan Width": 100}}]);
        assert_eq!(codes(&findings(&plan, &HashMap::new(), MEMORY)), ["sort_may_spill"]);
    }

    #[test]
    fn nested_loop_over_many_outer_rows() {
        let plan = json!([{"Plan": {"Node Type": "Nested Loop", "Plan Rows": 50000.0, "Plans": [
            {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Schema": "public",
             "Relation Name": "customers", "Alias": "c", "Plan Rows": 50000.0},
            {"Node Type": "Seq Scan", "Parent Relationship": "Inner", "Schema": "public",
             "Relation Name": "orders", "Alias": "o", "Plan Rows": 1.0}]}}]);
        let found = findings(&plan, &HashMap::new(), MEMORY);
        assert_eq!(codes(&found), ["nested_loop_many_rows"]);
        assert_eq!(found[0].severity, Severity::High);
        assert!(found[0].detail.contains("#2 Seq Scan on public.orders"));
    }

    #[test]
    fn never_analyzed_tables_are_reported_once() {
        let plan = json!([{"Plan": {"Node Type": "Append", "Plan Rows": 1.0, "Plans": [
            seq_scan(1.0, "(orders.id = 1)"), seq_scan(1.0, "(orders.id = 2)")]}}]);
        let found = findings(&plan, &rels(&[("orders", facts(-1.0, false))]), MEMORY);
        assert_eq!(codes(&found), ["missing_statistics"]);
        assert_eq!(found[0].suggestion, "ANALYZE public.orders;");
        assert!(found[0].detail.contains("has never been analyzed"), "{}", found[0].detail);
    }

    #[test]
    fn relations_are_listed_once_in_plan_order() {
        let plan = json!([{"Plan": {"Node Type": "Append", "Plans": [
            seq_scan(1.0, "x"), {"Node Type": "Seq Scan", "Schema": "s", "Relation Name": "T"}, seq_scan(1.0, "y")]}}]);
        assert_eq!(
            relations_in(&plan),
            [("public".to_string(), "orders".to_string()), ("s".to_string(), "T".to_string())]
        );
        assert_eq!(qualified(&("s".into(), "T".into())), "s.\"T\"");
    }

    #[test]
    fn work_mem_suggestions_are_round() {
        assert_eq!(suggested_work_mem_mb(100.0), 4);
        assert_eq!(suggested_work_mem_mb(40_000.0), 64);
    }

    #[test]
    fn explain_options_depend_on_analyze() {
        assert_eq!(explain_options(false), "VERBOSE");
        assert!(explain_options(true).contains("ANALYZE, BUFFERS"));
    }
}
