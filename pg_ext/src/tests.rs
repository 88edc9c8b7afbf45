//! `#[pg_test]`s: run inside a real Postgres with pitstop and pg_stat_statements preloaded.
use pgrx::prelude::*;

#[pg_schema]
pub mod tests {
    use crate::pg::subxact;
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    /// Runs `sql` expecting an ERROR; returns its SQLSTATE, message and hint. The statement runs
    /// in a rolled-back subtransaction so the test transaction stays usable.
    pub fn sql_error(sql: &str) -> (PgSqlErrorCode, String, Option<String>) {
        raised(|| Spi::run(sql).expect("SPI failed"))
            .unwrap_or_else(|| panic!("expected an error from: {sql}"))
    }

    /// The SQLSTATE, message and hint of the error `f` raises, if any; `f` runs in a
    /// rolled-back subtransaction so the test transaction stays usable.
    fn raised(
        f: impl FnOnce() + std::panic::UnwindSafe,
    ) -> Option<(PgSqlErrorCode, String, Option<String>)> {
        PgTryBuilder::new(|| {
            subxact::rolled_back(f);
            None
        })
        .catch_others(|caught| match caught {
            pg_sys::panic::CaughtError::PostgresError(e)
            | pg_sys::panic::CaughtError::ErrorReport(e)
            | pg_sys::panic::CaughtError::RustPanic { ereport: e, .. } => {
                Some((e.sql_error_code(), e.message().to_string(), e.hint().map(str::to_string)))
            }
        })
        .execute()
    }

    /// `read` applied to the one row of a query whose columns have known names and types.
    fn read_known_row<R>(read: impl FnOnce(&pgrx::spi::SpiHeapTupleData<'_>) -> R) -> R {
        Spi::connect(|client| {
            let sql = "SELECT 7::int4 AS n, 2.5::float8 AS x, NULL::text AS t";
            let row = client.select(sql, None, &[]).expect("select").next().expect("one row");
            read(&row)
        })
    }

    #[pg_test]
    fn spi_rows_are_read_by_name_and_a_mismatch_is_an_internal_error() {
        use crate::pg::spi;
        assert_eq!(read_known_row(|r| spi::column::<i32>(r, "n")), Some(7));
        assert_eq!(read_known_row(|r| spi::required::<f64>(r, "x")), 2.5);
        assert_eq!(read_known_row(|r| spi::column::<String>(r, "t")), None);
        type Read = fn(&pgrx::spi::SpiHeapTupleData<'_>);
        let mismatches: [(&str, Read); 3] = [
            ("\"missing\"", |r| {
                let _ = spi::column::<i32>(r, "missing");
            }),
            ("\"n\"", |r| {
                let _ = spi::column::<f64>(r, "n");
            }),
            ("\"t\"", |r| {
                let _ = spi::required::<String>(r, "t");
            }),
        ];
        for (column, read) in mismatches {
            let (code, message, _) = raised(|| read_known_row(read))
                .unwrap_or_else(|| panic!("reading {column} raised nothing"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "{message}");
            assert!(message.contains(column), "{message}");
        }
    }

    pub fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).expect("query failed").unwrap_or(0)
    }

    fn capture_nested_statements(threshold_ms: i32) {
        Spi::run(&format!("SET pitstop.slow_query_ms = {threshold_ms}")).unwrap();
        Spi::run("SET pitstop.capture_nested = on").unwrap();
        Spi::run("SELECT pitstop.slow_queries_reset()").unwrap();
    }

    #[pg_test]
    fn slow_statement_is_captured_with_its_plan() {
        capture_nested_statements(20);
        Spi::run("SELECT pg_sleep(0.05) /* pitstop-capture-me */").unwrap();
        Spi::run("SELECT 1 /* pitstop-too-fast */").unwrap();
        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop-capture-me%'"
            ),
            1
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop-too-fast%'"
            ),
            0
        );
        let (duration, plan_node, owner_ok) = Spi::get_three::<f64, String, bool>(
            "SELECT duration_ms::float8, plan->'Plan'->>'Node Type',
                    username = current_user AND database = current_database()
               FROM pitstop.slow_queries WHERE query LIKE '%pitstop-capture-me%'",
        )
        .unwrap();
        assert!(duration.unwrap() >= 50.0, "duration {duration:?}");
        assert_eq!(plan_node.as_deref(), Some("Result"));
        assert_eq!(owner_ok, Some(true));
    }

    #[pg_test]
    fn nested_statements_are_skipped_unless_asked_for() {
        capture_nested_statements(0);
        Spi::run("SET pitstop.capture_nested = off").unwrap();
        Spi::run("SELECT 1 /* pitstop-nested-off */").unwrap();
        assert_eq!(
            count(
                "SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop-nested-off%'"
            ),
            0
        );
    }

    #[pg_test]
    fn capture_analyze_records_actual_rows() {
        capture_nested_statements(0);
        Spi::run("SET pitstop.capture_analyze = on").unwrap();
        Spi::run("SELECT count(*) FROM generate_series(1, 1000) /* pitstop-analyze */").unwrap();
        // A number: PostgreSQL 18 prints actual rows with two decimals ("1.00").
        let actual = Spi::get_one::<f64>(
            "SELECT (plan->'Plan'->>'Actual Rows')::float8 FROM pitstop.slow_queries
              WHERE query LIKE '%pitstop-analyze%' AND plan_analyzed",
        )
        .unwrap();
        assert_eq!(actual, Some(1.0));
    }

    #[pg_test]
    fn negative_threshold_disables_capture_and_reset_empties() {
        capture_nested_statements(0);
        Spi::run("SELECT 1 /* pitstop-before-reset */").unwrap();
        assert!(count("SELECT count(*) FROM pitstop.slow_queries") > 0);
        Spi::run("SET pitstop.slow_query_ms = -1").unwrap();
        assert!(count("SELECT pitstop.slow_queries_reset()") > 0);
        Spi::run("SELECT 1 /* pitstop-disabled */").unwrap();
        assert_eq!(count("SELECT count(*) FROM pitstop.slow_queries"), 0);
        assert_eq!(count("SELECT captured FROM pitstop.slow_query_stats()"), 0);
    }

    #[pg_test]
    fn settings_are_validated() {
        let (code, msg, _) = sql_error("SET pitstop.slow_query_ms = -5");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "{msg}");
        let (code, _, _) = sql_error("SET pitstop.capture_analyze = 'maybe'");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        let (code, _, _) = sql_error("SET pitstop.slow_query_buffer = 50");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
        let (code, msg, _) = sql_error("SET pitstop.no_such_setting = 1");
        assert!(msg.contains("pitstop.no_such_setting"), "{code:?} {msg}");
        assert_eq!(
            Spi::get_one::<String>("SHOW pitstop.slow_query_ms").unwrap().as_deref(),
            Some("1s")
        );
    }

    #[pg_test]
    fn only_superusers_change_capture_settings() {
        Spi::run("CREATE ROLE pitstop_test_plain NOLOGIN").unwrap();
        Spi::run("SET ROLE pitstop_test_plain").unwrap();
        let (code, _, _) = sql_error("SET pitstop.slow_query_ms = 1");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
    }

    #[pg_test]
    fn other_users_statements_are_hidden() {
        capture_nested_statements(0);
        Spi::run("SELECT 1 /* pitstop-secret */").unwrap();
        Spi::run("CREATE ROLE pitstop_test_viewer NOLOGIN").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA pitstop TO pitstop_test_viewer").unwrap();
        Spi::run("GRANT SELECT ON pitstop.slow_queries TO pitstop_test_viewer").unwrap();
        Spi::run("SET ROLE pitstop_test_viewer").unwrap();
        let leaked =
            count("SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop-secret%'");
        let hidden = count("SELECT count(*) FROM pitstop.slow_queries WHERE query = '<insufficient privilege>' AND plan IS NULL");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(leaked, 0);
        assert!(hidden > 0);
        let (code, _, _) = {
            Spi::run("SET ROLE pitstop_test_viewer").unwrap();
            let e = sql_error("SELECT pitstop.slow_queries_reset()");
            Spi::run("RESET ROLE").unwrap();
            e
        };
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
    }

    #[pg_test]
    fn pg_monitor_members_read_everything() {
        capture_nested_statements(0);
        Spi::run("SELECT 1 /* pitstop-monitored */").unwrap();
        Spi::run("CREATE ROLE pitstop_test_monitor NOLOGIN IN ROLE pg_monitor").unwrap();
        Spi::run("SET ROLE pitstop_test_monitor").unwrap();
        let seen = count(
            "SELECT count(*) FROM pitstop.slow_queries WHERE query LIKE '%pitstop-monitored%'",
        );
        let views = count("SELECT count(*) FROM pitstop.connections")
            + count("SELECT count(*) FROM pitstop.blocking_locks");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(seen, 1);
        assert!(views >= 1);
    }

    #[pg_test]
    fn top_queries_needs_pg_stat_statements() {
        Spi::run("DROP EXTENSION IF EXISTS pg_stat_statements").unwrap();
        let (code, msg, hint) = sql_error("SELECT * FROM pitstop.top_queries()");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert!(msg.contains("pg_stat_statements is not installed"), "{msg}");
        assert!(hint.unwrap().contains("CREATE EXTENSION pg_stat_statements"));
    }

    #[pg_test]
    fn top_queries_ranks_statements_without_resetting() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        Spi::run("SELECT pg_stat_statements_reset()").unwrap();
        // Statements run from this test function are nested; make pg_stat_statements see them.
        Spi::run("SET pg_stat_statements.track = 'all'").unwrap();
        Spi::run("CREATE TABLE tq(i int)").unwrap();
        for _ in 0..5 {
            Spi::run("INSERT INTO tq SELECT generate_series(1, 100)").unwrap();
        }
        let before = count("SELECT sum(calls)::bigint FROM pg_stat_statements");
        let calls = count(
            "SELECT calls FROM pitstop.top_queries('calls', 50) WHERE query LIKE 'INSERT INTO tq%'",
        );
        assert_eq!(calls, 5);
        assert_eq!(count("SELECT count(*) FROM pitstop.top_queries('total_time', 2)"), 2);
        assert_eq!(count("SELECT count(*) FROM pitstop.top_queries('mean_time', 0)"), 0);
        assert!(count("SELECT sum(calls)::bigint FROM pg_stat_statements") >= before);
    }

    #[pg_test]
    fn top_queries_rejects_bad_arguments() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        let (code, msg, _) = sql_error("SELECT * FROM pitstop.top_queries('slowest')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert!(msg.contains("unknown sort key \"slowest\""), "{msg}");
        let (code, _, _) = sql_error("SELECT * FROM pitstop.top_queries('calls', -1)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        let (code, _, _) = sql_error("SELECT * FROM pitstop.top_queries(NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
        let (code, _, _) = sql_error("SELECT * FROM pitstop.top_queries('calls', NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
    }

    fn make_orders(analyzed: bool) {
        Spi::run("CREATE TABLE adv_orders(id int primary key, customer_id int, status text, total numeric)").unwrap();
        Spi::run(
            "INSERT INTO adv_orders SELECT g, g % 5000, CASE WHEN g % 100 = 0 THEN 'open' ELSE 'done' END, g
               FROM generate_series(1, 200000) g",
        )
        .unwrap();
        if analyzed {
            Spi::run("ANALYZE adv_orders").unwrap();
        }
    }

    fn findings(sql: &str) -> Vec<(String, String, String)> {
        Spi::connect(|client| {
            client
                .select(sql, None, &[])
                .unwrap()
                .map(|r| {
                    (
                        r.get::<String>(1).unwrap().unwrap(),
                        r.get::<String>(2).unwrap().unwrap(),
                        r.get::<String>(3).unwrap().unwrap(),
                    )
                })
                .collect()
        })
    }

    #[pg_test]
    fn explain_advice_finds_selective_seq_scan() {
        make_orders(true);
        let found = findings(
            "SELECT finding, node, suggestion FROM pitstop.explain_advice('SELECT * FROM adv_orders WHERE customer_id = 42')",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "seq_scan_selective_filter");
        assert_eq!(found[0].2, "CREATE INDEX CONCURRENTLY ON public.adv_orders (customer_id);");
    }

    #[pg_test]
    fn explain_advice_reports_missing_statistics() {
        make_orders(false);
        let found = findings("SELECT finding, node, suggestion FROM pitstop.explain_advice('SELECT * FROM adv_orders WHERE status = ''open''')");
        assert!(
            found
                .iter()
                .any(|f| f.0 == "missing_statistics" && f.2 == "ANALYZE public.adv_orders;"),
            "{found:?}"
        );
    }

    #[pg_test]
    fn explain_advice_analyze_measures_misestimates_and_spills() {
        make_orders(true);
        // Correlated predicates: the planner multiplies selectivities and underestimates.
        // One sort of all 2,000 rows spills at 64kB; split among parallel workers, each
        // worker's share may fit, depending on how many workers start.
        Spi::run("SET work_mem = '64kB'").unwrap();
        Spi::run("SET max_parallel_workers_per_gather = 0").unwrap();
        let found = findings(
            "SELECT finding, node, detail FROM pitstop.explain_advice(
                'SELECT * FROM adv_orders WHERE customer_id % 100 = 0 AND status = ''open'' ORDER BY total', true)",
        );
        let codes: Vec<_> = found.iter().map(|f| f.0.as_str()).collect();
        assert!(codes.contains(&"row_misestimate"), "{found:?}");
        assert!(codes.contains(&"sort_spilled_to_disk"), "{found:?}");
    }

    #[pg_test]
    fn explain_advice_analyze_changes_nothing() {
        make_orders(true);
        Spi::run(
            "SELECT * FROM pitstop.explain_advice('DELETE FROM adv_orders WHERE id <= 1000', true)",
        )
        .unwrap();
        Spi::run("SELECT * FROM pitstop.explain_advice('UPDATE adv_orders SET total = 0', true)")
            .unwrap();
        assert_eq!(count("SELECT count(*) FROM adv_orders"), 200_000);
        assert_eq!(count("SELECT count(*) FROM adv_orders WHERE total = 0"), 0);
        // Statements after it still run in the same transaction.
        Spi::run("INSERT INTO adv_orders VALUES (0, 0, 'x', 1)").unwrap();
        assert_eq!(count("SELECT count(*) FROM adv_orders"), 200_001);
    }

    #[pg_test]
    fn explain_advice_analyze_is_bounded_by_its_timeout() {
        let (code, msg, _) =
            sql_error("SELECT * FROM pitstop.explain_advice('SELECT pg_sleep(5)', true, 100)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_QUERY_CANCELED, "{msg}");
        // The session's own timeout setting is untouched and later statements run normally.
        assert_eq!(Spi::get_one::<String>("SHOW statement_timeout").unwrap().as_deref(), Some("0"));
        Spi::run("SELECT pg_sleep(0.2)").unwrap();
    }

    #[pg_test]
    fn explain_advice_rejects_bad_input() {
        Spi::run("CREATE TABLE adv_keep(i int)").unwrap();
        let cases = [
            (
                "SELECT * FROM pitstop.explain_advice('SELEC 1')",
                PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            ),
            (
                "SELECT * FROM pitstop.explain_advice('SELECT 1; DROP TABLE adv_keep')",
                PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            ),
            ("SELECT * FROM pitstop.explain_advice('')", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            (
                "SELECT * FROM pitstop.explain_advice('DROP TABLE adv_keep')",
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            ),
            (
                "SELECT * FROM pitstop.explain_advice(NULL)",
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ),
            (
                "SELECT * FROM pitstop.explain_advice('SELECT 1', NULL)",
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            ),
            (
                "SELECT * FROM pitstop.explain_advice('SELECT 1', true, -1)",
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            ),
            (
                "SELECT * FROM pitstop.explain_advice('SELECT * FROM no_such_table')",
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            ),
        ];
        for (sql, expected) in cases {
            let (code, msg, _) = sql_error(sql);
            assert_eq!(code, expected, "{sql}: {msg}");
        }
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname = 'adv_keep'"), 1);
    }

    #[pg_test]
    fn long_running_validates_and_lists() {
        let (code, _, _) = sql_error("SELECT * FROM pitstop.long_running('-1 minute')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        let (code, _, _) = sql_error("SELECT * FROM pitstop.long_running(NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
        // Our own backend is excluded; the views are queryable.
        assert_eq!(
            count("SELECT count(*) FROM pitstop.long_running('0') WHERE pid = pg_backend_pid()"),
            0
        );
        assert!(count("SELECT count(*) FROM pitstop.connections") >= 1);
        assert_eq!(count("SELECT count(*) FROM pitstop.blocking_locks"), 0);
    }

    // ---- hypothetical indexes ----------------------------------------------------------

    fn make_hypo_table() {
        Spi::run(
            "CREATE TABLE hypo_t(id int, big bigint, txt text, day date, low int, flag bool, note text, num numeric);
             INSERT INTO hypo_t SELECT g, g * 1000003::bigint, md5(g::text), date '2020-01-01' + (g % 1500),
                                       g % 100, g % 50 = 0, repeat('x', g % 20), g % 100
               FROM generate_series(1, 200000) g;
             ANALYZE hypo_t;",
        )
        .unwrap();
    }

    fn plan_of(sql: &str, options: &str) -> String {
        crate::pg::spi::explain_json(sql, options).unwrap()
    }

    fn hypo(ddl: &str) -> pg_sys::Oid {
        Spi::get_one_with_args::<pg_sys::Oid>("SELECT pitstop.hypo_create($1)", &[ddl.into()])
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn plain_explain_uses_a_hypothetical_index_and_execution_never_does() {
        make_hypo_table();
        let sql = "SELECT * FROM hypo_t WHERE id = 42";
        assert!(!plan_of(sql, "").contains("hypo_t_id_hypo"));
        let oid = hypo("CREATE INDEX ON hypo_t (id)");
        let plain = plan_of(sql, "");
        assert!(plain.contains("\"Index Name\":\"hypo_t_id_hypo\""), "{plain}");
        let analyzed = plan_of(sql, "ANALYZE");
        assert!(!analyzed.contains("hypo_t_id_hypo"), "{analyzed}");
        assert_eq!(count("SELECT count(*) FROM hypo_t WHERE id = 42"), 1);
        // No catalog rows were written for it.
        assert_eq!(
            count(&format!("SELECT count(*) FROM pg_class WHERE oid = {}", oid.to_u32())),
            0
        );
        assert!(Spi::get_one::<bool>(&format!("SELECT pitstop.hypo_drop({})", oid.to_u32()))
            .unwrap()
            .unwrap());
        assert!(!Spi::get_one::<bool>(&format!("SELECT pitstop.hypo_drop({})", oid.to_u32()))
            .unwrap()
            .unwrap());
        assert!(!plan_of(sql, "").contains("hypo_t_id_hypo"));
    }

    #[pg_test]
    fn explain_execute_never_caches_a_hypothetical_plan() {
        make_hypo_table();
        Spi::run("PREPARE hypo_p AS SELECT * FROM hypo_t WHERE id = 42").unwrap();
        hypo("CREATE INDEX ON hypo_t (id)");
        for _ in 0..7 {
            assert!(!plan_of("EXECUTE hypo_p", "").contains("hypo_t_id_hypo"));
        }
        Spi::run("EXECUTE hypo_p").unwrap();
        Spi::run("DEALLOCATE hypo_p").unwrap();
    }

    #[pg_test]
    fn a_hypothetical_index_on_a_dropped_column_is_skipped() {
        make_hypo_table();
        hypo("CREATE INDEX ON hypo_t (note)");
        Spi::run("ALTER TABLE hypo_t DROP COLUMN note").unwrap();
        let plan = plan_of("SELECT * FROM hypo_t WHERE id = 1", "");
        assert!(!plan.contains("hypo_t_note_hypo"), "{plan}");
    }

    #[pg_test]
    fn explain_advice_sees_hypothetical_indexes() {
        make_hypo_table();
        let advice =
            "SELECT count(*) FROM pitstop.explain_advice('SELECT * FROM hypo_t WHERE big = 5')";
        assert_eq!(count(advice), 1);
        hypo("CREATE INDEX ON hypo_t (big)");
        assert_eq!(count(advice), 0);
    }

    #[pg_test]
    fn ordered_multicolumn_include_partial_and_expression_indexes() {
        make_hypo_table();
        hypo("CREATE INDEX desc_idx ON hypo_t (low, day DESC NULLS FIRST)");
        let plan =
            plan_of("SELECT * FROM hypo_t WHERE low = 3 ORDER BY day DESC NULLS FIRST LIMIT 5", "");
        assert!(
            plan.contains("\"Index Name\":\"desc_idx\"")
                && !plan.contains("\"Node Type\":\"Sort\""),
            "{plan}"
        );
        hypo("CREATE INDEX cover_idx ON hypo_t (big) INCLUDE (txt)");
        let plan = plan_of("SELECT big, txt FROM hypo_t WHERE big = 1000003", "");
        assert!(plan.contains("Index Only Scan") && plan.contains("cover_idx"), "{plan}");
        hypo("CREATE INDEX flag_idx ON hypo_t (note) WHERE flag");
        let plan = plan_of("SELECT * FROM hypo_t WHERE flag AND note = 'xx'", "");
        assert!(plan.contains("flag_idx"), "{plan}");
        let plan = plan_of("SELECT * FROM hypo_t WHERE note = 'xx'", "");
        assert!(!plan.contains("flag_idx"), "partial index used without its predicate: {plan}");
        hypo("CREATE INDEX lower_idx ON hypo_t (lower(txt))");
        let plan = plan_of("SELECT * FROM hypo_t WHERE lower(txt) = 'abc'", "");
        assert!(plan.contains("lower_idx"), "{plan}");
        let ddls: Vec<String> = Spi::connect(|c| {
            c.select("SELECT ddl FROM pitstop.hypo_list() ORDER BY index_name", None, &[])
                .unwrap()
                .map(|r| r.get::<String>(1).unwrap().unwrap())
                .collect()
        });
        assert_eq!(
            ddls,
            [
                "CREATE INDEX CONCURRENTLY ON public.hypo_t (big) INCLUDE (txt)",
                "CREATE INDEX CONCURRENTLY ON public.hypo_t (low, day DESC)",
                "CREATE INDEX CONCURRENTLY ON public.hypo_t (note) WHERE flag",
                "CREATE INDEX CONCURRENTLY ON public.hypo_t ((lower(txt)))",
            ]
        );
        assert_eq!(count("SELECT pitstop.hypo_reset()"), 4);
        assert_eq!(count("SELECT count(*) FROM pitstop.hypo_list()"), 0);
    }

    #[pg_test]
    fn brin_and_hash_hypothetical_indexes() {
        Spi::run(
            "CREATE TABLE hypo_log(at timestamptz, token text);
             INSERT INTO hypo_log SELECT timestamptz '2024-01-01' + g * interval '1 second', md5(g::text)
               FROM generate_series(1, 300000) g;
             ANALYZE hypo_log;",
        )
        .unwrap();
        hypo("CREATE INDEX ON hypo_log USING brin (at)");
        let plan = plan_of(
            "SELECT * FROM hypo_log WHERE at BETWEEN '2024-01-02' AND '2024-01-02 01:00'",
            "",
        );
        assert!(plan.contains("hypo_log_at_hypo"), "{plan}");
        hypo("CREATE INDEX ON hypo_log USING hash (token)");
        let plan = plan_of("SELECT * FROM hypo_log WHERE token = 'abc'", "");
        assert!(plan.contains("hypo_log_token_hypo"), "{plan}");
        let brin_bytes =
            count("SELECT estimated_bytes FROM pitstop.hypo_list() WHERE access_method = 'brin'");
        assert!(brin_bytes < 100_000, "brin {brin_bytes}");
    }

    #[pg_test]
    fn hypothetical_btree_sizes_are_within_20_percent_of_real_ones() {
        make_hypo_table();
        // Repeated keys deduplicate, except with INCLUDE columns or a numeric key.
        for column in [
            "(id)",
            "(big)",
            "(txt)",
            "(day)",
            "(low)",
            "(low, id)",
            "(low) INCLUDE (big)",
            "(day) INCLUDE (id, txt)",
            "(num)",
        ] {
            let oid = hypo(&format!("CREATE INDEX ON hypo_t {column}"));
            let estimated = count(&format!("SELECT pitstop.hypo_size({})", oid.to_u32())) as f64;
            Spi::run(&format!("CREATE INDEX real_size_idx ON hypo_t {column}")).unwrap();
            let real = count("SELECT pg_relation_size('real_size_idx')") as f64;
            Spi::run("DROP INDEX real_size_idx").unwrap();
            let error = (estimated - real).abs() / real;
            assert!(
                error <= 0.20,
                "{column}: estimated {estimated}, real {real} ({:.0}%)",
                error * 100.0
            );
        }
    }

    #[pg_test]
    fn hiding_a_real_index_changes_explain_only() {
        make_hypo_table();
        Spi::run("CREATE INDEX hypo_t_real ON hypo_t (id)").unwrap();
        let sql = "SELECT * FROM hypo_t WHERE id = 7";
        assert!(plan_of(sql, "").contains("hypo_t_real"));
        assert!(Spi::get_one::<bool>("SELECT pitstop.hypo_hide('hypo_t_real')").unwrap().unwrap());
        assert!(!plan_of(sql, "").contains("hypo_t_real"));
        assert!(plan_of(sql, "ANALYZE").contains("hypo_t_real"), "execution keeps using it");
        assert_eq!(count("SELECT count(*) FROM pitstop.hypo_hidden()"), 1);
        assert!(Spi::get_one::<bool>("SELECT pitstop.hypo_unhide('hypo_t_real')")
            .unwrap()
            .unwrap());
        assert!(plan_of(sql, "").contains("hypo_t_real"));
    }

    #[pg_test]
    fn hypothetical_index_bad_input_is_rejected_and_changes_nothing() {
        make_hypo_table();
        hypo("CREATE INDEX keep_idx ON hypo_t (id)");
        let relations = count("SELECT count(*) FROM pg_class");
        let cases = [
            ("SELECT pitstop.hypo_create('SELECT 1')", PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            ("SELECT pitstop.hypo_create('CREAT INDEX ON hypo_t (id)')", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t (id); DROP TABLE hypo_t')", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON no_such_table (id)')", PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t (no_such_column)')", PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t USING gist (id)')", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t USING nope (id)')", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t USING hash (id, big)')", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t USING hash (id) INCLUDE (big)')", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t USING hash (id DESC)')", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON hypo_t (id text_pattern_ops)')", PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH),
            ("SELECT pitstop.hypo_create('CREATE INDEX keep_idx ON hypo_t (big)')", PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT),
            ("SELECT pitstop.hypo_create('CREATE INDEX ON pg_stat_activity (pid)')", PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE),
            ("SELECT pitstop.hypo_create(NULL)", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("SELECT pitstop.hypo_size(12345)", PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT),
            ("SELECT pitstop.hypo_hide('hypo_t')", PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE),
        ];
        for (sql, expected) in cases {
            let (code, msg, _) = sql_error(sql);
            assert_eq!(code, expected, "{sql}: {msg}");
        }
        assert_eq!(count("SELECT count(*) FROM pitstop.hypo_list()"), 1);
        assert_eq!(count("SELECT count(*) FROM pg_class"), relations);
        assert_eq!(count("SELECT count(*) FROM hypo_t"), 200_000);
    }

    #[pg_test]
    fn a_sub_partitioned_table_counts_the_rows_of_every_level() {
        // The parent's one partition is itself partitioned: its `tuples` are the rows its scan
        // returns, so the parent's size must come from the leaves.
        Spi::run(
            "CREATE TABLE sub_ev(account int, region int, payload text) PARTITION BY LIST (region);
             CREATE TABLE sub_ev_1 PARTITION OF sub_ev FOR VALUES IN (1) PARTITION BY HASH (account);
             CREATE TABLE sub_ev_1a PARTITION OF sub_ev_1 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE sub_ev_1b PARTITION OF sub_ev_1 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
             INSERT INTO sub_ev SELECT g % 5000, 1, md5(g::text) FROM generate_series(1, 100000) g;
             ANALYZE sub_ev;",
        )
        .unwrap();
        let reason = Spi::get_one::<String>(
            "SELECT reason FROM pitstop.unhelped_queries(
                 queries => ARRAY['SELECT payload FROM sub_ev WHERE account = 42'],
                 min_improvement => 0.9999)",
        )
        .unwrap()
        .unwrap();
        assert!(reason.starts_with("no candidate index lowers its estimated cost"), "{reason}");
    }

    /// The size model deduplicates a btree key exactly when the server does: each type's
    /// index of 20,000 rows of 10 values is built with and without deduplicate_items.
    #[pg_test]
    fn size_model_deduplicates_the_key_types_the_server_deduplicates() {
        use pitstop_core::advisor::size::{deduplicates, BPCHAR, DEDUPLICABLE_TYPES};
        assert_eq!(BPCHAR, pg_sys::BPCHAROID.to_u32());
        let types = [
            ("int2", pg_sys::INT2OID, "(g % 10)::int2"),
            ("int4", pg_sys::INT4OID, "g % 10"),
            ("int8", pg_sys::INT8OID, "(g % 10)::int8"),
            ("oid", pg_sys::OIDOID, "(g % 10)::oid"),
            ("bool", pg_sys::BOOLOID, "g % 2 = 0"),
            ("\"char\"", pg_sys::CHAROID, "chr(65 + g % 10)::\"char\""),
            ("name", pg_sys::NAMEOID, "('n' || g % 10)::name"),
            ("date", pg_sys::DATEOID, "date '2024-01-01' + g % 10"),
            ("time", pg_sys::TIMEOID, "time '00:00' + (g % 10) * interval '1 minute'"),
            (
                "timestamp",
                pg_sys::TIMESTAMPOID,
                "timestamp '2024-01-01' + (g % 10) * interval '1 day'",
            ),
            (
                "timestamptz",
                pg_sys::TIMESTAMPTZOID,
                "timestamptz '2024-01-01' + (g % 10) * interval '1 day'",
            ),
            ("uuid", pg_sys::UUIDOID, "md5((g % 10)::text)::uuid"),
            ("text", pg_sys::TEXTOID, "'value ' || g % 10"),
            ("varchar(20)", pg_sys::VARCHAROID, "'value ' || g % 10"),
            ("char(20)", pg_sys::BPCHAROID, "'value ' || g % 10"),
            ("numeric", pg_sys::NUMERICOID, "g % 10"),
            ("float8", pg_sys::FLOAT8OID, "g % 10"),
            ("interval", pg_sys::INTERVALOID, "(g % 10) * interval '1 day'"),
            ("jsonb", pg_sys::JSONBOID, "to_jsonb(g % 10)"),
        ];
        for (sql_type, oid, value) in types {
            Spi::run(&format!(
                "CREATE TABLE dedup_t(v {sql_type});
                 INSERT INTO dedup_t SELECT {value} FROM generate_series(1, 20000) g;
                 CREATE INDEX dedup_on ON dedup_t (v);
                 CREATE INDEX dedup_off ON dedup_t (v) WITH (deduplicate_items = off);"
            ))
            .unwrap();
            let size = |index: &str| {
                Spi::get_one::<i64>(&format!("SELECT pg_relation_size('{index}')"))
                    .unwrap()
                    .unwrap()
            };
            let deduplicated = (size("dedup_on") as f64) < 0.7 * size("dedup_off") as f64;
            Spi::run("DROP TABLE dedup_t").unwrap();
            assert_eq!(
                deduplicates(oid.to_u32(), pg_sys::PG_VERSION_NUM / 10000),
                deduplicated,
                "{sql_type}: the server {} it",
                if deduplicated { "deduplicates" } else { "does not deduplicate" }
            );
        }
        let tested: Vec<u32> = types.iter().map(|(_, oid, _)| oid.to_u32()).collect();
        assert!(DEDUPLICABLE_TYPES.iter().all(|oid| tested.contains(oid)));
    }

    /// pg_stat_statements records `d1 + 5` as `d1 + $1`: planned with `$1` an integer.
    #[pg_test]
    fn normalized_date_arithmetic_is_planned() {
        use pitstop_core::advisor::normalized::{INT4, INT8, NUMERIC, TEXT, UNKNOWN};
        let pinned = [INT4, INT8, NUMERIC, TEXT, UNKNOWN];
        let server = [
            pg_sys::INT4OID,
            pg_sys::INT8OID,
            pg_sys::NUMERICOID,
            pg_sys::TEXTOID,
            pg_sys::UNKNOWNOID,
        ];
        assert_eq!(pinned, server.map(|oid| oid.to_u32()));
        Spi::run(
            "CREATE TABLE nd(d1 date, d3 date);
             INSERT INTO nd SELECT date '2024-01-01' + g % 100, date '2024-01-01' + g % 90
               FROM generate_series(1, 1000) g;
             ANALYZE nd;",
        )
        .unwrap();
        let reasons = Spi::get_one::<String>(
            "SELECT coalesce(string_agg(reason, '; '), '') FROM pitstop.unhelped_queries(
                 queries => ARRAY['SELECT count(*) FROM nd WHERE d3 > d1 + $1'])",
        )
        .unwrap()
        .unwrap();
        assert!(!reasons.contains("could not be planned"), "{reasons}");
    }

    /// An ERROR inside pitstop's own SQL that is caught without a subtransaction (the cache's
    /// `shielded` steps) leaves the caller's search_path as it was (review R16: it had kept
    /// `pg_catalog, pg_temp`, and a SECURITY DEFINER caller then read the invoker's pg_temp).
    #[pg_test]
    fn a_pinned_search_path_is_put_back_after_an_error_caught_without_a_subtransaction() {
        Spi::run("SET LOCAL search_path = public, pitstop").unwrap();
        let caught = crate::pg::subxact::shielded(|| {
            crate::pg::guc::with_pinned_search_path(|| -> i32 { pgrx::error!("boom") })
        });
        assert!(caught.is_none());
        assert_eq!(
            Spi::get_one::<String>("SHOW search_path").unwrap().as_deref(),
            Some("public, pitstop")
        );
        let nested = crate::pg::subxact::shielded(|| {
            crate::pg::guc::with_pinned_search_path(|| {
                crate::pg::guc::with_pinned_search_path(|| -> i32 { pgrx::error!("deeper") })
            })
        });
        assert!(nested.is_none());
        assert_eq!(
            Spi::get_one::<String>("SHOW search_path").unwrap().as_deref(),
            Some("public, pitstop")
        );
    }

    /// pitstop's own SQL resolves functions in pg_catalog only: overloads that match its
    /// arguments better (CVE-2018-1058's pattern), planted in a schema on the caller's
    /// search_path, are never called, and the caller's search_path is the same afterwards.
    #[pg_test]
    fn own_sql_never_calls_an_overload_planted_on_the_callers_search_path() {
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        Spi::run(
            "CREATE SCHEMA planted;
             CREATE SEQUENCE planted.calls;
             CREATE FUNCTION planted.quote_ident(name) RETURNS text LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN pg_catalog.quote_ident($1::text); END $$;
             CREATE FUNCTION planted.unnest(int2[]) RETURNS SETOF int2 LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
             CREATE FUNCTION planted.cardinality(int2[]) RETURNS int LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN pg_catalog.cardinality($1); END $$;
             CREATE FUNCTION planted.format(text, name, name) RETURNS text LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN pg_catalog.format($1, $2, $3); END $$;
             CREATE FUNCTION planted.step(text[], text) RETURNS text[] LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN $1 || $2; END $$;
             CREATE AGGREGATE planted.array_agg(text) (sfunc = planted.step, stype = text[]);
             CREATE FUNCTION planted.step(text[], name) RETURNS text[] LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_catalog.nextval('planted.calls'); RETURN $1 || $2::text; END $$;
             CREATE AGGREGATE planted.array_agg(name) (sfunc = planted.step, stype = text[]);
             CREATE TABLE planted.parent(id int PRIMARY KEY);
             CREATE TABLE planted.child(pid int REFERENCES planted.parent, v int);
             INSERT INTO planted.child SELECT NULL, g FROM pg_catalog.generate_series(1, 5000) g;
             ANALYZE planted.child;
             SET LOCAL search_path = planted, public;",
        )
        .unwrap();
        for sql in [
            "SELECT count(*) FROM pitstop.top_queries()",
            "SELECT count(*) FROM pitstop.vacuum_health",
            "SELECT count(*) FROM pitstop.index_health",
            "SELECT count(*) FROM pitstop.table_bloat",
            "SELECT count(*) FROM pitstop.config_advice()",
            "SELECT count(*) FROM pitstop.hypo_create('CREATE INDEX ON child (v) WHERE pid IS NULL')",
            "SELECT count(*) FROM pitstop.suggest_indexes(queries => ARRAY['SELECT * FROM child WHERE v = 5'])",
            "SELECT count(*) FROM pitstop.unhelped_queries()",
            "SELECT count(*) FROM pitstop.explain_advice('SELECT * FROM child WHERE v = 5')",
        ] {
            Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(
                Spi::get_one::<bool>("SELECT is_called FROM planted.calls").unwrap(),
                Some(false),
                "{sql} called a planted function"
            );
            assert_eq!(
                Spi::get_one::<String>("SHOW search_path").unwrap().as_deref(),
                Some("planted, public"),
                "{sql}"
            );
        }
        Spi::run("SELECT pitstop.hypo_reset()").unwrap();
    }
}
