//! pitstop: PostgreSQL performance toolkit. This file only wires modules together.

// `unsafe` lives in `pg/` only (its blocks each say why they are sound): everywhere else the
// compiler refuses it.
#![deny(unsafe_code)]

use pgrx::prelude::*;

mod advisor;
mod cache;
mod error;
mod gucs;
mod health;
mod insight;
#[allow(unsafe_code)]
mod pg;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../../sql/schema/insight_views.sql", name = "insight_views", finalize);
extension_sql_file!(
    "../../sql/schema/cache.sql",
    name = "cache_objects",
    requires =
        [cache::sql::cache_entries_raw, cache::sql::cache_clear, cache::sql::cache_invalidate]
);
extension_sql_file!("../../sql/schema/history.sql", name = "history_tables");
extension_sql_file!(
    "../../sql/schema/latency.sql",
    name = "latency_objects",
    requires = [insight::latency_sql::query_latency_raw, insight::latency_sql::query_latency_reset]
);
extension_sql_file!(
    "../../sql/schema/index_effect.sql",
    name = "index_effect_objects",
    requires = ["history_tables", insight::latency_sql::latency_quantile]
);
extension_sql_file!(
    "../../sql/schema/regressions.sql",
    name = "regressions_objects",
    requires = ["history_tables", insight::latency_sql::latency_quantile]
);
extension_sql_file!(
    "../../sql/schema/health.sql",
    name = "health_objects",
    requires = [
        health::sql::vacuum_health_raw,
        health::sql::database_wraparound_raw,
        health::sql::table_bloat_raw,
        health::sql::maintenance_plan_raw
    ]
);

/// Loaded through shared_preload_libraries, pitstop sets up shared memory and executor hooks.
/// Loaded later (CREATE EXTENSION without preload) it only defines its settings, like
/// pg_stat_statements; functions that need the preload then say so with a HINT.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    let at_preload = pg::shmem::loading_at_preload();
    gucs::init(at_preload);
    if at_preload {
        insight::capture::init();
        insight::latency_sql::init();
        cache::init();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod advisor_candidate_tests;
#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod advisor_tests;
#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod cache_tests;
#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod health_tests;
#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod index_effect_tests;
#[cfg(any(test, feature = "pg_test"))]
#[allow(clippy::disallowed_methods)] // tests run their own SQL as the caller would
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_stat_statements,pitstop'", "compute_query_id = on"]
    }
}
