//! `#[pg_test]`s of the health SQL: the views return sane rows, thresholds come from the table's
//! own reloptions, config advice for each workload, and bad input fails clearly. (Counters that
//! need committed work — dead tuples, VACUUM — are covered by tests/tests/health.rs.)
use pgrx::prelude::*;

// The pg_test runner calls functions in schema "tests", so the module has that name too.
#[pg_schema]
mod tests {
    use crate::tests::tests::{count, sql_error};
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    #[pg_test]
    fn vacuum_health_lists_user_tables_with_their_own_thresholds() {
        Spi::run(
            "CREATE TABLE hv_plain(id int);
             CREATE TABLE hv_custom(id int) WITH (autovacuum_vacuum_threshold = 7, autovacuum_vacuum_scale_factor = 0,
                                                  autovacuum_enabled = off, autovacuum_vacuum_insert_threshold = -1,
                                                  autovacuum_freeze_max_age = 100000000);",
        )
        .unwrap();
        let (vacuum, analyze, insert) = Spi::get_three::<i64, i64, i64>(
            "SELECT vacuum_threshold, analyze_threshold, insert_threshold FROM pitstop.vacuum_health WHERE table_name = 'hv_plain'",
        )
        .unwrap();
        let server = |name: &str| Spi::get_one::<String>(&format!("SELECT current_setting('{name}')")).unwrap().unwrap();
        assert_eq!(vacuum, Some(server("autovacuum_vacuum_threshold").parse().unwrap()));
        assert_eq!(analyze, Some(server("autovacuum_analyze_threshold").parse().unwrap()));
        assert_eq!(insert, Some(server("autovacuum_vacuum_insert_threshold").parse().unwrap()));

        let (vacuum, insert, freeze) = Spi::get_three::<i64, i64, i64>(
            "SELECT vacuum_threshold, insert_threshold, freeze_max_age FROM pitstop.vacuum_health WHERE table_name = 'hv_custom'",
        )
        .unwrap();
        assert_eq!((vacuum, insert, freeze), (Some(7), None, Some(100_000_000)));
        let (enabled, status, action) = Spi::get_three::<bool, String, String>(
            "SELECT autovacuum_enabled, status, action FROM pitstop.vacuum_health WHERE table_name = 'hv_custom'",
        )
        .unwrap();
        assert_eq!(enabled, Some(false));
        assert_eq!(status.as_deref(), Some("autovacuum disabled"));
        assert!(action.unwrap().ends_with("hv_custom RESET (autovacuum_enabled)"));

        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.vacuum_health
                  WHERE schema IN ('pg_catalog', 'information_schema') OR schema::text LIKE 'pg_toast%'"
            ),
            0
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.vacuum_health
                  WHERE xid_age < 0 OR wraparound_pct NOT BETWEEN 0 AND 100 OR dead_ratio NOT BETWEEN 0 AND 1
                     OR status NOT IN ('ok', 'autovacuum disabled', 'analyze overdue', 'vacuum overdue', 'freeze due', 'wraparound risk')"
            ),
            0
        );
    }

    #[pg_test]
    fn database_wraparound_shows_this_database() {
        let (age, pct, status) = Spi::get_three::<i64, f64, String>(
            "SELECT xid_age, wraparound_pct, status FROM pitstop.database_wraparound WHERE datname = current_database()",
        )
        .unwrap();
        assert!(age.unwrap() > 0);
        assert!((0.0..1.0).contains(&pct.unwrap()), "a test cluster is young: {pct:?}");
        assert_eq!(status.as_deref(), Some("ok"));
        assert_eq!(count("SELECT count(*) FROM pitstop.database_wraparound WHERE datname = 'template0'"), 1);
    }

    #[pg_test]
    fn table_bloat_estimates_a_fresh_table_and_index_as_tight() {
        Spi::run(
            "CREATE TABLE hb_fresh(id int, payload text);
             INSERT INTO hb_fresh SELECT g, 'p' FROM generate_series(1, 50000) g;
             CREATE INDEX hb_fresh_id ON hb_fresh (id);
             CREATE TABLE hb_never(id int);
             INSERT INTO hb_never VALUES (1);
             ANALYZE hb_fresh;",
        )
        .unwrap();
        let (kind, pct, method) = Spi::get_three::<String, f64, String>(
            "SELECT kind, bloat_pct, method FROM pitstop.table_bloat WHERE table_name = 'hb_fresh' AND index_name IS NULL",
        )
        .unwrap();
        assert_eq!((kind.as_deref(), method.as_deref()), (Some("table"), Some("estimate")));
        assert!(pct.unwrap() < 5.0, "a freshly loaded table is packed: {pct:?}");
        let (kind, pct, fix) = Spi::get_three::<String, f64, String>(
            "SELECT kind, bloat_pct, fix FROM pitstop.table_bloat() WHERE index_name = 'hb_fresh_id'",
        )
        .unwrap();
        assert_eq!(kind.as_deref(), Some("index"));
        assert!(pct.unwrap() < 15.0, "{pct:?}");
        assert_eq!(fix, None);
        // No statistics yet: no guess (and a one-page table is not worth a nag).
        let (expected, fix) = Spi::get_two::<i64, String>(
            "SELECT expected_bytes, fix FROM pitstop.table_bloat WHERE table_name = 'hb_never'",
        )
        .unwrap();
        assert_eq!((expected, fix), (None, None));
        assert_eq!(count("SELECT count(*) FROM pitstop.table_bloat WHERE bytes < 0 OR bloat_bytes < 0 OR bloat_pct > 100"), 0);
    }

    #[pg_test]
    fn exact_bloat_without_pgstattuple_says_how_to_get_it() {
        if count("SELECT count(*) FROM pg_extension WHERE extname = 'pgstattuple'") > 0 {
            return;
        }
        let (code, message, hint) = sql_error("SELECT * FROM pitstop.table_bloat(true)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert_eq!(message, "pgstattuple is not installed in this database");
        assert!(hint.unwrap().contains("CREATE EXTENSION pgstattuple"));
        let (code, ..) = sql_error("SELECT * FROM pitstop.table_bloat(NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
    }

    #[pg_test]
    fn config_advice_covers_each_workload() {
        const EXPECTED: &[&str] = &[
            "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem", "max_wal_size", "min_wal_size",
            "checkpoint_completion_target", "random_page_cost", "effective_io_concurrency", "wal_buffers",
            "max_worker_processes", "max_parallel_workers", "max_parallel_workers_per_gather", "autovacuum_max_workers",
            "autovacuum_vacuum_cost_limit", "autovacuum_naptime", "autovacuum_vacuum_scale_factor",
        ];
        for workload in ["web", "oltp", "dw", "mixed"] {
            let names = format!("ARRAY['{}']", EXPECTED.join("','"));
            assert_eq!(
                count(&format!("SELECT count(*) FROM pitstop.config_advice('{workload}') WHERE name = ANY({names})")),
                EXPECTED.len() as i64,
                "{workload}"
            );
            // restart_required follows pg_settings; current is what SHOW prints; reasons are given.
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM pitstop.config_advice('{workload}') a JOIN pg_settings s USING (name)
                      WHERE a.restart_required <> (s.context = 'postmaster') OR a.current <> current_setting(a.name)
                         OR a.reason = '' OR a.suggested = ''
                         OR a.differs = (a.suggested = a.current)"
                )),
                0,
                "{workload}"
            );
        }
        let default = count("SELECT count(*) FROM pitstop.config_advice()");
        assert_eq!(default, count("SELECT count(*) FROM pitstop.config_advice('mixed')"));
        let (shared, restart) = Spi::get_two::<String, bool>(
            "SELECT suggested, restart_required FROM pitstop.config_advice('oltp') WHERE name = 'shared_buffers'",
        )
        .unwrap();
        assert!(shared.unwrap().ends_with('B'));
        assert_eq!(restart, Some(true));
    }

    #[pg_test]
    fn unknown_workload_is_an_error_listing_the_valid_ones() {
        let (code, message, hint) = sql_error("SELECT * FROM pitstop.config_advice('batch')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(message, "unknown workload \"batch\"");
        assert_eq!(hint.as_deref(), Some("Valid workloads are: web, oltp, dw, mixed."));
        let (code, ..) = sql_error("SELECT * FROM pitstop.config_advice(NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
    }

    #[pg_test]
    fn maintenance_plan_runs_with_defaults_and_rejects_bad_thresholds() {
        Spi::run("CREATE TABLE mp_t(id int); INSERT INTO mp_t SELECT generate_series(1, 100)").unwrap();
        assert!(count("SELECT count(*) FROM pitstop.maintenance_plan()") >= 0);
        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.maintenance_plan()
                  WHERE action NOT IN ('vacuum_freeze', 'vacuum', 'analyze', 'reindex') OR priority NOT BETWEEN 1 AND 4"
            ),
            0
        );
        for args in [
            "vacuum_dead_ratio => 1.5",
            "vacuum_dead_ratio => -0.1",
            "vacuum_min_dead => -1",
            "analyze_mod_ratio => 2",
            "reindex_bloat_pct => 101",
            "reindex_bloat_pct => 'NaN'",
            "reindex_min_bytes => -1",
        ] {
            let (code, message, _) = sql_error(&format!("SELECT * FROM pitstop.maintenance_plan({args})"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "{args}: {message}");
            assert!(message.starts_with("argument \""), "{message}");
        }
        let (code, message, _) = sql_error("SELECT * FROM pitstop.maintenance_plan(vacuum_min_dead => NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
        assert_eq!(message, "argument \"vacuum_min_dead\" must not be NULL");
    }
}
