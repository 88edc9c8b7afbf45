//! `#[pg_test]`s of `pitstop.index_suggestions_observe`: which built index counts as the one a
//! remembered suggestion asked for (its access method, expression keys, predicate, sort order;
//! never one that was there before the advice), and of `pitstop.index_effects`' windows.
use pgrx::prelude::*;

// The pg_test runner calls functions in schema "tests", so the module has that name too.
#[pg_schema]
mod tests {
    use crate::pg::spi::required;
    use pgrx::prelude::*;

    /// What a remembered suggestion records beyond its table, key attnums and DDL.
    #[derive(Default)]
    struct Recorded {
        am: Option<String>,
        expressions: Option<Vec<String>>,
        /// None: not partial.
        predicate: Option<&'static str>,
        /// Per key, None for the default operator class.
        opclasses: Option<Vec<Option<String>>>,
        /// Per key, pg_index.indoption's bits (1 DESC, 2 NULLS FIRST).
        options: Option<Vec<i16>>,
    }

    /// Remembers a suggestion on `table` as suggest_indexes does, returns its id.
    fn remember_as(table: &str, keys: &str, ddl: &str, r: Recorded) -> i64 {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO pitstop.index_suggestions (dbid, relid, table_name, key_attnums, include_attnums, partial, ddl,
                                                   queryids, first_suggested_at, last_suggested_at, access_method,
                                                   key_expressions, predicate, key_opclasses, key_options)
             SELECT d.oid, $1::regclass, $1, $2::int2[], '{}', $5 IS NOT NULL, $3, '{1}', now(), now(),
                    coalesce($4, 'btree'), $6, $5, $7, $8
               FROM pg_database d WHERE d.datname = current_database()
             RETURNING id",
            &[
                table.into(),
                keys.into(),
                ddl.into(),
                r.am.into(),
                r.predicate.into(),
                r.expressions.into(),
                r.opclasses.into(),
                r.options.into(),
            ],
        )
        .unwrap()
        .unwrap()
    }

    fn remember(
        table: &str,
        keys: &str,
        am: &str,
        expressions: Option<Vec<String>>,
        ddl: &str,
    ) -> i64 {
        let am = Some(am.to_string());
        remember_as(table, keys, ddl, Recorded { am, expressions, ..Default::default() })
    }

    /// Marks what was built; returns the index each suggestion got (None: not built yet).
    fn observe(ids: &[i64]) -> Vec<Option<String>> {
        Spi::run("SELECT pitstop.index_suggestions_observe()").unwrap();
        ids.iter()
            .map(|id| {
                Spi::get_one_with_args::<String>(
                    "SELECT index_name FROM pitstop.index_suggestions WHERE id = $1",
                    &[(*id).into()],
                )
                .unwrap()
            })
            .collect()
    }

    /// The suggested DDL for one statement with a single expression key, and that key as the
    /// advisor deparsed it: the DDL writes it `(expression)` in the key list's parentheses.
    fn advised_expression(statement: &str, marker: &str) -> (String, String) {
        let ddl: Vec<String> = Spi::connect(|client| {
            client
                .select(
                    "SELECT ddl FROM pitstop.suggest_indexes(queries => ARRAY[$1]) ORDER BY rank",
                    None,
                    &[statement.into()],
                )
                .unwrap()
                .map(|row| required::<String>(&row, "ddl"))
                .collect()
        });
        let ddl = ddl
            .iter()
            .find(|d| d.contains(marker) && !d.contains("INCLUDE"))
            .unwrap_or_else(|| panic!("no {marker} suggested for {statement}: {ddl:?}"));
        // The key list: from its "(" to the matching ")".
        let start = ddl.find(" ((").unwrap_or_else(|| panic!("{ddl}")) + 1;
        let mut depth = 0;
        let end = ddl[start..]
            .char_indices()
            .find_map(|(i, ch)| {
                depth += match ch {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(start + i)
            })
            .unwrap();
        let key = &ddl[start + 2..end - 1];
        (ddl.replace("CONCURRENTLY ", ""), key.to_string())
    }

    #[pg_test]
    fn a_brin_suggestion_is_followed_by_a_brin_and_a_btree_one_by_a_btree() {
        Spi::run("CREATE TABLE ie_log(id bigint, at timestamp)").unwrap();
        let on_at = |am: &str, ddl: &str| remember("public.ie_log", "{2}", am, None, ddl);
        let btree_ddl = "CREATE INDEX CONCURRENTLY ON public.ie_log (at)";
        let brin = on_at("brin", "CREATE INDEX CONCURRENTLY ON public.ie_log USING brin (at)");
        let btree = on_at("btree", btree_ddl);
        Spi::run("CREATE INDEX ie_log_at_btree ON ie_log (at)").unwrap();
        assert_eq!(observe(&[brin, btree]), [None, Some("public.ie_log_at_btree".to_string())]);
        // Any pages_per_range: the DBA may pick another.
        Spi::run(
            "CREATE INDEX ie_log_at_brin ON ie_log USING brin (at) WITH (pages_per_range = 32)",
        )
        .unwrap();
        assert_eq!(observe(&[brin]), [Some("public.ie_log_at_brin".to_string())]);
        // Nor is a BRIN taken for a btree suggestion.
        Spi::run("DROP INDEX ie_log_at_btree").unwrap();
        let again = on_at("btree", btree_ddl);
        assert_eq!(observe(&[again]), [None]);
    }

    #[pg_test]
    fn a_case_suggestion_is_followed_though_its_index_prints_it_on_lines() {
        Spi::run(
            "CREATE TABLE ie_kinds(id int, kind int, a int, b int);
             INSERT INTO ie_kinds SELECT g, g % 2, g, g % 1000 FROM generate_series(1, 200000) g;
             ANALYZE ie_kinds;",
        )
        .unwrap();
        let (ddl, key) = advised_expression(
            "SELECT id FROM ie_kinds WHERE CASE WHEN kind = 1 THEN a ELSE b END = 4242",
            "CASE",
        );
        let id = remember("public.ie_kinds", "{0}", "btree", Some(vec![key.clone()]), &ddl);
        Spi::run(&ddl.replace("CREATE INDEX ON", "CREATE INDEX ie_case ON")).unwrap();
        let printed =
            Spi::get_one::<String>("SELECT pg_get_indexdef('ie_case'::regclass, 1, false)")
                .unwrap()
                .unwrap();
        assert!(printed.contains('\n') && !key.contains('\n'), "{key} / {printed}");
        assert_eq!(observe(&[id]), [Some("public.ie_case".to_string())]);
    }

    #[pg_test]
    fn a_suggested_date_reads_the_same_under_any_datestyle() {
        Spi::run(
            "CREATE TABLE ie_due(id int, due date);
             INSERT INTO ie_due SELECT g, CASE WHEN g % 10 > 0 THEN date '2024-01-01' + g % 1000 END
               FROM generate_series(1, 200000) g;
             ANALYZE ie_due;
             SET DateStyle = 'SQL, DMY';",
        )
        .unwrap();
        // 3 February under DMY.
        let (ddl, key) = advised_expression(
            "SELECT id FROM ie_due WHERE coalesce(due, '03/02/2024') = '10/05/2024'",
            "COALESCE",
        );
        assert!(key.contains("'2024-02-03'::date"), "{key}");
        let id = remember("public.ie_due", "{0}", "btree", Some(vec![key]), &ddl);
        // Built by a DBA under MDY, observed by a daemon under another style.
        Spi::run("SET DateStyle = 'SQL, MDY'").unwrap();
        Spi::run(&ddl.replace("CREATE INDEX ON", "CREATE INDEX ie_due_coalesce ON")).unwrap();
        Spi::run("SET DateStyle = 'German'").unwrap();
        assert_eq!(observe(&[id]), [Some("public.ie_due_coalesce".to_string())]);
    }

    #[pg_test]
    fn a_suggestion_is_followed_by_its_own_predicate_and_operator_classes_only() {
        Spi::run("CREATE TABLE ie_orders(id int, status text, email text)").unwrap();
        let t = "public.ie_orders";
        let text_pattern = || vec![Some("text_pattern_ops".to_string())];
        let with = |predicate, opclasses| Recorded {
            predicate,
            opclasses: Some(opclasses),
            ..Default::default()
        };
        let ids = [
            // The predicate as the advisor deparses it.
            remember_as(t, "{3}", "partial", with(Some("(status = 'open'::text)"), vec![None])),
            remember_as(t, "{3}", "pattern", with(None, text_pattern())),
            remember_as(t, "{3}", "plain", with(None, vec![None])),
        ];
        Spi::run(
            "CREATE INDEX ie_done ON ie_orders (email) WHERE status = 'done';
             CREATE INDEX ie_varchar_pattern ON ie_orders (email varchar_pattern_ops);",
        )
        .unwrap();
        assert_eq!(observe(&ids), [None, None, None], "another predicate, other operator classes");
        Spi::run(
            "CREATE INDEX ie_open ON ie_orders (email) WHERE status = 'open';
             CREATE INDEX ie_pattern ON ie_orders (email text_pattern_ops);
             CREATE INDEX ie_plain ON ie_orders (email);",
        )
        .unwrap();
        let built = |name: &str| Some(format!("public.{name}"));
        assert_eq!(observe(&ids), [built("ie_open"), built("ie_pattern"), built("ie_plain")]);
    }

    #[pg_test]
    fn an_expression_suggestion_is_followed_by_its_own_expression_only() {
        Spi::run(
            "CREATE TABLE ie_users(id int, email text, y int);
             INSERT INTO ie_users SELECT g, 'User' || g || '@Example.com', g % 5000 FROM generate_series(1, 200000) g;
             ANALYZE ie_users;",
        )
        .unwrap();
        let (lower_ddl, lower) = advised_expression(
            "SELECT id FROM ie_users WHERE lower(email) = 'user7@example.com'",
            "lower(",
        );
        assert_eq!(lower, "lower(email)");
        // An implicitly cast column: pg_get_indexdef adds parentheses around the cast.
        let (cast_ddl, cast) =
            advised_expression("SELECT id FROM ie_users WHERE y = 2000.5", "::numeric");
        assert_eq!(cast, "(y)::numeric");
        let ids = [
            remember("public.ie_users", "{0}", "btree", Some(vec![lower]), &lower_ddl),
            remember("public.ie_users", "{0}", "btree", Some(vec![cast]), &cast_ddl),
        ];
        Spi::run(
            "CREATE INDEX ie_upper ON ie_users ((upper(email)));
             CREATE INDEX ie_md5 ON ie_users ((md5(email)));
             CREATE INDEX ie_y ON ie_users (y);
             CREATE INDEX ie_y_bigint ON ie_users ((y::bigint));
             CREATE INDEX ie_y_plus ON ie_users ((y + 1));",
        )
        .unwrap();
        assert_eq!(observe(&ids), [None, None], "other expressions on the same columns");
        Spi::run(&lower_ddl.replace("CREATE INDEX ON", "CREATE INDEX ie_lower ON")).unwrap();
        Spi::run(&cast_ddl.replace("CREATE INDEX ON", "CREATE INDEX ie_cast ON")).unwrap();
        assert_eq!(
            observe(&ids),
            [Some("public.ie_lower".to_string()), Some("public.ie_cast".to_string())]
        );
    }

    /// The review's reproduction: an index on (a, b, c) does not give ORDER BY b DESC, c, the
    /// advisor suggests (a, b DESC, c), and the older index was marked built for it at once
    /// (then judged, with its DROP). It stays unbuilt until (a, b DESC, c) is.
    #[pg_test]
    fn a_suggestion_in_another_sort_order_is_not_taken_by_an_older_index() {
        Spi::run(
            "CREATE TABLE ie_sorted(a int, b int, c int, pad text);
             INSERT INTO ie_sorted SELECT g % 50, (g / 50) % 2, ((g::int8 * 7919) % 100003)::int, repeat('x', 50)
               FROM generate_series(1, 200000) g;
             CREATE INDEX ie_sorted_abc ON ie_sorted (a, b, c);
             ANALYZE ie_sorted;
             CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
             SET pg_stat_statements.track = 'all';",
        )
        .unwrap();
        for a in 0..20 {
            Spi::run(&format!("SELECT * FROM ie_sorted WHERE a = {a} ORDER BY b DESC, c LIMIT 20"))
                .unwrap();
        }
        Spi::run("SET pg_stat_statements.track = 'top'").unwrap();
        let advice: Vec<String> = Spi::connect(|client| {
            client
                .select("SELECT ddl FROM pitstop.suggest_indexes() ORDER BY rank", None, &[])
                .unwrap()
                .map(|row| required::<String>(&row, "ddl"))
                .collect()
        });
        let unhelped = || -> Vec<String> {
            Spi::connect(|client| {
                client
                    .select(
                        "SELECT query || ': ' || reason AS r FROM pitstop.unhelped_queries()",
                        None,
                        &[],
                    )
                    .unwrap()
                    .map(|row| required::<String>(&row, "r"))
                    .collect()
            })
        };
        let ddl = advice
            .iter()
            .find(|d| d.contains("ie_sorted"))
            .unwrap_or_else(|| panic!("no advice on ie_sorted: {advice:?} {:?}", unhelped()))
            .clone();
        assert!(ddl.contains("(a, b DESC, c)"), "{ddl}");
        let id = Spi::get_one_with_args::<i64>(
            "SELECT id FROM pitstop.index_suggestions WHERE ddl = $1 AND key_options = '{0,3,0}'",
            &[ddl.clone().into()],
        )
        .unwrap()
        .expect("remembered with its sort order");
        assert_eq!(observe(&[id]), [None], "ie_sorted_abc was there before the advice");
        // Built as (a, b, c) again under another name: the sort order still differs.
        Spi::run("CREATE INDEX ie_sorted_abc_again ON ie_sorted (a, b, c)").unwrap();
        assert_eq!(observe(&[id]), [None]);
        let built = ddl
            .replace("CONCURRENTLY ", "")
            .replace("CREATE INDEX ON", "CREATE INDEX ie_sorted_{} ON");
        Spi::run(&built.replace("{}", "one")).unwrap();
        Spi::run(&built.replace("{}", "two")).unwrap();
        // The newest of two that match.
        assert_eq!(observe(&[id]), [Some("public.ie_sorted_two".to_string())]);
    }

    /// A suggestion remembered while an index that matches it existed is not built by it (the
    /// advisor had judged it not to cover the suggestion), nor by one differing only in NULLS.
    #[pg_test]
    fn the_tables_indexes_at_the_first_suggestion_are_never_taken_for_it() {
        Spi::run(
            "CREATE TABLE ie_desc(id int, at timestamptz);
             CREATE INDEX ie_desc_before ON ie_desc (at DESC);",
        )
        .unwrap();
        let desc = Recorded { options: Some(vec![3]), ..Default::default() };
        let id = remember_as("public.ie_desc", "{2}", "desc", desc);
        Spi::run_with_args(
            "UPDATE pitstop.index_suggestions
                SET existing_indexes = ARRAY(SELECT indexrelid FROM pg_index WHERE indrelid = 'ie_desc'::regclass)
              WHERE id = $1",
            &[id.into()],
        )
        .unwrap();
        Spi::run("CREATE INDEX ie_desc_nulls_last ON ie_desc (at DESC NULLS LAST)").unwrap();
        assert_eq!(observe(&[id]), [None]);
        Spi::run("CREATE INDEX ie_desc_after ON ie_desc (at DESC)").unwrap();
        assert_eq!(observe(&[id]), [Some("public.ie_desc_after".to_string())]);
    }

    /// Whitespace inside a quoted literal is part of the value: an index WHERE note = 'ab' is
    /// not the suggested WHERE note = 'a b' (the comparison dropped all whitespace).
    #[pg_test]
    fn whitespace_inside_a_literal_counts_in_a_predicate() {
        Spi::run("CREATE TABLE ie_notes(id int, note text)").unwrap();
        let with = |predicate| Recorded { predicate: Some(predicate), ..Default::default() };
        let id = remember_as("public.ie_notes", "{1}", "note", with("(note = 'a b'::text)"));
        Spi::run("CREATE INDEX ie_notes_ab ON ie_notes (id) WHERE note = 'ab'").unwrap();
        assert_eq!(observe(&[id]), [None]);
        Spi::run("CREATE INDEX ie_notes_a_b ON ie_notes (id) WHERE note = 'a b'").unwrap();
        assert_eq!(observe(&[id]), [Some("public.ie_notes_a_b".to_string())]);
    }

    /// A built row whose index was made again under its name (REINDEX CONCURRENTLY gives a new
    /// OID) is re-attached with its windows; one made again with another definition is not.
    #[pg_test]
    fn an_index_made_again_under_its_name_is_followed_only_with_the_same_definition() {
        Spi::run("CREATE TABLE ie_again(id int, customer int, total int)").unwrap();
        let plain = Recorded { options: Some(vec![0]), ..Default::default() };
        let id = remember_as("public.ie_again", "{2}", "customer", plain);
        Spi::run("CREATE INDEX ie_again_customer ON ie_again (customer)").unwrap();
        assert_eq!(observe(&[id]), [Some("public.ie_again_customer".to_string())]);
        let seen = "SELECT built_seen_at::text FROM pitstop.index_suggestions WHERE id = $1";
        let seen_at = || Spi::get_one_with_args::<String>(seen, &[id.into()]).unwrap();
        let first_seen = seen_at();
        let oid = "SELECT index_oid = 'ie_again_customer'::regclass FROM pitstop.index_suggestions WHERE id = $1";
        let attached = || Spi::get_one_with_args::<bool>(oid, &[id.into()]).unwrap();
        Spi::run(
            "DROP INDEX ie_again_customer;
             CREATE INDEX ie_again_customer ON ie_again (customer);",
        )
        .unwrap();
        assert_eq!(attached(), Some(false));
        assert_eq!(observe(&[id]), [Some("public.ie_again_customer".to_string())]);
        assert_eq!(attached(), Some(true));
        assert_eq!(seen_at(), first_seen, "its windows are kept");
        Spi::run(
            "DROP INDEX ie_again_customer;
             CREATE INDEX ie_again_customer ON ie_again (customer, total);",
        )
        .unwrap();
        observe(&[id]);
        assert_eq!(attached(), Some(false), "another index under the name");
    }

    /// A built row whose index observe found dropped (none of its definition under its name)
    /// is over: an index made later under the name does not take its windows, and the row is
    /// not counted again.
    #[pg_test]
    fn a_dropped_index_is_not_followed_to_a_later_one_under_its_name() {
        Spi::run("CREATE TABLE ie_gone(id int, customer int)").unwrap();
        let plain = Recorded { options: Some(vec![0]), ..Default::default() };
        let id = remember_as("public.ie_gone", "{2}", "customer", plain);
        Spi::run("CREATE INDEX ie_gone_customer ON ie_gone (customer)").unwrap();
        assert_eq!(observe(&[id]), [Some("public.ie_gone_customer".to_string())]);
        let row = "SELECT dropped_seen_at IS NOT NULL, index_oid = to_regclass('ie_gone_customer')
                     FROM pitstop.index_suggestions WHERE id = $1";
        let state = || Spi::get_two_with_args::<bool, bool>(row, &[id.into()]).unwrap();
        assert_eq!(state(), (Some(false), Some(true)));
        Spi::run("DROP INDEX ie_gone_customer").unwrap();
        let changed = "SELECT pitstop.index_suggestions_observe()";
        assert_eq!(Spi::get_one::<i32>(changed), Ok(Some(1)), "marked dropped");
        assert_eq!(state(), (Some(true), None));
        Spi::run("CREATE INDEX ie_gone_customer ON ie_gone (customer)").unwrap();
        assert_eq!(Spi::get_one::<i32>(changed), Ok(Some(0)), "nothing to note");
        assert_eq!(state(), (Some(true), Some(false)), "not re-attached");
    }

    /// An index in another collation than the column's (b COLLATE "C") is not the suggested
    /// one: the statements cannot use it, and after a REINDEX CONCURRENTLY its new OID is not
    /// among the table's indexes at the suggestion.
    #[pg_test]
    fn an_index_in_another_collation_is_not_taken_for_the_suggestion() {
        Spi::run("CREATE TABLE ie_coll(a int, b text)").unwrap();
        let id = remember("ie_coll", "{2}", "btree", None, "CREATE INDEX ON public.ie_coll (b)");
        Spi::run(r#"CREATE INDEX ie_coll_c ON ie_coll (b COLLATE "C")"#).unwrap();
        assert_eq!(observe(&[id]), vec![None]);
        Spi::run("CREATE INDEX ie_coll_b ON ie_coll (b)").unwrap();
        assert_eq!(observe(&[id]), vec![Some("public.ie_coll_b".to_string())]);
    }

    /// A role that ran the statement once before the build and many times after (with index
    /// scans off, say) weighs no more after than before: the application's own calls, ten
    /// times faster, make the verdict, and no DROP is printed.
    #[pg_test]
    fn a_role_with_few_calls_before_cannot_outweigh_the_application_after() {
        Spi::run(
            "CREATE TABLE ie_w(a int);
             CREATE INDEX ie_w_a ON ie_w (a);
             INSERT INTO pitstop.index_suggestions (dbid, relid, table_name, key_attnums, include_attnums, partial, ddl,
                                                    queryids, first_suggested_at, last_suggested_at, index_oid, index_name,
                                                    built_seen_at, before_until, table_writes_at_seen)
             SELECT d.oid, 'ie_w'::regclass, 'public.ie_w', '{1}', '{}', false, 'ie_w ddl', '{303}',
                    timestamptz '2026-01-01 09:00+00', timestamptz '2026-01-01 09:00+00', 'ie_w_a'::regclass,
                    'public.ie_w_a', timestamptz '2026-01-01 10:00+00', timestamptz '2026-01-01 09:59+00', 0
               FROM pg_database d WHERE d.datname = current_database();
             -- The application (10): 1,000 calls at 10 ms before, 1,000 at 1 ms after. Another
             -- role (20): 1 call before, 2,000 at 20 ms after.
             INSERT INTO pitstop.query_snapshots (captured_at, dbid, userid, queryid, query, calls, total_exec_time_ms,
                                                  mean_exec_time_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written)
             SELECT v.at, d.oid, v.userid, 303, 'q303', v.calls, v.total, 0, 0, 0, 0, 0
               FROM pg_database d,
                    (VALUES (timestamptz '2026-01-01 09:59+00', 10, 1000, 10000.0),
                            (timestamptz '2026-01-01 10:00+00', 10, 1000, 10000.0),
                            (timestamptz '2026-01-01 11:00+00', 10, 2000, 11000.0),
                            (timestamptz '2026-01-01 09:59+00', 20, 1, 10.0),
                            (timestamptz '2026-01-01 10:00+00', 20, 1, 10.0),
                            (timestamptz '2026-01-01 11:00+00', 20, 2001, 40010.0)) AS v(at, userid, calls, total)
              WHERE d.datname = current_database();",
        )
        .unwrap();
        let (calls_after, mean_after) = Spi::get_two::<i64, f64>(
            "SELECT calls_after, mean_ms_after FROM pitstop.index_suggestion_effect(
                        (SELECT id FROM pitstop.index_suggestions WHERE ddl = 'ie_w ddl'))",
        )
        .unwrap();
        assert_eq!(calls_after, Some(3000), "every call after is counted");
        let mean_after = mean_after.unwrap();
        assert!((mean_after - 1020.0 / 1001.0).abs() < 1e-9, "{mean_after}");
        let action = Spi::get_one::<String>(
            "SELECT action FROM pitstop.index_effects WHERE suggested_ddl = 'ie_w ddl'",
        )
        .unwrap();
        assert_eq!(action, None);
    }

    /// Two suggestions built by one index (rows remembered before 0.5.0 could be): each row of
    /// index_effects measures its own statements over its own windows, not the latest row's.
    #[pg_test]
    fn each_built_suggestion_is_measured_by_its_own_statements_and_windows() {
        Spi::run(
            "CREATE TABLE ie_shared(id int, k int);
             CREATE INDEX ie_shared_k ON ie_shared (k);
             INSERT INTO pitstop.index_suggestions (dbid, relid, table_name, key_attnums, include_attnums, partial, ddl,
                                                    queryids, first_suggested_at, last_suggested_at, index_oid, index_name,
                                                    built_seen_at, before_until, table_writes_at_seen)
             SELECT d.oid, 'ie_shared'::regclass, 'public.ie_shared', '{2}', '{}', false, v.ddl, v.queryids,
                    v.built - interval '1 hour', v.built - interval '1 hour', 'ie_shared_k'::regclass, 'public.ie_shared_k',
                    v.built, v.built - interval '1 minute', 0
               FROM pg_database d,
                    (VALUES ('first', '{101}'::bigint[], timestamptz '2026-01-01 10:00+00'),
                            ('second', '{202}', timestamptz '2026-01-01 12:00+00')) AS v(ddl, queryids, built)
              WHERE d.datname = current_database();
             -- 101: 100 ms before its build, 1 ms after; 202: 50 ms before its build, 40 ms after.
             INSERT INTO pitstop.query_snapshots (captured_at, dbid, userid, queryid, query, calls, total_exec_time_ms,
                                                  mean_exec_time_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written)
             SELECT v.at, d.oid, 10, v.queryid, 'q' || v.queryid, v.calls, v.total, 0, 0, 0, 0, 0
               FROM pg_database d,
                    (VALUES (timestamptz '2026-01-01 09:59+00', 101, 20, 2000.0),
                            (timestamptz '2026-01-01 10:00+00', 101, 20, 2000.0),
                            (timestamptz '2026-01-01 11:00+00', 101, 40, 2020.0),
                            (timestamptz '2026-01-01 11:59+00', 202, 20, 1000.0),
                            (timestamptz '2026-01-01 12:00+00', 202, 20, 1000.0),
                            (timestamptz '2026-01-01 13:00+00', 202, 40, 1800.0)) AS v(at, queryid, calls, total)
              WHERE d.datname = current_database();",
        )
        .unwrap();
        let means = |ddl: &str| {
            Spi::get_two_with_args::<f64, f64>(
                "SELECT mean_ms_before, mean_ms_after FROM pitstop.index_effects WHERE suggested_ddl = $1",
                &[ddl.into()],
            )
            .unwrap()
        };
        assert_eq!(means("first"), (Some(100.0), Some(1.0)));
        assert_eq!(means("second"), (Some(50.0), Some(40.0)));
    }
}
