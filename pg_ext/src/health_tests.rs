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
        let server = |name: &str| {
            Spi::get_one::<String>(&format!("SELECT current_setting('{name}')")).unwrap().unwrap()
        };
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
        assert_eq!(
            count("SELECT count(*) FROM pitstop.database_wraparound WHERE datname = 'template0'"),
            1
        );
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
            "SELECT kind, bloat_pct, method FROM pitstop.table_bloat(false, 0, 0) WHERE table_name = 'hb_fresh' AND index_name IS NULL",
        )
        .unwrap();
        assert_eq!((kind.as_deref(), method.as_deref()), (Some("table"), Some("estimate")));
        assert!(pct.unwrap() < 5.0, "a freshly loaded table is packed: {pct:?}");
        let (kind, pct, fix) = Spi::get_three::<String, f64, String>(
            "SELECT kind, bloat_pct, fix FROM pitstop.table_bloat(min_bloat_pct => 0, min_bloat_bytes => 0) WHERE index_name = 'hb_fresh_id'",
        )
        .unwrap();
        assert_eq!(kind.as_deref(), Some("index"));
        assert!(pct.unwrap() < 15.0, "{pct:?}");
        assert_eq!(fix, None);
        // No statistics yet: no guess (and a one-page table is not worth a nag).
        let (expected, fix) = Spi::get_two::<i64, String>(
            "SELECT expected_bytes, fix FROM pitstop.table_bloat(false, 0, 0) WHERE table_name = 'hb_never'",
        )
        .unwrap();
        assert_eq!((expected, fix), (None, None));
        assert_eq!(count("SELECT count(*) FROM pitstop.table_bloat(false, 0, 0) WHERE bytes < 0 OR bloat_bytes < 0 OR bloat_pct > 100"), 0);
        // By default neither is listed: no bloat to speak of.
        assert_eq!(count("SELECT count(*) FROM pitstop.table_bloat WHERE table_name IN ('hb_fresh', 'hb_never')"), 0);
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
            "shared_buffers",
            "effective_cache_size",
            "work_mem",
            "maintenance_work_mem",
            "max_wal_size",
            "min_wal_size",
            "checkpoint_completion_target",
            "random_page_cost",
            "effective_io_concurrency",
            "wal_buffers",
            "max_worker_processes",
            "max_parallel_workers",
            "max_parallel_workers_per_gather",
            "autovacuum_max_workers",
            "autovacuum_vacuum_cost_limit",
            "autovacuum_naptime",
            "autovacuum_vacuum_scale_factor",
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
        Spi::run("CREATE TABLE mp_t(id int); INSERT INTO mp_t SELECT generate_series(1, 100)")
            .unwrap();
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
            let (code, message, _) =
                sql_error(&format!("SELECT * FROM pitstop.maintenance_plan({args})"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "{args}: {message}");
            assert!(message.starts_with("argument \""), "{message}");
        }
        let (code, message, _) =
            sql_error("SELECT * FROM pitstop.maintenance_plan(vacuum_min_dead => NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
        assert_eq!(message, "argument \"vacuum_min_dead\" must not be NULL");
    }

    /// The statements pg_stat_statements holds for this database as top_queries lists them.
    fn top_texts(args: &str) -> Vec<String> {
        Spi::connect(|client| {
            let sql = format!("SELECT query FROM pitstop.top_queries('calls', 100000{args})");
            client
                .select(&sql, None, &[])
                .unwrap()
                .filter_map(|row| row.get::<String>(1).unwrap())
                .collect()
        })
    }

    fn texts(sql: &str) -> Vec<String> {
        Spi::connect(|client| {
            client
                .select(sql, None, &[])
                .unwrap()
                .filter_map(|row| row.get::<String>(1).unwrap())
                .collect()
        })
    }

    fn is_own(text: &str) -> bool {
        text.contains("pitstop.")
            || text.contains("pg_stat_statements")
            || text.contains("pg_catalog.")
    }

    /// Issue 15's demo: `report unhelped` and `top-queries` listed the CLI's row_to_json
    /// wrapper, pitstop.slow_queries_reset() and pg_stat_statements_reset(). Recorded with
    /// track = all, so pitstop's own SPI statements are in pg_stat_statements too.
    #[pg_test]
    fn own_statements_leave_top_queries_and_the_advisor_unless_include_self() {
        Spi::run(
            "CREATE TABLE noise_app(id int PRIMARY KEY, customer_id int, note text);
             INSERT INTO noise_app SELECT g, g % 5000, md5(g::text) FROM generate_series(1, 100000) g;
             ANALYZE noise_app;
             CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
             SELECT pg_stat_statements_reset();
             SET pg_stat_statements.track = 'all';",
        )
        .unwrap();
        for customer in 0..5 {
            Spi::run(&format!(
                "SELECT * FROM noise_app WHERE customer_id = {customer} /* noise-app */"
            ))
            .unwrap();
        }
        Spi::run(
            "SELECT row_to_json(r)::text FROM (SELECT count(*) FROM pitstop.slow_queries /* noise-cli */) r;
             SELECT count(*) FROM \"pitstop\".slow_query_stats() /* noise-call */;
             SELECT count(*) FROM pg_stat_statements /* noise-pgss */;
             SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'noise_app' /* noise-catalog */;
             SELECT * FROM pitstop.top_queries('calls', 5);",
        )
        .unwrap();
        Spi::run("SET pg_stat_statements.track = 'top'").unwrap();

        let default = top_texts("");
        assert!(default.iter().any(|q| q.contains("noise-app")), "{default:?}");
        assert!(!default.iter().any(|q| is_own(q)), "{default:?}");
        let all = top_texts(", include_self => true");
        for marker in ["noise-cli", "noise-call", "noise-pgss", "noise-catalog"] {
            assert!(all.iter().any(|q| q.contains(marker)), "{marker}: {all:?}");
        }
        // pitstop's SPI statements recorded under track = all (top_queries' own SELECT).
        assert!(all.iter().any(|q| q.contains("pg_catalog.pg_roles")), "{all:?}");

        let unhelped = texts("SELECT query FROM pitstop.unhelped_queries()");
        assert!(!unhelped.iter().any(|q| is_own(q)), "{unhelped:?}");
        let unhelped_all =
            texts("SELECT query FROM pitstop.unhelped_queries(include_self => true)");
        assert!(unhelped_all.iter().any(|q| q.contains("noise-cli")), "{unhelped_all:?}");
        let helped = texts("SELECT helped::text FROM pitstop.suggest_indexes()");
        assert!(helped.iter().any(|h| h.contains("noise-app")), "{helped:?}");
        assert!(!helped.iter().any(|h| is_own(h)), "{helped:?}");
        for sql in [
            "SELECT * FROM pitstop.top_queries(include_self => NULL)",
            "SELECT * FROM pitstop.unhelped_queries(include_self => NULL)",
        ] {
            assert_eq!(sql_error(sql).0, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "{sql}");
        }
        Spi::run("DROP EXTENSION pg_stat_statements").unwrap();
    }

    /// Issue 15's demo: index-health listed pitstop's own history-table indexes as unused, and
    /// bloat listed pitstop's tables. A table pg_depend makes a member of the extension, outside
    /// its schema, is pitstop's too.
    #[pg_test]
    fn index_health_and_bloat_leave_pitstop_tables_out_unless_include_self() {
        Spi::run(
            "CREATE TABLE public.noise_member(id int, at timestamptz);
             CREATE INDEX noise_member_at ON public.noise_member (at);
             INSERT INTO public.noise_member SELECT g, now() FROM generate_series(1, 1000) g;
             ANALYZE public.noise_member;
             ALTER EXTENSION pitstop ADD TABLE public.noise_member;",
        )
        .unwrap();
        let own = "(table_name LIKE 'pitstop.%' OR table_name LIKE '%noise_member')";
        let unused = |args: &str| {
            count(&format!("SELECT count(*) FROM pitstop.index_health({args}) WHERE problem = 'unused' AND {own}"))
        };
        assert!(
            unused("include_self => true") >= 2,
            "pitstop's history indexes and the member's are unused"
        );
        assert_eq!(unused(""), 0);
        assert_eq!(count(&format!("SELECT count(*) FROM pitstop.index_health WHERE {own}")), 0);
        let bloat = |args: &str| {
            count(&format!(
                "SELECT count(*) FROM pitstop.table_bloat(false, 0, 0{args}) WHERE schema = 'pitstop' OR table_name = 'noise_member'"
            ))
        };
        assert!(bloat(", include_self => true") >= 4, "tables and indexes");
        assert_eq!(bloat(""), 0);
        Spi::run("ALTER EXTENSION pitstop DROP TABLE public.noise_member").unwrap();
        assert_eq!(bloat(""), 2, "no longer a member: the table and its index");
        assert_eq!(
            sql_error("SELECT * FROM pitstop.index_health(include_self => NULL)").0,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
    }

    /// A relation is listed when its bloat is at least min_bloat_pct % AND min_bloat_bytes.
    #[pg_test]
    fn bloat_lists_only_relations_past_both_thresholds() {
        Spi::run(
            "CREATE TABLE noise_bloated(id int, payload text);
             INSERT INTO noise_bloated SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 300000) g;
             DELETE FROM noise_bloated WHERE id % 10 <> 0;
             ANALYZE noise_bloated;
             CREATE TABLE noise_tight(id int);
             INSERT INTO noise_tight SELECT generate_series(1, 1000);
             ANALYZE noise_tight;",
        )
        .unwrap();
        let (bytes, pct) = Spi::get_two::<i64, f64>(
            "SELECT bloat_bytes, bloat_pct FROM pitstop.table_bloat(false, 0, 0) WHERE table_name = 'noise_bloated' AND kind = 'table'",
        )
        .unwrap();
        let (bytes, pct) = (bytes.unwrap(), pct.unwrap());
        assert!(bytes > 20 << 20 && pct > 80.0, "{bytes} bytes, {pct} %");
        let listed = |pct: f64, bytes: i64| {
            count(&format!(
                "SELECT count(*) FROM pitstop.table_bloat(false, {pct}, {bytes}) WHERE table_name = 'noise_bloated' AND kind = 'table'"
            )) == 1
        };
        assert!(count("SELECT count(*) FROM pitstop.table_bloat WHERE table_name = 'noise_bloated' AND kind = 'table'") == 1);
        assert!(listed(pct - 0.1, bytes));
        assert!(!listed(pct + 0.1, bytes), "the share is short");
        assert!(!listed(pct - 0.1, bytes + 1), "the bytes are short");
        assert!(!listed(0.0, 1 << 30));
        assert_eq!(
            count("SELECT count(*) FROM pitstop.table_bloat WHERE table_name = 'noise_tight'"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM pitstop.table_bloat(false, 0, 0) WHERE table_name = 'noise_tight'"), 1);
        for args in ["false, -1, 0", "false, 0, -1"] {
            assert_eq!(
                sql_error(&format!("SELECT * FROM pitstop.table_bloat({args})")).0,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
            );
        }
    }

    /// Issue 15's demo: the FK check asked for orders (customer_id) while the advisor suggested
    /// orders (customer_id, created_at DESC) INCLUDE (...), which serves the foreign key too.
    #[pg_test]
    fn a_foreign_key_points_at_the_suggestion_that_serves_it() {
        Spi::run(
            "CREATE TABLE noise_customers(id int PRIMARY KEY);
             INSERT INTO noise_customers SELECT generate_series(1, 20000);
             CREATE TABLE noise_products(id int PRIMARY KEY);
             INSERT INTO noise_products SELECT generate_series(1, 100);
             CREATE TABLE noise_orders(id int PRIMARY KEY, customer_id int REFERENCES noise_customers,
                                       product_id int REFERENCES noise_products, created_at timestamptz, total int);
             INSERT INTO noise_orders SELECT g, 1 + g % 20000, 1 + g % 100, now() - g * interval '1 minute', g % 500
               FROM generate_series(1, 200000) g;
             ANALYZE noise_customers, noise_products, noise_orders;
             CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
             SELECT pg_stat_statements_reset();
             SET pg_stat_statements.track = 'all';",
        )
        .unwrap();
        for customer in 1..=20 {
            Spi::run(&format!("SELECT id, total FROM noise_orders WHERE customer_id = {customer} ORDER BY created_at DESC LIMIT 10")).unwrap();
        }
        Spi::run("SET pg_stat_statements.track = 'top'").unwrap();
        let fix = |args: &str, column: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT fix FROM pitstop.index_health({args}) WHERE problem = 'missing_fk_index' AND table_name = 'public.noise_orders'
                    AND detail LIKE '%({column})%'"
            ))
            .unwrap()
            .unwrap()
        };
        assert_eq!(
            fix("", "customer_id"),
            "CREATE INDEX CONCURRENTLY ON public.noise_orders (customer_id);",
            "no advice asked for"
        );
        let suggested = Spi::get_one::<String>(
            "SELECT ddl FROM pitstop.suggest_indexes() WHERE ddl LIKE '%noise_orders (customer_id%' ORDER BY rank LIMIT 1",
        )
        .unwrap()
        .expect("the advisor suggests an index leading with customer_id");
        let pointed = fix("with_advice => true", "customer_id");
        assert!(
            pointed.starts_with("-- served by suggest_indexes #") && pointed.contains(&suggested),
            "{pointed}"
        );
        // The advisor suggests nothing for product_id: that foreign key keeps its own index.
        assert_eq!(
            fix("with_advice => true", "product_id"),
            "CREATE INDEX CONCURRENTLY ON public.noise_orders (product_id);"
        );
        Spi::run("DROP EXTENSION pg_stat_statements").unwrap();
    }
}
