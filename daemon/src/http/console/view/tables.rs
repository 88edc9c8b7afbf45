//! The pages of tables: indexes, vacuum & bloat, connections & locks, cache, settings, maintenance.

use super::*;

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
                (crate::http::console::ADVICE_INTERVAL.as_secs() / 60) " min)."
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
