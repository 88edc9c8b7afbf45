//! `#[pg_test]`s of the workload index advisor: native planning, table usage, selection and
//! its evidence, the session left untouched, bad input.
use pgrx::prelude::*;

// The pg_test runner calls functions in schema "tests", so the module has that name too.
#[pg_schema]
mod tests {
    use crate::pg::planning;
    use crate::pg::role::ActingRole;
    use crate::pg::spi::required;
    use crate::tests::tests::{count, sql_error};
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    fn make_orders() {
        Spi::run(
            "CREATE TABLE adv_customers(id int PRIMARY KEY, region text, name text);
             INSERT INTO adv_customers SELECT g, 'r' || (g % 20), md5(g::text) FROM generate_series(1, 20000) g;
             CREATE TABLE adv_orders(id int PRIMARY KEY, customer_id int, status text, created_at timestamptz,
                                     total numeric, note text);
             INSERT INTO adv_orders
             SELECT g, g % 20000, CASE WHEN g % 100 = 0 THEN 'open' ELSE 'done' END,
                    timestamptz '2024-01-01' + g * interval '1 minute', g % 1000, md5(g::text)
               FROM generate_series(1, 200000) g;
             ANALYZE adv_customers, adv_orders;",
        )
        .unwrap();
    }

    /// (ddl, queries_helped, improvement_pct) of each suggestion.
    fn suggestions(args: &str) -> Vec<(String, i32, f64)> {
        Spi::connect(|client| {
            client
                .select(&format!("SELECT ddl, queries_helped, improvement_pct FROM pitstop.suggest_indexes({args}) ORDER BY rank"), None, &[])
                .unwrap()
                .map(|row| (required(&row, "ddl"), required(&row, "queries_helped"), required(&row, "improvement_pct")))
                .collect()
        })
    }

    /// (query, reason) of each unhelped query.
    fn unhelped(args: &str) -> Vec<(String, String)> {
        Spi::connect(|client| {
            client
                .select(
                    &format!("SELECT query, reason FROM pitstop.unhelped_queries({args})"),
                    None,
                    &[],
                )
                .unwrap()
                .map(|row| (required(&row, "query"), required(&row, "reason")))
                .collect()
        })
    }

    const WORKLOAD: &str = "queries => ARRAY[
        'SELECT * FROM adv_orders WHERE customer_id = $1 AND created_at > $2',
        'SELECT id, total FROM adv_orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10',
        'SELECT count(*) FROM adv_orders WHERE customer_id = 42']";

    #[pg_test]
    fn planning_collects_what_each_table_is_asked_for() {
        make_orders();
        let planned = planning::plan(
            "SELECT o.id, o.total FROM adv_orders o JOIN adv_customers c ON c.id = o.customer_id
              WHERE o.status = 'open' AND o.created_at > $1 AND o.id IN (1, 2, 3) AND o.note LIKE 'ab%'
                AND o.total IS NULL
              ORDER BY o.created_at DESC NULLS LAST",
            &ActingRole::caller(),
            &[],
            true,
        )
        .unwrap();
        assert!(planned.total_cost > 0.0);
        let orders =
            planned.usage.iter().find(|u| u.table == "public.adv_orders").expect("orders usage");
        let kind = |name: &str| {
            let f = orders
                .filters
                .iter()
                .find(|f| orders.name(f.attnum) == name)
                .unwrap_or_else(|| panic!("{name}: {orders:?}"));
            (f.restriction, f.literal_predicate.clone(), f.opclass.clone(), f.selectivity)
        };
        use pitstop_core::advisor::usage::Restriction::*;
        let status = kind("status");
        assert_eq!((status.0, status.1.as_deref()), (Equality, Some("(status = 'open'::text)")));
        assert!(status.3 < 0.05, "selectivity from the statistics: {}", status.3);
        assert_eq!(kind("created_at").0, Range);
        assert_eq!(kind("id").0, Equality);
        assert_eq!(kind("total").0, Equality);
        assert_eq!(
            (kind("note").0, kind("note").2.as_deref()),
            (LikePrefix, Some("text_pattern_ops"))
        );
        let joins: Vec<&str> = orders.join_columns.iter().map(|a| orders.name(*a)).collect();
        assert_eq!(joins, vec!["customer_id"]);
        assert_eq!(orders.order_by.len(), 1);
        assert!(orders.order_by[0].descending && !orders.order_by[0].nulls_first);
        let mut needed: Vec<&str> =
            orders.needed_columns.as_ref().unwrap().iter().map(|a| orders.name(*a)).collect();
        needed.sort();
        assert_eq!(needed, vec!["created_at", "customer_id", "id", "note", "status", "total"]);
        // Errors come back as messages, not as a failed transaction.
        let err = planning::plan("SELECT * FROM adv_nope", &ActingRole::caller(), &[], true)
            .err()
            .unwrap();
        assert!(err.contains("adv_nope"), "{err}");
        let err = planning::plan(
            "SELECT count(*) FROM adv_orders WHERE $1 IS NULL",
            &ActingRole::caller(),
            &[],
            false,
        )
        .err()
        .expect("untyped $1");
        assert!(err.contains("could not determine data type"), "{err}");
        assert_eq!(count("SELECT count(*) FROM adv_orders WHERE customer_id = 1"), 10);
    }

    #[pg_test]
    fn one_composite_index_serves_the_workload_and_then_is_never_suggested_again() {
        make_orders();
        let advice = suggestions(WORKLOAD);
        assert_eq!(advice.len(), 1, "{advice:?}");
        let (ddl, helped, improvement) = &advice[0];
        assert!(
            ddl.starts_with(
                "CREATE INDEX CONCURRENTLY ON public.adv_orders (customer_id, created_at"
            ),
            "{ddl}"
        );
        assert_eq!(*helped, 3, "{advice:?}");
        assert!(*improvement > 90.0, "{advice:?}");
        let evidence = Spi::get_two::<pgrx::JsonB, String>(&format!(
            "SELECT helped, reason FROM pitstop.suggest_indexes({WORKLOAD}) WHERE rank = 1"
        ))
        .unwrap();
        let helped = evidence.0.unwrap().0;
        let first = &helped.as_array().unwrap()[0];
        assert!(
            first["cost_after"].as_f64().unwrap() < first["cost_before"].as_f64().unwrap(),
            "{helped}"
        );
        assert!(evidence.1.unwrap().contains("helps 3 queries"));
        // Built for real (CONCURRENTLY cannot run in the test transaction), it is not advised again.
        Spi::run(&ddl.replace(" CONCURRENTLY", "")).unwrap();
        Spi::run("ANALYZE adv_orders").unwrap();
        assert_eq!(suggestions(WORKLOAD), vec![], "an existing index is never suggested");
    }

    #[pg_test]
    fn advising_leaves_the_session_as_it_was() {
        make_orders();
        Spi::run("PREPARE adv_mine AS SELECT 1").unwrap();
        let prepared = count("SELECT count(*) FROM pg_prepared_statements");
        let own = Spi::get_one::<pg_sys::Oid>(
            "SELECT pitstop.hypo_create('CREATE INDEX ON adv_orders (status)')",
        )
        .unwrap()
        .unwrap();
        let relations = count("SELECT count(*) FROM pg_class");
        assert_eq!(suggestions(WORKLOAD).len(), 1);
        assert_eq!(count("SELECT count(*) FROM pg_prepared_statements WHERE name = 'adv_mine'"), 1);
        assert_eq!(count("SELECT count(*) FROM pg_prepared_statements"), prepared);
        let listed: Vec<pg_sys::Oid> = Spi::connect(|c| {
            c.select("SELECT indexrelid FROM pitstop.hypo_list()", None, &[])
                .unwrap()
                .map(|r| r.get(1).unwrap().unwrap())
                .collect()
        });
        assert_eq!(listed, vec![own], "the advisor's candidates are not the session's");
        assert_eq!(count("SELECT count(*) FROM pg_class"), relations, "no catalog rows");
        let plan =
            crate::pg::spi::explain_json("SELECT * FROM adv_orders WHERE customer_id = 7", "")
                .unwrap();
        assert!(!plan.contains("customer_id_created_at"), "{plan}");
    }

    #[pg_test]
    fn bad_workload_statements_are_skipped_with_the_reason_and_the_rest_advised() {
        make_orders();
        let args = "queries => ARRAY['SELEC broken', 'SELECT * FROM adv_nope', NULL,
                                    'SELECT * FROM adv_orders WHERE customer_id = $1',
                                    'CREATE TABLE adv_x()', 'SELECT * FROM adv_orders WHERE total >= 0', 'SELECT 1',
                                    'PREPARE adv_p(int) AS SELECT id FROM adv_orders WHERE customer_id = $1']";
        let advice = suggestions(args);
        assert_eq!(advice.len(), 1);
        assert_eq!(
            advice[0].1, 2,
            "the PREPAREd statement is planned as what it prepares: {advice:?}"
        );
        let reasons = unhelped(args);
        let reason = |q: &str| {
            reasons
                .iter()
                .find(|(query, _)| query == q)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| panic!("{q}: {reasons:?}"))
        };
        assert!(
            reason("SELEC broken").contains("could not be planned: syntax error"),
            "{reasons:?}"
        );
        assert!(reason("SELECT * FROM adv_nope").contains("does not exist"));
        assert!(reason("CREATE TABLE adv_x()").contains("cannot explain"));
        assert!(
            reason("SELECT * FROM adv_orders WHERE total >= 0")
                .contains("reads most of public.adv_orders (100 %"),
            "{reasons:?}"
        );
        assert!(reason("SELECT 1").contains("reads no table"));
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert_eq!(
            count("SELECT count(*) FROM pg_class WHERE relname = 'adv_x'"),
            0,
            "nothing was executed"
        );
    }

    #[pg_test]
    fn limits_bound_the_advice() {
        make_orders();
        let workload = "queries => ARRAY['SELECT * FROM adv_orders WHERE customer_id = $1',
                                        'SELECT * FROM adv_customers WHERE name = $1']";
        assert_eq!(suggestions(workload).len(), 2);
        assert_eq!(suggestions(&format!("{workload}, max_indexes => 1")).len(), 1);
        assert_eq!(suggestions(&format!("{workload}, budget_mb => 0.01")), vec![]);
        let reasons = unhelped(&format!("{workload}, budget_mb => 0.01"));
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].1.contains("budget or max_indexes"), "{reasons:?}");
        for (args, name) in [
            ("budget_mb => 0", "budget_mb"),
            ("budget_mb => -5", "budget_mb"),
            ("max_indexes => 0", "max_indexes"),
            ("min_improvement => 1.5", "min_improvement"),
            ("top_n => 0", "top_n"),
            ("min_workload_gain => 1", "min_workload_gain"),
        ] {
            let (code, message, _) =
                sql_error(&format!("SELECT * FROM pitstop.suggest_indexes({workload}, {args})"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "{args}");
            assert!(message.contains(name), "{message}");
        }
        let (code, _, _) = sql_error(&format!(
            "SELECT * FROM pitstop.unhelped_queries({workload}, min_improvement => NULL)"
        ));
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
    }

    #[pg_test]
    fn the_workloads_own_writes_can_outweigh_an_index() {
        make_orders();
        let read = "'SELECT * FROM adv_orders WHERE customer_id = $1'";
        let load = "'INSERT INTO adv_orders SELECT g, g % 7, ''new'', now(), 0, '''' FROM generate_series(1, 200000) g'";
        // A single-row update costs the index little.
        let touch = "'UPDATE adv_orders SET note = ''x'' WHERE id = $1'";
        assert_eq!(suggestions(&format!("queries => ARRAY[{read}, {touch}]")).len(), 1);
        let with_load = format!("queries => ARRAY[{read}, {load}]");
        assert_eq!(
            suggestions(&with_load),
            vec![],
            "200 000 index insertions cost more than one read saves"
        );
        let reasons = unhelped(&with_load);
        assert!(
            reasons
                .iter()
                .any(|(q, r)| q.starts_with("SELECT") && r.contains("maintaining the index")),
            "{reasons:?}"
        );
        let write = Spi::get_one::<f64>(&format!(
            "SELECT write_cost FROM pitstop.suggest_indexes(ARRAY[{read}, {touch}])"
        ))
        .unwrap()
        .unwrap();
        // One row per run (the primary key finds it) at random_page_cost: with no update history
        // the update is not assumed to be HOT.
        assert_eq!(write, 4.0);
        assert_eq!(
            count("SELECT count(*) FROM adv_orders WHERE status = 'new'"),
            0,
            "nothing was executed"
        );
    }

    #[pg_test]
    fn selective_literal_predicates_get_a_partial_index() {
        make_orders();
        let advice = suggestions("queries => ARRAY['SELECT * FROM adv_orders WHERE status = ''open'' AND created_at > $1']");
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(advice[0].0.contains("WHERE (status = 'open'::text)"), "{advice:?}");
    }

    #[pg_test]
    fn the_default_workload_is_pg_stat_statements_weighted_by_calls() {
        make_orders();
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").unwrap();
        Spi::run("SET pg_stat_statements.track = 'all'").unwrap();
        for customer in 0..3 {
            Spi::run(&format!(
                "SELECT * FROM adv_orders WHERE customer_id = {customer} /* adv-pgss */"
            ))
            .unwrap();
        }
        Spi::run("SET pg_stat_statements.track = 'top'").unwrap();
        assert!(count("SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'SET %'") > 0);
        let unhelped_texts = unhelped("");
        assert!(
            !unhelped_texts.iter().any(|(q, _)| q.starts_with("SET ")),
            "utility statements are not workload: {unhelped_texts:?}"
        );
        let helped = Spi::get_one::<pgrx::JsonB>(
            "SELECT helped FROM pitstop.suggest_indexes() WHERE ddl LIKE '%adv_orders (customer_id%' ORDER BY rank LIMIT 1",
        )
        .unwrap()
        .expect("a suggestion for the statements pg_stat_statements saw")
        .0;
        let entry = helped
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["query"].as_str().unwrap().contains("adv-pgss"))
            .unwrap();
        assert!(entry["queryid"].as_i64().is_some(), "{helped}");
        assert_eq!(entry["calls"].as_f64(), Some(3.0));
        assert!(
            entry["query"].as_str().unwrap().contains("customer_id = $1"),
            "planned generically: {helped}"
        );
        Spi::run("DROP EXTENSION pg_stat_statements").unwrap();
        let (code, _, hint) = sql_error("SELECT * FROM pitstop.suggest_indexes()");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert!(hint.unwrap().contains("pg_stat_statements"));
    }

    /// The review's reproduction: columns named after reserved words made suggest_indexes fail
    /// as a whole ("syntax error at or near \"order\"") and explain_advice suggest DDL that does
    /// not parse. The suggested DDL now builds.
    #[pg_test]
    fn reserved_word_columns_get_ddl_that_builds() {
        Spi::run(
            "CREATE TABLE adv_kw(\"order\" int, \"user\" text, x int);
             INSERT INTO adv_kw SELECT g, 'u' || g, g FROM generate_series(1, 100000) g;
             ANALYZE adv_kw;",
        )
        .unwrap();
        let advice = suggestions("queries => ARRAY['SELECT x FROM adv_kw WHERE \"order\" = 42']");
        assert!(advice.iter().any(|(ddl, _, _)| ddl.contains("(\"order\")")), "{advice:?}");
        let explain = "SELECT suggestion FROM pitstop.explain_advice('SELECT x FROM adv_kw WHERE \"user\" = ''u7''') \
                       WHERE suggestion LIKE 'CREATE INDEX%'";
        let fixes: Vec<String> = Spi::connect(|client| {
            client
                .select(explain, None, &[])
                .unwrap()
                .map(|row| required::<String>(&row, "suggestion"))
                .collect()
        });
        assert_eq!(
            fixes,
            vec!["CREATE INDEX CONCURRENTLY ON public.adv_kw (\"user\");".to_string()]
        );
        // CONCURRENTLY cannot run inside the test's transaction; the rest is the suggestion.
        for ddl in advice.iter().map(|(ddl, _, _)| ddl).chain(&fixes) {
            Spi::run(&ddl.replace(" CONCURRENTLY", "")).unwrap_or_else(|e| panic!("{ddl}: {e}"));
        }
    }

    // Issue 15, part 1: statements as pg_stat_statements records them (literals as `$n`).

    fn make_items() {
        Spi::run(
            "CREATE TABLE adv_items(id int, shipdate date, qty int, price numeric, email text);
             INSERT INTO adv_items SELECT g, date '2020-01-01' + g % 1000, g % 10000, g % 100, 'u' || g || '@x'
               FROM generate_series(1, 200000) g;
             CREATE TABLE adv_quoted(\"date $1\" text, \"date\" date, note text);
             INSERT INTO adv_quoted SELECT 'd' || g, date '2020-01-01' + g % 5000, 'n' || g FROM generate_series(1, 100000) g;
             ANALYZE adv_items, adv_quoted;",
        )
        .unwrap();
    }

    /// Suggested DDL and unhelped reasons for a one-statement workload.
    fn advice_for(sql: &str) -> (Vec<String>, Vec<String>) {
        let args = format!("queries => ARRAY[$q${sql}$q$]");
        (
            suggestions(&args).into_iter().map(|(ddl, _, _)| ddl).collect(),
            unhelped(&args).into_iter().map(|(_, r)| r).collect(),
        )
    }

    /// Each shape pg_stat_statements records and PREPARE alone cannot plan, next to the
    /// literal text it came from: planned, and given the same indexes, which build.
    #[pg_test]
    fn normalized_texts_get_the_advice_of_their_literal_texts() {
        make_items();
        let cases = [
            // TPC-H q1/q4/q5: typed literals over parameters, with and without an interval field.
            (
                "SELECT count(*) FROM adv_items WHERE shipdate = date $1 - interval $2 day",
                "SELECT count(*) FROM adv_items WHERE shipdate = date '2021-01-10' - interval '3' day",
            ),
            (
                "SELECT sum(price) FROM adv_items WHERE shipdate >= date $1 AND shipdate < date $2 + interval $3",
                "SELECT sum(price) FROM adv_items WHERE shipdate >= date '2021-01-01' AND shipdate < date '2021-01-01' + interval '2 days'",
            ),
            // TPC-DS: `between 1200 and 1200 + 11`, `2000 - 1`, `1000 / 2`.
            (
                "SELECT sum(price) FROM adv_items WHERE qty BETWEEN $1 AND $2 + $3",
                "SELECT sum(price) FROM adv_items WHERE qty BETWEEN 500 AND 500 + 3",
            ),
            ("SELECT id FROM adv_items WHERE qty = $1 - $2", "SELECT id FROM adv_items WHERE qty = 500 - 1"),
            ("SELECT id FROM adv_items WHERE qty = $1 / $2", "SELECT id FROM adv_items WHERE qty = 1000 / 2"),
            // sum(1), and sum over a CASE of constants (which alone resolves to text).
            ("SELECT sum($1) FROM adv_items WHERE qty = $2", "SELECT sum(1) FROM adv_items WHERE qty = 7"),
            (
                "SELECT sum(CASE WHEN price > $1 THEN $2 ELSE $3 END) FROM adv_items WHERE qty = $4",
                "SELECT sum(CASE WHEN price > 50 THEN 1 ELSE 0 END) FROM adv_items WHERE qty = 7",
            ),
            // Undetermined parameters: one only tested for NULL, and a numbering gap ($2).
            ("SELECT id, $2 IS NULL FROM adv_items WHERE qty = $1", "SELECT id, 'x' IS NULL FROM adv_items WHERE qty = 7"),
            ("SELECT id FROM adv_items WHERE qty = $1 AND email <> $3", "SELECT id FROM adv_items WHERE qty = 7 AND email <> 'x'"),
            // TPC-H q7/q8/q9: `extract(year from d)` is recorded as `extract($1 from d)`.
            (
                "SELECT extract($1 FROM shipdate), sum(price) FROM adv_items WHERE qty = $2 GROUP BY 1",
                "SELECT extract(year FROM shipdate), sum(price) FROM adv_items WHERE qty = 7 GROUP BY 1",
            ),
            // The shop's busiest lookup.
            (
                "SELECT id FROM adv_items WHERE lower(email) = lower($1 || $2) AND qty = $3",
                "SELECT id FROM adv_items WHERE lower(email) = lower('U7' || '@x') AND qty = 7",
            ),
            (
                "SELECT id FROM adv_items WHERE qty = $1 ORDER BY id LIMIT $2 OFFSET $3",
                "SELECT id FROM adv_items WHERE qty = 7 ORDER BY id LIMIT 10 OFFSET 0",
            ),
            // A quoted identifier and a string that contain `date $1` stay as they are.
            (
                "SELECT \"date $1\" FROM adv_quoted WHERE note <> 'date $1' AND \"date\" = date $1",
                "SELECT \"date $1\" FROM adv_quoted WHERE note <> 'date $1' AND \"date\" = date '2021-01-01'",
            ),
        ];
        for (normalized, literal) in cases {
            let (ddl, reasons) = advice_for(normalized);
            assert!(
                !reasons.iter().any(|r| r.starts_with("could not be planned")),
                "{normalized}: {reasons:?}"
            );
            let (literal_ddl, _) = advice_for(literal);
            assert!(!literal_ddl.is_empty(), "an index helps {literal}");
            if normalized.contains("LIMIT") {
                // A literal's constant can make a partial index (`(id) WHERE (qty = 7)`); `$1` cannot.
                assert_eq!(
                    literal_ddl,
                    vec!["CREATE INDEX CONCURRENTLY ON public.adv_items (id) WHERE (qty = 7)"
                        .to_string()]
                );
                assert_eq!(
                    ddl,
                    vec!["CREATE INDEX CONCURRENTLY ON public.adv_items (qty, id)".to_string()]
                );
            } else if normalized.contains("lower(email)") {
                // The same for the expression: partial with `qty = 7`, composite with `$3`.
                assert_eq!(literal_ddl, vec!["CREATE INDEX CONCURRENTLY ON public.adv_items ((lower(email))) WHERE (qty = 7)".to_string()]);
                assert_eq!(ddl, vec!["CREATE INDEX CONCURRENTLY ON public.adv_items (qty, (lower(email))) INCLUDE (id, email)".to_string()]);
            } else {
                assert_eq!(ddl, literal_ddl, "{normalized}");
            }
            // CONCURRENTLY cannot run inside the test's transaction; the rest is the suggestion.
            // Rolled back: the next case starts without it.
            crate::pg::subxact::rolled_back(|| {
                for ddl in &ddl {
                    Spi::run(&ddl.replace(" CONCURRENTLY", ""))
                        .unwrap_or_else(|e| panic!("{ddl}: {e}"));
                }
            });
        }
    }

    /// The PostgreSQL scanner's tokens drive the rewrite: quoted identifiers, strings, comments
    /// and `AT TIME ZONE $1` are left alone; typed literals become casts.
    #[pg_test]
    fn normalized_typed_literals_become_casts_with_the_servers_scanner() {
        let cast = |sql: &str| {
            let tokens = crate::pg::scan::tokens(sql).unwrap();
            pitstop_core::advisor::normalized::cast_typed_literals(sql, &tokens)
                .unwrap_or_else(|| sql.to_string())
        };
        assert_eq!(
            cast("SELECT \"date $1\", 'date $1', $$interval $2 day$$ /* date $1 */ FROM t WHERE d <= date $1 - interval $2 day"),
            "SELECT \"date $1\", 'date $1', $$interval $2 day$$ /* date $1 */ FROM t WHERE d <= CAST($1 AS date) - CAST($2 AS interval day)"
        );
        assert_eq!(
            cast("SELECT timestamp with time zone $1, ts AT TIME ZONE $2, int4 $3, interval $4 hour to second(2), \"Date\" $5"),
            "SELECT CAST($1 AS timestamp with time zone), ts AT TIME ZONE $2, CAST($3 AS int4), CAST($4 AS interval hour to second(2)), CAST($5 AS \"Date\")"
        );
        assert_eq!(cast("SELECT 1 FROM t LIMIT $1"), "SELECT 1 FROM t LIMIT $1");
    }

    /// What still cannot be planned says why, and where.
    #[pg_test]
    fn normalized_text_that_cannot_be_planned_says_why_and_where() {
        make_items();
        let (_, reasons) = advice_for("SELECT id FROM adv_items WHERE nope = $1 - $2");
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].starts_with(
                "could not be planned: column \"nope\" does not exist at \"nope = $1 - $2\""
            ),
            "{reasons:?}"
        );
        let planned = planning::plan_workload(
            "SELECT $1 + $2 FROM adv_items WHERE shipdate > date $3",
            &ActingRole::caller(),
            &[],
            false,
        );
        assert!(planned.is_ok(), "{:?}", planned.err());
    }

    /// Texts the scanner rejects (an unterminated quote) are statements that could not be
    /// planned, with the scanner's message: the scanner's ERROR used to cross two nested
    /// guards and abort the server. `$1and` (pg_stat_statements' record of `'e5'and`, which
    /// 15+'s scanner refuses as "trailing junk after parameter") is planned as `$1 and`.
    #[pg_test]
    fn texts_the_scanner_rejects_are_reasons_not_a_crash() {
        make_orders();
        let args = "queries => ARRAY['select ''abc', 'select \"abc', 'select $$x',
                                    'SELECT id FROM adv_orders WHERE customer_id = $1and true',
                                    'SELECT id FROM adv_orders WHERE customer_id = $1']";
        let reasons = unhelped(args);
        for query in ["select 'abc", "select \"abc", "select $$x"] {
            let (_, reason) = reasons
                .iter()
                .find(|(q, _)| q == query)
                .unwrap_or_else(|| panic!("{query}: {reasons:?}"));
            assert!(reason.starts_with("could not be planned: unterminated"), "{query}: {reason}");
        }
        let advice = suggestions(args);
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert_eq!(advice[0].1, 2, "`$1and` is planned: {advice:?}");
        // Each glued parameter costs a scan of the whole text again: 64 are separated, the
        // 65th is the scanner's reason.
        let glued = |n: usize| {
            let terms: String = (1..=n).map(|i| format!("customer_id = ${i}and ")).collect();
            format!("SELECT id FROM adv_orders WHERE {terms}true")
        };
        let reasons = unhelped(&format!("queries => ARRAY['{}', '{}']", glued(64), glued(65)));
        let refused: Vec<_> =
            reasons.iter().filter(|(_, r)| r.starts_with("could not be planned")).collect();
        assert_eq!(
            refused.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
            ["could not be planned: trailing junk after parameter at or near \"$65and\""],
            "{reasons:?}"
        );
        let deep = format!("SELECT {}", vec!["1"; 5_000].join("+"));
        let reasons = unhelped(&format!("queries => ARRAY['{deep}']"));
        assert!(
            reasons[0].1.starts_with("could not be planned: stack depth limit exceeded"),
            "{}",
            reasons[0].1
        );
    }

    /// A statement given by a role that may not read its table is not planned: the planner
    /// would read the table's column statistics, and a cost, a partial index or its size would
    /// tell that role what the table holds. The reason is the executor's own error.
    #[pg_test]
    fn a_role_that_may_not_read_the_table_gets_no_cost_and_no_advice() {
        make_orders();
        Spi::run("CREATE ROLE adv_no_select; GRANT pg_monitor TO adv_no_select").unwrap();
        let args = "queries => ARRAY['SELECT id FROM adv_orders WHERE customer_id = 42',
                                    'SELECT 1 WHERE EXISTS (SELECT 1 FROM adv_customers WHERE id = 7)']";
        Spi::run("SET LOCAL ROLE adv_no_select").unwrap();
        let rows: Vec<(String, Option<f64>)> = Spi::connect(|client| {
            client
                .select(
                    &format!(
                        "SELECT reason, cost FROM pitstop.unhelped_queries({args}) ORDER BY query"
                    ),
                    None,
                    &[],
                )
                .unwrap()
                .map(|row| (required(&row, "reason"), crate::pg::spi::column(&row, "cost")))
                .collect()
        });
        let advice = suggestions(args);
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    "could not be planned: permission denied for table adv_customers".to_string(),
                    None
                ),
                ("could not be planned: permission denied for table adv_orders".to_string(), None),
            ]
        );
        assert!(advice.is_empty(), "{advice:?}");
        assert_eq!(suggestions(args).len(), 1, "the table's owner is advised");
    }

    /// The same text names other tables under another search_path, also within one
    /// transaction: its parameter types are found again.
    #[pg_test]
    fn a_statement_is_typed_again_under_another_search_path() {
        Spi::run(
            "CREATE SCHEMA adv_sa; CREATE SCHEMA adv_sb;
             CREATE TABLE adv_sa.t(x int); CREATE TABLE adv_sb.t(x text);
             INSERT INTO adv_sa.t SELECT g FROM generate_series(1, 50000) g;
             INSERT INTO adv_sb.t SELECT g::text FROM generate_series(1, 50000) g;
             ANALYZE adv_sa.t, adv_sb.t;",
        )
        .unwrap();
        let args = "queries => ARRAY['SELECT * FROM t WHERE x = $1']";
        Spi::run("SET LOCAL search_path = adv_sa").unwrap();
        let first = suggestions(args);
        Spi::run("SET LOCAL search_path = adv_sb").unwrap();
        let second = suggestions(args);
        let reasons = unhelped(args);
        Spi::run("RESET search_path").unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].0.contains("adv_sa.t (x)"), "{first:?}");
        assert_eq!(second.len(), 1, "{second:?} {reasons:?}");
        assert!(second[0].0.contains("adv_sb.t (x)"), "{second:?}");
    }

    /// A hypothetical index has CREATE INDEX's limit of 32 columns, INCLUDE ones counted: the
    /// planner sizes its per-index arrays by it, and a 40-column one crashed the next plan.
    #[pg_test]
    fn a_hypothetical_index_has_at_most_32_columns() {
        make_orders();
        let keys = |n: usize| vec!["customer_id"; n].join(", ");
        for ddl in [
            format!("CREATE INDEX ON adv_orders ({})", keys(33)),
            format!("CREATE INDEX ON adv_orders ({})", keys(40)),
            format!("CREATE INDEX ON adv_orders USING brin ({})", keys(39)),
            format!("CREATE INDEX ON adv_orders (id) INCLUDE ({})", keys(32)),
        ] {
            let (code, message, _) = sql_error(&format!("SELECT pitstop.hypo_create($d${ddl}$d$)"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_TOO_MANY_COLUMNS, "{message}");
            assert_eq!(message, "cannot use more than 32 columns in an index");
        }
        Spi::run(&format!(
            "SELECT pitstop.hypo_create('CREATE INDEX ON adv_orders ({})')",
            keys(32)
        ))
        .unwrap();
        Spi::run(
            "EXPLAIN SELECT customer_id FROM adv_orders WHERE customer_id = 5 ORDER BY customer_id",
        )
        .unwrap();
        Spi::run("SELECT pitstop.hypo_reset()").unwrap();
    }

    // Issue 15, part 6: advice time.

    /// Lazy greedy rounds plan again only the moves whose bound could still win a round: on
    /// a workload where picks keep touching the queries of weaker candidates they plan less
    /// than eager rounds, and choose the same list.
    #[pg_test]
    fn lazy_rounds_choose_what_eager_rounds_choose_with_fewer_plans() {
        make_orders();
        let workload = [
            "SELECT * FROM adv_orders WHERE customer_id = 42 AND status = 'open'",
            "SELECT * FROM adv_orders WHERE created_at > timestamptz '2024-04-01' AND status = 'open'",
            "SELECT * FROM adv_orders WHERE total = 7 AND status = 'open'",
            "SELECT o.id, c.name FROM adv_orders o JOIN adv_customers c ON c.id = o.customer_id
              WHERE c.region = 'r3' AND o.status = 'open'",
            "SELECT * FROM adv_customers WHERE name = 'x'",
            "SELECT count(*) FROM adv_orders WHERE status = 'open' AND note LIKE 'ab%'",
        ];
        let (eager, eager_plans) = crate::advisor::suggest::advice_with_rounds(&workload, false);
        let (lazy, lazy_plans) = crate::advisor::suggest::advice_with_rounds(&workload, true);
        assert!(eager.len() >= 2, "{eager:?}");
        assert_eq!(lazy, eager);
        assert!(lazy_plans < eager_plans, "lazy {lazy_plans} plans, eager {eager_plans}");
    }

    /// The advisor reads each table's statistics once for all its candidates: each suggestion's
    /// size is the one `hypo_size` estimates for its DDL alone.
    #[pg_test]
    fn suggested_sizes_are_those_of_each_index_alone() {
        make_orders();
        let workload = [
            "SELECT * FROM adv_orders WHERE customer_id = 42",
            "SELECT id, total FROM adv_orders WHERE created_at > timestamptz '2024-04-01' ORDER BY created_at LIMIT 5",
            "SELECT * FROM adv_customers WHERE name = 'x'",
            "SELECT count(*) FROM adv_orders WHERE status = 'open'",
        ];
        let (advice, _) = crate::advisor::suggest::advice_with_rounds(&workload, true);
        assert!(advice.len() >= 2, "{advice:?}");
        for (ddl, bytes, _) in &advice {
            let alone = Spi::get_one::<i64>(&format!(
                "SELECT pitstop.hypo_size(pitstop.hypo_create($q${ddl}$q$))"
            ))
            .unwrap()
            .unwrap();
            assert_eq!(*bytes, alone, "{ddl} {advice:?}");
        }
        Spi::run("SELECT pitstop.hypo_reset()").unwrap();
    }

    // Review 9, R1 finding 4: operands whose parameters PostgreSQL types text or by arithmetic.

    /// pg_stat_statements' texts of `k = any(array[1, 2, 3])` (psycopg2's lists), `<> all(…)`,
    /// `current_date - 7` (also in a BETWEEN), coalesce, greatest, a scalar subquery, a CASE
    /// and a recursive query's `depth + 1`: each is planned, none is "could not be planned".
    #[pg_test]
    fn compared_operands_postgresql_types_text_or_by_arithmetic_are_planned() {
        Spi::run(
            "CREATE TABLE adv_shapes(id int PRIMARY KEY, k int, d date, parent int, note text);
             INSERT INTO adv_shapes SELECT g, g % 100, date '2024-01-01' + g % 365, g / 2, 'n' || g
               FROM generate_series(1, 2000) g;
             ANALYZE adv_shapes;",
        )
        .unwrap();
        let queries = [
            "SELECT * FROM adv_shapes WHERE k = any(array[$1,$2,$3])",
            "SELECT * FROM adv_shapes WHERE k <> all(array[$1,$2]) AND note = $3",
            "SELECT * FROM adv_shapes WHERE \"d\" >= current_date - $1",
            "SELECT * FROM adv_shapes WHERE id = coalesce($1, $2)",
            "SELECT * FROM adv_shapes WHERE id = greatest($1,$2)",
            "SELECT * FROM adv_shapes WHERE id = (select $1)",
            "SELECT * FROM adv_shapes WHERE k = case when $1 then $2 else $3 end",
            "SELECT * FROM adv_shapes WHERE d BETWEEN current_date - $1 AND current_date",
            "SELECT * FROM adv_shapes WHERE k NOT BETWEEN coalesce($1, $2) AND $3",
            "WITH RECURSIVE r(id, depth) AS (SELECT id, $1 FROM adv_shapes WHERE id = $2
               UNION ALL SELECT c.id, r.depth + $3 FROM adv_shapes c JOIN r ON c.parent = r.id
               WHERE r.depth < $4) SELECT * FROM r",
            "WITH RECURSIVE r AS (SELECT id, $1 AS depth FROM adv_shapes WHERE id = $2
               UNION ALL SELECT c.id, r.depth + $3 FROM adv_shapes c JOIN r ON c.parent = r.id)
             SELECT * FROM r",
        ];
        for sql in queries {
            let planned = planning::plan_workload(sql, &ActingRole::caller(), &[], false);
            assert!(planned.is_ok(), "{sql}: {:?}", planned.err());
        }
        let args = format!(
            "queries => ARRAY[{}]",
            queries.iter().map(|q| format!("$q${q}$q$")).collect::<Vec<_>>().join(", ")
        );
        for (query, reason) in unhelped(&args) {
            assert!(!reason.starts_with("could not be planned"), "{query}: {reason}");
        }
    }
}
