//! `#[pg_test]`s of the advisor's candidate kinds (issue 15, part 7): each suggestion is built
//! for real and the real planner must then use it for the statement it was suggested for.
use pgrx::prelude::*;

// The pg_test runner calls functions in schema "tests", so the module has that name too.
#[pg_schema]
mod tests {
    use crate::pg::spi::required;
    use pgrx::prelude::*;

    /// Suggested DDL for a workload of statements.
    fn advice(queries: &[&str]) -> Vec<String> {
        let array = queries.iter().map(|q| format!("$q${q}$q$")).collect::<Vec<_>>().join(", ");
        Spi::connect(|client| {
            client
                .select(&format!("SELECT ddl FROM pitstop.suggest_indexes(queries => ARRAY[{array}]) ORDER BY rank"), None, &[])
                .unwrap()
                .map(|row| required::<String>(&row, "ddl"))
                .collect()
        })
    }

    /// Builds `ddl` under the name `name` (CONCURRENTLY cannot run in the test's transaction).
    fn build(ddl: &str, name: &str) {
        let sql = ddl
            .replace("CREATE INDEX CONCURRENTLY ON", &format!("CREATE INDEX {name} ON"))
            .replacen("CREATE INDEX ON", &format!("CREATE INDEX {name} ON"), 1);
        Spi::run(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The real planner's plan for `sql`, as compact JSON text.
    fn plan(sql: &str) -> String {
        let text = crate::pg::spi::explain_json(sql, "").unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap().to_string()
    }

    fn make_users() {
        Spi::run(
            "CREATE TABLE cand_users(id int PRIMARY KEY, email text, signed_up timestamp, plan text);
             INSERT INTO cand_users SELECT g, 'User' || g || '@Example.com', timestamp '2024-01-01' + g * interval '7 minutes',
                    CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END
               FROM generate_series(1, 100000) g;
             CREATE TABLE cand_logins(id int, email text, at timestamp);
             INSERT INTO cand_logins SELECT g, 'user' || (g % 100000) || '@example.com', timestamp '2024-01-01' + g * interval '1 minute'
               FROM generate_series(1, 200000) g;
             ANALYZE cand_users, cand_logins;",
        )
        .unwrap();
    }

    #[pg_test]
    fn an_expression_in_a_filter_gets_an_expression_index_the_planner_uses() {
        make_users();
        let ddl = advice(&["SELECT id, plan FROM cand_users WHERE lower(email) = $1"]);
        let expression = ddl
            .iter()
            .find(|d| d.contains("((lower(email)))"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        assert!(
            expression
                .starts_with("CREATE INDEX CONCURRENTLY ON public.cand_users ((lower(email)))"),
            "{expression}"
        );
        build(expression, "cand_users_lower_email");
        let used =
            plan("SELECT id, plan FROM cand_users WHERE lower(email) = 'user42@example.com'");
        assert!(used.contains("cand_users_lower_email"), "{used}");
    }

    #[pg_test]
    fn an_expression_on_both_sides_of_a_join_gets_an_expression_index() {
        make_users();
        let statement = "SELECT l.at FROM cand_users u JOIN cand_logins l ON lower(l.email) = lower(u.email) WHERE u.id = $1";
        let ddl = advice(&[statement]);
        let expression = ddl
            .iter()
            .find(|d| d.contains("cand_logins ((lower(email)))"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        build(expression, "cand_logins_lower_email");
        let used = plan(&statement.replace("$1", "42"));
        assert!(used.contains("cand_logins_lower_email"), "{used}");
    }

    #[pg_test]
    fn only_immutable_expressions_are_candidates() {
        Spi::run(
            "CREATE TABLE cand_visits(id int, seen timestamptz, at timestamp);
             INSERT INTO cand_visits SELECT g, timestamptz '2024-01-01' + g * interval '1 minute', timestamp '2024-01-01' + g * interval '1 minute'
               FROM generate_series(1, 100000) g;
             ANALYZE cand_visits;",
        )
        .unwrap();
        // date_trunc over timestamptz depends on the TimeZone setting: no index can hold it.
        let ddl = advice(&["SELECT id FROM cand_visits WHERE date_trunc('day', seen) = $1"]);
        assert!(!ddl.iter().any(|d| d.contains("date_trunc")), "{ddl:?}");
        // Over timestamp it is immutable.
        let ddl = advice(&["SELECT id FROM cand_visits WHERE date_trunc('day', at) = $1"]);
        let day = ddl
            .iter()
            .find(|d| d.contains("((date_trunc('day'::text, at)))"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        build(day, "cand_visits_day");
        let used = plan("SELECT id FROM cand_visits WHERE date_trunc('day', at) = '2024-02-01'");
        assert!(used.contains("cand_visits_day"), "{used}");
    }

    #[pg_test]
    fn a_group_by_expression_gets_an_index_in_group_order() {
        make_users();
        // Daily counts of the most recent days: the index streams the groups in order, so the
        // planner reads a few of them instead of sorting or hashing the whole table.
        let statement = "SELECT date_trunc('day', signed_up) AS day, count(*) FROM cand_users
                          GROUP BY date_trunc('day', signed_up) ORDER BY 1 DESC LIMIT 7";
        let before = plan(statement);
        assert!(before.contains(r#""Node Type":"Seq Scan""#), "{before}");
        let ddl = advice(&[statement]);
        let grouped = ddl
            .iter()
            .find(|d| d.contains("(date_trunc('day'::text, signed_up))"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        build(grouped, "cand_users_day");
        let used = plan(statement);
        assert!(
            used.contains("cand_users_day") && used.contains(r#""Strategy":"Sorted""#),
            "{used}"
        );
        assert!(!used.contains(r#""Node Type":"Sort""#), "{used}");
    }

    #[pg_test]
    fn a_group_by_column_gets_an_index_in_group_order() {
        Spi::run(
            "CREATE TABLE cand_sales(id int, store int, amount numeric, sold timestamp);
             INSERT INTO cand_sales SELECT g, g % 5000, g % 97, timestamp '2024-01-01' + g * interval '1 second'
               FROM generate_series(1, 200000) g;
             ANALYZE cand_sales;",
        )
        .unwrap();
        let statement =
            "SELECT store, sum(amount) FROM cand_sales GROUP BY store ORDER BY store LIMIT 20";
        let ddl = advice(&[statement]);
        let grouped = ddl
            .iter()
            .find(|d| d.contains("cand_sales (store)"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        build(grouped, "cand_sales_store");
        let used = plan(statement);
        assert!(
            used.contains("cand_sales_store") && used.contains(r#""Strategy":"Sorted""#),
            "{used}"
        );
    }

    #[pg_test]
    fn a_partitioned_table_gets_one_index_on_the_parent_used_on_every_partition() {
        Spi::run(
            "CREATE TABLE cand_events(account int, at timestamp, payload text) PARTITION BY RANGE (at);
             CREATE TABLE cand_events_1 PARTITION OF cand_events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
             CREATE TABLE cand_events_2 PARTITION OF cand_events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
             -- Columns in another order, and a dropped one: attribute numbers differ from the parent's.
             CREATE TABLE cand_events_3(gone int, payload text, at timestamp, account int);
             ALTER TABLE cand_events_3 DROP COLUMN gone;
             ALTER TABLE cand_events ATTACH PARTITION cand_events_3 FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
             INSERT INTO cand_events SELECT g % 10000, timestamp '2024-01-01' + g * interval '30 seconds', md5(g::text)
               FROM generate_series(1, 250000) g;
             ANALYZE cand_events;",
        )
        .unwrap();
        let statement = "SELECT at, payload FROM cand_events WHERE account = $1";
        let ddl = advice(&[statement]);
        assert!(
            !ddl.iter().any(|d| d.contains("cand_events_")),
            "no per-partition candidates: {ddl:?}"
        );
        let parent = ddl
            .iter()
            .find(|d| d.starts_with("CREATE INDEX ON public.cand_events (account)"))
            .unwrap_or_else(|| panic!("{ddl:?}"));
        let purpose = Spi::get_one_with_args::<String>(
            "SELECT reason FROM pitstop.suggest_indexes(queries => ARRAY[$1]) WHERE ddl = $2",
            &[statement.into(), parent.as_str().into()],
        )
        .unwrap()
        .unwrap();
        assert!(purpose.contains("ATTACH PARTITION"), "{purpose}");
        // pitstop.hypo_create takes it too, and hypo_list gives DDL that runs on the parent.
        Spi::get_one_with_args::<pg_sys::Oid>(
            "SELECT pitstop.hypo_create($1)",
            &[parent.as_str().into()],
        )
        .unwrap();
        let listed =
            Spi::get_one::<String>("SELECT ddl FROM pitstop.hypo_list()").unwrap().unwrap();
        assert!(
            listed.starts_with("CREATE INDEX ON ") && listed.ends_with("cand_events (account)"),
            "{listed}"
        );
        Spi::run("SELECT pitstop.hypo_reset()").unwrap();
        build(parent, "cand_events_account");
        let used = plan(&statement.replace("$1", "42"));
        for partition in ["cand_events_1", "cand_events_2", "cand_events_3"] {
            assert!(
                used.contains(&format!("\"Index Name\":\"{partition}_account_idx\"")),
                "{partition}: {used}"
            );
        }
    }

    #[pg_test]
    fn an_implicitly_cast_column_gets_an_index_on_the_cast() {
        // `y = 2000.5` compares `y::numeric`: an index on y cannot serve it, one on the cast can.
        Spi::run(
            "CREATE TABLE cand_years(id int, y int);
             INSERT INTO cand_years SELECT g, g % 5000 FROM generate_series(1, 200000) g;
             ANALYZE cand_years;",
        )
        .unwrap();
        let statement = "SELECT id FROM cand_years WHERE y = 2000.5";
        let ddl = advice(&[statement]);
        let cast = ddl
            .iter()
            .find(|d| d.contains("::numeric"))
            .unwrap_or_else(|| panic!("no index on the cast: {ddl:?}"));
        build(cast, "cand_years_cast");
        let used = plan(statement);
        assert!(used.contains("\"Index Name\":\"cand_years_cast\""), "{cast}: {used}");
    }

    /// An index under another collation than the column's cannot serve the column's
    /// comparisons (the planner matches collations exactly): it covers no candidate, and the
    /// advice stays the plain index rather than a covering variant the old check let through.
    #[pg_test]
    fn an_index_under_another_collation_does_not_cover_the_column() {
        Spi::run(
            "CREATE TABLE cand_coll(id int, name text, pad text);
             INSERT INTO cand_coll SELECT g, 'name' || g, repeat('x', 300) FROM generate_series(1, 100000) g;
             ANALYZE cand_coll;",
        )
        .unwrap();
        let statement = "SELECT id, pad FROM cand_coll WHERE name = $1";
        let plain = "CREATE INDEX CONCURRENTLY ON public.cand_coll (name)";
        let before = advice(&[statement]);
        assert_eq!(before, [plain], "{before:?}");
        Spi::run(r#"CREATE INDEX cand_coll_c ON cand_coll (name COLLATE "C")"#).unwrap();
        let literal = statement.replace("$1", "'name42'");
        assert!(!plan(&literal).contains("cand_coll_c"), "the C index serves the query");
        let after = advice(&[statement]);
        assert_eq!(after, [plain], "{after:?}");
        build(plain, "cand_coll_name");
        assert!(plan(&literal).contains("cand_coll_name"));
        // Under the column's own collation, spelled out, the index does cover it.
        Spi::run(
            r#"DROP INDEX cand_coll_name, cand_coll_c;
               CREATE INDEX cand_coll_default ON cand_coll (name COLLATE "default")"#,
        )
        .unwrap();
        let covered = advice(&[statement]);
        assert!(!covered.iter().any(|d| d == plain), "{covered:?}");
    }

    /// Reasons unhelped_queries gives for `queries`, by statement.
    fn unhelped(queries: &[&str]) -> Vec<(String, String)> {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT query, reason FROM pitstop.unhelped_queries(queries => $1)",
                    None,
                    &[queries.iter().map(|q| q.to_string()).collect::<Vec<String>>().into()],
                )
                .unwrap()
                .map(|row| (required::<String>(&row, "query"), required::<String>(&row, "reason")))
                .collect()
        })
    }

    /// pg_stat_statements records `substr(email, 1, 8)` as `substr(email, $1, $2)`: an index
    /// holds the expression with its constants, so none is proposed from that text, and the
    /// statement's reason says so (and how to get one) instead of a generic "no candidate".
    #[pg_test]
    fn an_expression_with_parameters_for_constants_is_named_in_the_reason() {
        make_users();
        Spi::run(
            "CREATE TABLE cand_events(id int, data jsonb, at timestamp);
             INSERT INTO cand_events SELECT g, jsonb_build_object('kind', 'k' || g), timestamp '2024-01-01' + g * interval '1 minute'
               FROM generate_series(1, 100000) g;
             ANALYZE cand_events;",
        )
        .unwrap();
        // The literal text gets an expression index.
        let literal = advice(&["SELECT id FROM cand_users WHERE substr(email, 1, 8) = 'User4211'"]);
        assert!(literal.iter().any(|d| d.contains("((substr(email, 1, 8)))")), "{literal:?}");
        let normalized = [
            ("SELECT id FROM cand_users WHERE substr(email, $1, $2) = $3", "substr(email, $1, $2)"),
            ("SELECT id FROM cand_events WHERE data ->> $1 = $2", "(data ->> $1)"),
            ("SELECT id FROM cand_events WHERE date_trunc($1, at) = $2", "date_trunc($1, at)"),
        ];
        let statements: Vec<&str> = normalized.iter().map(|(s, _)| *s).collect();
        let ddl = advice(&statements);
        assert!(!ddl.iter().any(|d| d.contains('$')), "{ddl:?}");
        let reasons = unhelped(&statements);
        assert_eq!(reasons.len(), normalized.len(), "{reasons:?}");
        for ((statement, expression), (query, reason)) in normalized.iter().zip(&reasons) {
            assert_eq!(query, statement);
            assert!(
                reason.contains(expression)
                    && reason.contains("pg_stat_statements")
                    && reason.contains("queries =>")
                    && !reason.contains("lowers its estimated cost"),
                "{statement}: {reason}"
            );
        }
    }

    /// An append-only event log of `rows` rows over about 70 days: `at` follows the insertion
    /// order, or with `shuffled` the rows are written in random order.
    fn make_log(rows: i64, shuffled: bool) {
        let order = if shuffled { "random()" } else { "g" };
        Spi::run(&format!(
            "CREATE TABLE cand_log(id bigint, at timestamp, kind int, payload text);
             INSERT INTO cand_log SELECT g, timestamp '2024-01-01' + g * interval '10 seconds', g % 7, md5(g::text)
               FROM generate_series(1, {rows}) g ORDER BY {order};
             ANALYZE cand_log;"
        ))
        .unwrap();
    }

    const ONE_DAY: &str = "SELECT id, payload FROM cand_log WHERE at >= $1 AND at < $2";

    /// Suggested DDL under a budget in MB.
    fn advice_within(queries: &[&str], budget_mb: f64) -> Vec<String> {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT ddl FROM pitstop.suggest_indexes(queries => $1, budget_mb => $2) ORDER BY rank",
                    None,
                    &[queries.iter().map(|q| q.to_string()).collect::<Vec<String>>().into(), budget_mb.into()],
                )
                .unwrap()
                .map(|row| required::<String>(&row, "ddl"))
                .collect()
        })
    }

    #[pg_test]
    fn an_append_only_table_filtered_on_a_correlated_column_gets_a_brin_index_the_planner_uses() {
        make_log(600_000, false);
        let pages = Spi::get_one::<i64>(
            "SELECT pg_relation_size('cand_log') / current_setting('block_size')::int8",
        )
        .unwrap()
        .unwrap();
        assert!(pages as f64 >= pitstop_core::advisor::candidates::BRIN_MIN_PAGES, "{pages}");
        // A btree on the column (about 13 MB) does not fit 1 MB; the BRIN (3 pages) does.
        let ddl = advice_within(&[ONE_DAY], 1.0);
        let brin = "CREATE INDEX CONCURRENTLY ON public.cand_log USING brin (at)";
        assert!(ddl.iter().any(|d| d == brin), "{ddl:?}");
        let (reason, bytes) = Spi::get_two_with_args::<String, i64>(
            "SELECT reason, estimated_bytes FROM pitstop.suggest_indexes(queries => ARRAY[$1], budget_mb => 1) WHERE ddl = $2",
            &[ONE_DAY.into(), brin.into()],
        )
        .unwrap();
        assert!(reason.unwrap().starts_with("brin on (at)"));
        let bytes = bytes.unwrap();
        let day = ONE_DAY.replace("$1", "'2024-02-01'").replace("$2", "'2024-02-02'");
        // The hypothetical index: a plain EXPLAIN plans a bitmap scan on it.
        Spi::get_one_with_args::<pg_sys::Oid>("SELECT pitstop.hypo_create($1)", &[brin.into()])
            .unwrap();
        let hypothetical = plan(&day);
        assert!(
            hypothetical.contains(r#""Node Type":"Bitmap Index Scan""#)
                && hypothetical.contains(r#""Index Name":"cand_log_at_hypo""#),
            "{hypothetical}"
        );
        Spi::run("SELECT pitstop.hypo_reset()").unwrap();
        // The suggested DDL built for real: the real planner scans it the same way, and its
        // size is the one the advice gave.
        build(brin, "cand_log_at_brin");
        let real = plan(&day);
        assert!(
            real.contains(r#""Node Type":"Bitmap Index Scan""#)
                && real.contains(r#""Index Name":"cand_log_at_brin""#),
            "{real}"
        );
        let built =
            Spi::get_one::<i64>("SELECT pg_relation_size('cand_log_at_brin')").unwrap().unwrap();
        assert_eq!(bytes, built, "estimated vs real size");
    }

    #[pg_test]
    fn the_same_table_with_the_column_out_of_order_gets_no_brin_index() {
        make_log(600_000, true);
        let correlation = Spi::get_one::<f64>(
            "SELECT correlation::float8 FROM pg_stats WHERE tablename = 'cand_log' AND attname = 'at'",
        )
        .unwrap()
        .unwrap();
        assert!(correlation.abs() < 0.5, "{correlation}");
        for ddl in [advice(&[ONE_DAY]), advice_within(&[ONE_DAY], 1.0)] {
            assert!(!ddl.iter().any(|d| d.contains("USING brin")), "{ddl:?}");
        }
    }

    #[pg_test]
    fn no_brin_is_suggested_where_one_exists_on_the_column() {
        make_log(600_000, false);
        // Another range size than the advisor's: a hypothetical default one would plan cheaper.
        Spi::run(
            "CREATE INDEX cand_log_at ON cand_log USING brin (at) WITH (pages_per_range = 512)",
        )
        .unwrap();
        let ddl = advice_within(&[ONE_DAY], 1.0);
        assert!(!ddl.iter().any(|d| d.contains("USING brin")), "{ddl:?}");
    }

    #[pg_test]
    fn a_bloom_brin_on_the_column_does_not_stand_for_a_minmax_one() {
        make_log(600_000, false);
        // A bloom BRIN answers equality only: the day's range still wants the default BRIN.
        Spi::run("CREATE INDEX cand_log_at ON cand_log USING brin (at timestamp_bloom_ops)")
            .unwrap();
        let ddl = advice_within(&[ONE_DAY], 1.0);
        assert!(ddl.iter().any(|d| d.contains("USING brin (at)")), "{ddl:?}");
    }

    #[pg_test]
    fn hypothetical_brin_indexes_never_break_planning() {
        Spi::run(
            "CREATE TABLE cand_empty(id int, at timestamp);
             CREATE TABLE cand_parts(id int, at timestamp) PARTITION BY RANGE (at);
             CREATE TABLE cand_parts_1 PARTITION OF cand_parts FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
        )
        .unwrap();
        make_log(20_000, false);
        let statements = [
            "SELECT * FROM cand_log WHERE at BETWEEN '2024-01-02' AND '2024-01-03'",
            "SELECT * FROM cand_log WHERE at = '2024-01-02' OR id < 10",
            "SELECT * FROM cand_log WHERE at IN ('2024-01-02', '2024-01-03') AND kind IS NULL",
            "SELECT * FROM cand_log WHERE at::date = '2024-01-02' AND kind = 3",
            "SELECT * FROM cand_log l JOIN cand_empty e ON e.at = l.at WHERE e.id = 1",
            "SELECT count(*) FROM cand_empty WHERE at > now()::timestamp",
            "SELECT * FROM cand_parts WHERE at < '2024-02-01'",
        ];
        for ddl in [
            "CREATE INDEX ON cand_log USING brin (at)",
            "CREATE INDEX ON cand_log USING brin (at, kind) WITH (pages_per_range = 128)",
            "CREATE INDEX ON cand_log USING brin ((at::date)) WHERE kind = 3",
            "CREATE INDEX ON cand_empty USING brin (at)",
            "CREATE INDEX ON cand_parts USING brin (at)",
        ] {
            Spi::get_one_with_args::<pg_sys::Oid>("SELECT pitstop.hypo_create($1)", &[ddl.into()])
                .unwrap_or_else(|e| panic!("{ddl}: {e}"));
        }
        for statement in statements {
            plan(statement);
        }
        // Every hypothetical index is planned with: a bitmap scan on it is possible (forced).
        Spi::run("SET LOCAL enable_seqscan = off").unwrap();
        let forced = plan(statements[0]);
        assert!(
            forced.contains(r#""Node Type":"Bitmap Index Scan""#)
                && forced.contains(r#""Index Name":"cand_log_at_"#),
            "{forced}"
        );
        // The expression and partial one too (its statistics are looked up on an index OID
        // that is in no catalog).
        let expression = plan(statements[3]);
        assert!(
            expression.contains(r#""Node Type":"Bitmap Index Scan""#)
                && expression.contains(r#"_hypo""#),
            "{expression}"
        );
        let dropped = Spi::get_one::<i64>(
            "SELECT count(*) FILTER (WHERE pitstop.hypo_drop(indexrelid)) FROM pitstop.hypo_list()",
        )
        .unwrap()
        .unwrap();
        assert_eq!(dropped, 5);
        plan(statements[0]);
    }

    /// Another range size would be costed and sized as the default one: refused.
    #[pg_test(
        error = "access method \"brin\" does not support a pages_per_range other than 128 in a hypothetical index"
    )]
    fn a_hypothetical_brin_with_another_range_size_is_refused() {
        make_log(1_000, false);
        Spi::run(
            "SELECT pitstop.hypo_create('CREATE INDEX ON cand_log USING brin (at) WITH (pages_per_range = 16)')",
        )
        .unwrap();
    }
}
