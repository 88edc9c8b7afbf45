//! `#[pg_test]`s of the result cache: one per correctness rule and bypass reason that a single
//! transaction can show, bad input, and the statistics. Commit-time invalidation and
//! concurrency are integration tests (tests/tests/cache_*.rs): a pg_test never commits.
use pgrx::prelude::*;

// A table committed with the extension: rows written inside a test's own transaction would
// (rightly) make every call bypass the cache as the transaction's own uncommitted write.
// DDL inside a test's transaction would also make the cache step aside for the rest of it, so
// the other objects the tests need are created here too.
extension_sql!(
    r#"
CREATE TABLE cache_fixture(id int PRIMARY KEY, v text);
INSERT INTO cache_fixture SELECT g, 'v' || g FROM generate_series(1, 100) g;
GRANT SELECT ON cache_fixture TO PUBLIC;
CREATE FUNCTION cache_stable_fn() RETURNS text STABLE LANGUAGE sql AS 'select v from @extschema@.cache_fixture limit 1';
DO $$ BEGIN CREATE ROLE cache_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT USAGE ON SCHEMA @extschema@ TO cache_reader;
CREATE SCHEMA cache_other;
CREATE TABLE cache_other.cache_fixture(id int, v text);
INSERT INTO cache_other.cache_fixture VALUES (1, 'other');
GRANT USAGE ON SCHEMA cache_other TO PUBLIC;
GRANT SELECT ON cache_other.cache_fixture TO PUBLIC;
CREATE FUNCTION cache_tenant_step(text, text) RETURNS text VOLATILE LANGUAGE sql
    AS $$ SELECT $1 || '/' || $2 || '@' || coalesce(current_setting('pitstop_test.tenant', true), '') $$;
CREATE AGGREGATE cache_tenant_agg(text) (sfunc = cache_tenant_step, stype = text, initcond = '');
CREATE FUNCTION cache_plain_step(text, text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT $1 || $2 $$;
CREATE AGGREGATE cache_plain_agg(text) (sfunc = cache_plain_step, stype = text, initcond = '');
CREATE DOMAIN cache_tenant_id AS int CHECK (VALUE = current_setting('pitstop_test.tenant', true)::int);
CREATE DOMAIN cache_plain_id AS int;
CREATE VIEW cache_tenant_view AS
    SELECT id FROM cache_fixture WHERE id::text = current_setting('pitstop_test.tenant', true);
"#,
    name = "cache_test_fixture"
);

// The pg_test runner calls functions in schema "tests", so the module has that name too.
#[pg_schema]
mod tests {
    use crate::tests::tests::{count, sql_error};
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    fn bypasses(reason: &str) -> i64 {
        count(&format!("SELECT (bypass_reasons->>'{reason}')::int8 FROM pitstop.cache_stats()"))
    }

    fn hits() -> i64 {
        count("SELECT hits FROM pitstop.cache_stats()")
    }

    /// Cache tests share one server-wide cache and its counters, and cargo runs tests in
    /// parallel: each holds a transaction-level advisory lock so they run one at a time.
    fn setup() {
        Spi::run("SELECT pg_advisory_xact_lock(7460); SELECT pitstop.cache_clear()").unwrap();
    }

    fn cached_v(query: &str) -> Option<String> {
        Spi::get_one::<String>(&format!("SELECT v FROM pitstop.cached($q${query}$q$) AS t(v text)"))
            .unwrap()
    }

    /// Runs the query twice; true when the second call was a hit.
    fn second_call_hits(query: &str) -> bool {
        cached_v(query);
        let before = hits();
        cached_v(query);
        hits() == before + 1
    }

    #[pg_test]
    fn a_repeated_query_is_served_from_the_cache_with_its_rows() {
        setup();
        let rows = || {
            Spi::connect(|c| {
                c.select("SELECT id, v FROM pitstop.cached('select id, v from pitstop.cache_fixture where id <= $1 order by id', '{3}') AS t(id int, v text)", None, &[])
                    .unwrap()
                    .map(|r| (r.get::<i32>(1).unwrap().unwrap(), r.get::<String>(2).unwrap().unwrap()))
                    .collect::<Vec<_>>()
            })
        };
        let first = rows();
        let before = hits();
        assert_eq!(rows(), first);
        assert_eq!(first, vec![(1, "v1".into()), (2, "v2".into()), (3, "v3".into())]);
        assert_eq!(hits(), before + 1);
        assert_eq!(count("SELECT count(*) FROM pitstop.cache_entries WHERE query LIKE '%pitstop.cache_fixture where id <= $1%'"), 1);
        let json = Spi::get_one::<pgrx::JsonB>("SELECT pitstop.cached_json('select id, v from pitstop.cache_fixture where id = $1', '{2}')").unwrap().unwrap();
        assert_eq!(json.0, serde_json::json!([{"id": 2, "v": "v2"}]));
        let empty = Spi::get_one::<pgrx::JsonB>(
            "SELECT pitstop.cached_json('select id from pitstop.cache_fixture where false')",
        )
        .unwrap()
        .unwrap();
        assert_eq!(empty.0, serde_json::json!([]));
    }

    /// Functions a query runs without naming them: an aggregate's support functions (the
    /// aggregate itself is recorded IMMUTABLE), the view `table_to_xml` reads, a name looked
    /// up when the query runs (`$1::regclass`: through the session's temporary schema first).
    #[pg_test]
    fn functions_the_query_runs_without_naming_them_bypass() {
        setup();
        Spi::run("SET LOCAL pitstop_test.tenant = '1'").unwrap();
        let before = bypasses("volatile_function");
        let tenant = "select pitstop.cache_tenant_agg(v order by id) as v from pitstop.cache_fixture where id < 3";
        assert!(!second_call_hits(tenant));
        assert_eq!(bypasses("volatile_function"), before + 2);
        Spi::run("SET LOCAL pitstop_test.tenant = '2'").unwrap();
        assert_eq!(cached_v(tenant).as_deref(), Some("/v1@2/v2@2"));
        // An aggregate of IMMUTABLE functions stays cacheable.
        assert!(second_call_hits(
            "select pitstop.cache_plain_agg(v order by id) as v from pitstop.cache_fixture where id < 3"
        ));
        let before = bypasses("stable_function");
        let xml = "select table_to_xml('pitstop.cache_tenant_view', false, false, '')::text as v";
        assert!(!second_call_hits(xml));
        assert_eq!(bypasses("stable_function"), before + 2);
        let before = bypasses("temporary_table");
        let by_name = |name: &str| {
            Spi::get_one::<String>(&format!(
                "SELECT v FROM pitstop.cached('select $1::regclass::oid::text as v', '{{{name}}}') AS t(v text)"
            ))
            .unwrap()
        };
        by_name("pitstop.cache_fixture");
        by_name("pitstop.cache_fixture");
        assert!(!second_call_hits(
            "select 'pitstop.cache_fixture'::text::regclass::oid::text as v"
        ));
        assert_eq!(bypasses("temporary_table"), before + 4);
    }

    /// What else runs or resolves when the query runs (review R16): a domain's CHECK (it may
    /// read a setting, so a plain run errors where a hit would serve), a name inside an array
    /// or printed from a reg* value, TABLESAMPLE's draw. A domain without constraints stays
    /// cacheable.
    #[pg_test]
    fn domain_checks_hidden_names_and_tablesample_bypass() {
        setup();
        Spi::run("SET LOCAL pitstop_test.tenant = '1'").unwrap();
        let bypassed = |query: &str, params: &str| {
            let run = || {
                Spi::get_one::<String>(&format!(
                    "SELECT v FROM pitstop.cached($q${query}$q$, '{params}') AS t(v text)"
                ))
                .unwrap()
            };
            let (before, hits_before) =
                (count("SELECT bypasses FROM pitstop.cache_stats()"), hits());
            run();
            run();
            assert_eq!(hits(), hits_before, "{query} was served from the cache");
            assert_eq!(count("SELECT bypasses FROM pitstop.cache_stats()"), before + 2, "{query}");
        };
        bypassed(
            "select v from pitstop.cache_fixture where id = $1::pitstop.cache_tenant_id",
            "{1}",
        );
        bypassed(
            "select v from pitstop.cache_fixture where id = '1'::pitstop.cache_tenant_id",
            "{}",
        );
        bypassed("select (('{pitstop.cache_fixture}'::regclass[])[1])::oid::text as v", "{}");
        bypassed("select tableoid::regclass::text as v from pitstop.cache_fixture limit 1", "{}");
        bypassed(
            "select count(*)::text as v from pitstop.cache_fixture tablesample bernoulli (50)",
            "{}",
        );
        assert!(second_call_hits(
            "select v from pitstop.cache_fixture where id = '1'::pitstop.cache_plain_id"
        ));
        assert!(second_call_hits("select 'pitstop.cache_fixture'::regclass::oid::text as v"));
    }

    /// The memo of analysed texts outlives every call: long texts are not kept, and what is
    /// kept stays under its byte bound (R14: ten 20 MB texts had kept 256 MB).
    #[pg_test]
    fn the_memo_of_analysed_texts_is_bounded_in_bytes() {
        setup();
        for (i, size) in
            [(1, 3_000_000), (2, 600_000), (3, 600_000)].into_iter().cycle().take(60).enumerate()
        {
            let padding = "x".repeat(size.1);
            let query = format!(
                "select v from pitstop.cache_fixture where id = {} /* {i} {padding} */",
                size.0
            );
            assert_eq!(cached_v(&query), Some(format!("v{}", size.0)));
            let held = crate::cache::engine::remembered_bytes();
            assert!(held <= 8 << 20, "{held} bytes remembered after {i} texts");
        }
        assert!(crate::cache::engine::remembered_bytes() > 0, "short texts are remembered");
    }

    #[pg_test]
    fn volatile_and_non_builtin_stable_functions_and_the_clock_bypass() {
        setup();
        let before = bypasses("volatile_function");
        assert!(!second_call_hits("select v || random() as v from pitstop.cache_fixture limit 1"));
        assert_eq!(bypasses("volatile_function"), before + 2);
        let before = bypasses("stable_function");
        assert!(!second_call_hits("select pitstop.cache_stable_fn() as v"));
        assert!(!second_call_hits("select now()::text as v"));
        assert!(!second_call_hits("select current_timestamp::text as v"));
        assert!(!second_call_hits("select current_setting('work_mem') as v"));
        assert_eq!(bypasses("stable_function"), before + 8);
        // A built-in STABLE function that depends only on settings in the key is fine.
        assert!(second_call_hits("select to_char(timestamptz '2024-01-01', 'YYYY') as v"));
    }

    #[pg_test]
    fn for_update_temporary_tables_catalogs_and_row_level_security_bypass() {
        setup();
        for (query, reason) in [
            ("select v from pitstop.cache_fixture where id = 1 for update", "for_update"),
            ("select v from pitstop.cache_fixture where id = 1 for share", "for_update"),
            ("select relname::text as v from pg_class limit 1", "system_catalog"),
        ] {
            let before = bypasses(reason);
            assert!(!second_call_hits(query), "{query}");
            assert_eq!(bypasses(reason), before + 2, "{query}");
        }
        Spi::run("CREATE TEMP TABLE cache_tmp(v text); INSERT INTO cache_tmp VALUES ('t')")
            .unwrap();
        let before = bypasses("temporary_table");
        assert!(!second_call_hits("select v from cache_tmp"));
        assert_eq!(bypasses("temporary_table"), before + 2);
        Spi::run("CREATE TABLE cache_rls(v text); ALTER TABLE cache_rls ENABLE ROW LEVEL SECURITY; INSERT INTO cache_rls VALUES ('r')").unwrap();
        let before = bypasses("row_level_security");
        assert!(!second_call_hits("select v from cache_rls"));
        assert_eq!(bypasses("row_level_security"), before + 2);
        Spi::run("CREATE VIEW cache_rls_view AS SELECT v FROM cache_rls").unwrap();
        assert!(!second_call_hits("select v from cache_rls_view"), "RLS is seen through a view");
    }

    #[pg_test]
    fn own_uncommitted_writes_are_seen_and_never_cached() {
        setup();
        let query = "select v from pitstop.cache_fixture where id = 1";
        assert!(second_call_hits(query));
        Spi::run("UPDATE pitstop.cache_fixture SET v = 'mine' WHERE id = 1").unwrap();
        let before = bypasses("own_uncommitted_write");
        assert_eq!(
            cached_v(query).as_deref(),
            Some("mine"),
            "the hit would be older than our own write"
        );
        assert_eq!(cached_v(query).as_deref(), Some("mine"));
        assert_eq!(bypasses("own_uncommitted_write"), before + 2);
        // Written through a trigger on another table counts too.
        Spi::run(
            "CREATE TABLE cache_src(id int);
             CREATE FUNCTION cache_touch() RETURNS trigger LANGUAGE plpgsql AS
               $$BEGIN UPDATE pitstop.cache_fixture SET v = 'via trigger' WHERE id = 2; RETURN NULL; END$$;
             CREATE TRIGGER cache_touch AFTER INSERT ON cache_src FOR EACH STATEMENT EXECUTE FUNCTION cache_touch();",
        )
        .unwrap();
        Spi::run("INSERT INTO cache_src VALUES (1)").unwrap();
        assert_eq!(
            cached_v("select v from pitstop.cache_fixture where id = 2").as_deref(),
            Some("via trigger")
        );
    }

    #[pg_test]
    fn role_search_path_and_timezone_are_part_of_the_key() {
        setup();
        let query = "select v from cache_fixture where id = 1";
        Spi::run("SET search_path = pitstop").unwrap();
        assert_eq!(cached_v(query).as_deref(), Some("v1"));
        Spi::run("SET search_path = cache_other").unwrap();
        assert_eq!(
            cached_v(query).as_deref(),
            Some("other"),
            "same text, other search_path: other table"
        );
        Spi::run("SET search_path = pitstop").unwrap();
        assert!(second_call_hits(query));
        let before = count("SELECT count(*) FROM pitstop.cache_entries");
        Spi::run("SET ROLE cache_reader").unwrap();
        let hits_before = hits();
        assert_eq!(cached_v(query).as_deref(), Some("v1"));
        assert_eq!(hits(), hits_before, "another role does not get the first role's entry");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(count("SELECT count(*) FROM pitstop.cache_entries"), before + 1);
        Spi::run("RESET search_path").unwrap();
        let at = |zone: &str| {
            Spi::run(&format!("SET TimeZone = '{zone}'")).unwrap();
            Spi::get_one::<pgrx::JsonB>(
                "SELECT pitstop.cached_json('select timestamptz ''2024-01-01 12:00+00'' as at')",
            )
            .unwrap()
            .unwrap()
            .0
        };
        assert_ne!(at("UTC"), at("Asia/Tokyo"));
        assert_eq!(at("UTC")[0]["at"], "2024-01-01T12:00:00+00:00");
    }

    #[pg_test]
    fn the_cache_can_be_switched_off_and_large_results_are_not_stored() {
        setup();
        Spi::run("SET pitstop.cache_enabled = off").unwrap();
        let before = bypasses("disabled");
        assert!(!second_call_hits("select v from pitstop.cache_fixture where id = 3"));
        assert_eq!(bypasses("disabled"), before + 2);
        Spi::run("RESET pitstop.cache_enabled; SET pitstop.cache_max_entry = '1kB'").unwrap();
        let before = bypasses("result_too_large");
        assert!(!second_call_hits(
            "select string_agg(repeat(v, 20), ',') as v from pitstop.cache_fixture"
        ));
        assert_eq!(bypasses("result_too_large"), before + 2);
    }

    #[pg_test]
    fn ddl_in_the_transaction_makes_the_cache_step_aside_and_sequences_bypass() {
        setup();
        let query = "select v from pitstop.cache_fixture where id = 6";
        assert!(second_call_hits(query));
        Spi::run(
            "CREATE FUNCTION cache_f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'select $1 + 1'",
        )
        .unwrap();
        let before = bypasses("own_uncommitted_write");
        assert!(
            !second_call_hits(query),
            "a definition changed by this transaction may change any answer"
        );
        assert_eq!(bypasses("own_uncommitted_write"), before + 2);
        Spi::run("CREATE SEQUENCE cache_seq").unwrap();
        let before = bypasses("sequence");
        Spi::run("SELECT * FROM pitstop.cached('select last_value from cache_seq') AS t(v int8)")
            .unwrap();
        assert_eq!(bypasses("sequence"), before + 1);
    }

    #[pg_test]
    fn invalidate_and_clear_make_the_next_call_a_miss() {
        setup();
        let query = "select v from pitstop.cache_fixture where id = 4";
        assert!(second_call_hits(query));
        Spi::run("SELECT pitstop.cache_invalidate('pitstop.cache_fixture')").unwrap();
        let before = hits();
        cached_v(query);
        assert_eq!(hits(), before, "invalidated");
        assert!(count("SELECT pitstop.cache_clear()") >= 1);
        assert_eq!(count("SELECT entries FROM pitstop.cache_stats()"), 0);
        let (code, _, _) = sql_error("SELECT pitstop.cache_invalidate(NULL)");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
    }

    #[pg_test]
    fn bad_input_is_a_clear_error_and_nothing_runs() {
        setup();
        for (sql, expected) in [
            ("SELECT * FROM pitstop.cached('insert into pitstop.cache_fixture values (1000, ''x'')') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('delete from pitstop.cache_fixture') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('with d as (delete from pitstop.cache_fixture returning id) select id from d') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('do $$ begin delete from pitstop.cache_fixture; end $$') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('create table cache_x(i int)') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('select 1; delete from pitstop.cache_fixture') AS t(id int)", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            ("SELECT * FROM pitstop.cached('select * into cache_y from pitstop.cache_fixture') AS t(id int)", PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED),
            ("SELECT * FROM pitstop.cached('selec 1') AS t(id int)", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            ("SELECT * FROM pitstop.cached('select id from pitstop.cache_fixture where id = $1') AS t(id int)", PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            ("SELECT * FROM pitstop.cached('select id from pitstop.cache_fixture where id = $1', '{1,2}') AS t(id int)", PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            ("SELECT * FROM pitstop.cached('select id from pitstop.cache_fixture where id = $1', '{abc}') AS t(id int)", PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION),
            ("SELECT * FROM pitstop.cached('select id, v from pitstop.cache_fixture') AS t(id int)", PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH),
            ("SELECT * FROM pitstop.cached('select id from pitstop.cache_fixture') AS t(id text)", PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH),
            ("SELECT * FROM pitstop.cached(NULL) AS t(id int)", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("SELECT * FROM pitstop.cached('select 1', NULL, '-1 minute') AS t(id int)", PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            ("SELECT pitstop.cached('select 1')", PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH),
        ] {
            let (code, message, _) = sql_error(sql);
            assert_eq!(code, expected, "{sql}: {message}");
        }
        assert_eq!(count("SELECT count(*) FROM pitstop.cache_fixture"), 100, "nothing was written");
        assert_eq!(
            count("SELECT count(*) FROM pg_class WHERE relname IN ('cache_x', 'cache_y')"),
            0
        );
        let (_, message, _) = sql_error(
            "SELECT * FROM pitstop.cached('select id from pitstop.cache_fixture') AS t(id text)",
        );
        assert!(message.contains("column definition list"), "{message}");
    }

    /// A query deep enough to exhaust the stack while its tree is walked fails with the
    /// error plain SQL gives (stack depth limit exceeded), and the backend stays up: an
    /// ERROR raised deep in the walk used to cross nested pgrx guards and abort the server.
    #[pg_test]
    fn a_query_too_deep_to_walk_is_an_error_not_a_crash() {
        setup();
        // Deep enough for the walk, not for parse analysis (which recurses in less stack).
        for terms in [5_000, 10_000] {
            let sum = vec!["1"; terms].join("+");
            let (code, message, _) =
                sql_error(&format!("SELECT * FROM pitstop.cached('SELECT {sum}') AS t(x int)"));
            assert_eq!(code, PgSqlErrorCode::ERRCODE_STATEMENT_TOO_COMPLEX, "{terms}: {message}");
        }
        let sum = vec!["1"; 200].join("+");
        assert_eq!(cached_v(&format!("SELECT ({sum})::text AS v")).as_deref(), Some("200"));
    }

    #[pg_test]
    fn a_ttl_expires_the_entry() {
        setup();
        let query = "SELECT v FROM pitstop.cached('select v from pitstop.cache_fixture where id = 5', NULL, '50 milliseconds') AS t(v text)";
        Spi::run(query).unwrap();
        Spi::run("SELECT pg_sleep(0.1)").unwrap();
        let before = count("SELECT stale FROM pitstop.cache_stats()");
        Spi::run(query).unwrap();
        assert_eq!(count("SELECT stale FROM pitstop.cache_stats()"), before + 1);
        let expires = Spi::get_one::<bool>(
            "SELECT expires_at > created_at AND expires_at < created_at + interval '1 second' FROM pitstop.cache_entries WHERE query LIKE '%id = 5'",
        )
        .unwrap();
        assert_eq!(expires, Some(true));
    }

    #[pg_test]
    fn anonymous_record_columns_are_never_stored_but_typed_composites_are() {
        setup();
        let before = bypasses("anonymous_record");
        let record = "SELECT r::text FROM pitstop.cached('select row(id, v) from pitstop.cache_fixture where id = 1') AS t(r record)";
        let array = "SELECT r::text FROM pitstop.cached('select array_agg(row(id, v) order by id) from pitstop.cache_fixture where id <= 2') AS t(r record[])";
        for _ in 0..2 {
            assert_eq!(Spi::get_one::<String>(record).unwrap().as_deref(), Some("(1,v1)"));
            assert_eq!(
                Spi::get_one::<String>(array).unwrap().as_deref(),
                Some("{\"(1,v1)\",\"(2,v2)\"}")
            );
        }
        assert_eq!(bypasses("anonymous_record"), before + 4);
        assert_eq!(count("SELECT entries FROM pitstop.cache_stats()"), 0, "nothing was stored");
        // A named row type carries no backend-local type id: cached as usual.
        let typed = "SELECT (r).v FROM pitstop.cached('select c from pitstop.cache_fixture c where id = 3') AS t(r pitstop.cache_fixture)";
        assert_eq!(Spi::get_one::<String>(typed).unwrap().as_deref(), Some("v3"));
        let before = hits();
        assert_eq!(Spi::get_one::<String>(typed).unwrap().as_deref(), Some("v3"));
        assert_eq!(hits(), before + 1);
    }

    #[pg_test]
    fn results_over_cache_max_entry_are_returned_whole_and_not_stored() {
        setup();
        Spi::run("SET pitstop.cache_max_entry = '64kB'").unwrap();
        let query = "select g, repeat('x', 100 + g % 7) as s from generate_series(1, 3000) g";
        let rows =
            format!("SELECT count(*)::int8 FROM pitstop.cached($q${query}$q$) AS t(g int, s text)");
        let chars = format!("SELECT sum(length(s) + g)::int8 FROM pitstop.cached($q${query}$q$) AS t(g int, s text)");
        let expected = count(&format!("SELECT sum(length(s) + g)::int8 FROM ({query}) q"));
        let before = bypasses("result_too_large");
        let hits_before = hits();
        for _ in 0..2 {
            assert_eq!(count(&rows), 3000);
            assert_eq!(count(&chars), expected);
        }
        let json = format!("SELECT jsonb_array_length(pitstop.cached_json($q${query}$q$))::int8");
        assert_eq!(count(&json), 3000);
        assert_eq!(bypasses("result_too_large"), before + 5);
        assert_eq!(hits(), hits_before, "nothing was served from the cache");
        assert_eq!(count("SELECT entries FROM pitstop.cache_stats()"), 0);
    }

    #[pg_test]
    fn a_ttl_too_large_to_represent_never_expires() {
        setup();
        let query = "SELECT v FROM pitstop.cached('select v from pitstop.cache_fixture where id = 7', NULL, '300000 years') AS t(v text)";
        assert_eq!(Spi::get_one::<String>(query).unwrap().as_deref(), Some("v7"));
        let before = hits();
        assert_eq!(Spi::get_one::<String>(query).unwrap().as_deref(), Some("v7"));
        assert_eq!(hits(), before + 1);
        let never = Spi::get_one::<bool>(
            "SELECT expires_at = 'infinity' FROM pitstop.cache_entries WHERE query LIKE '%id = 7'",
        )
        .unwrap();
        assert_eq!(never, Some(true));
        let (code, _, _) = sql_error(
            "SELECT * FROM pitstop.cached('select 1', NULL, '-300000 years') AS t(id int)",
        );
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
    }

    #[pg_test]
    fn settings_that_change_parsing_or_output_are_in_the_key() {
        setup();
        Spi::run("SET TimeZone = 'UTC'; SET enable_seqscan = off").unwrap();
        let cases = [
            ("transform_null_equals", "off", "on", "select (1 = null)::text as v"),
            ("array_nulls", "on", "off", "select ('{NULL}'::text[])[1] as v"),
            ("xmlbinary", "base64", "hex", "select xmlelement(name x, '\\x01'::bytea)::text as v"),
            (
                "timezone_abbreviations",
                "'Default'",
                "'India'",
                "select '2024-01-01 00:00 IST'::timestamptz::text as v",
            ),
            ("quote_all_identifiers", "off", "on", "select quote_ident('abc') as v"),
            // A GIN scan returns a random subset of about this many rows.
            (
                "gin_fuzzy_search_limit",
                "0",
                "10",
                "select count(*)::text as v from pitstop.cache_gin where tags @> '{1}'",
            ),
        ];
        for (setting, first, second, query) in cases {
            Spi::run(&format!("SET {setting} = {first}")).unwrap();
            let old = cached_v(query);
            let before = hits();
            assert_eq!(cached_v(query), old, "{setting}");
            assert_eq!(hits(), before + 1, "{setting}: cached under its first value");
            Spi::run(&format!("SET {setting} = {second}")).unwrap();
            let plain = Spi::get_one::<String>(&format!("SELECT v FROM ({query}) q")).unwrap();
            assert_ne!(plain, old, "{setting} must change the answer");
            let before = hits();
            let got = cached_v(query);
            assert_eq!(hits(), before, "{setting}: served the entry of its first value");
            if setting != "gin_fuzzy_search_limit" {
                assert_eq!(got, plain, "{setting}");
            }
        }
    }
}

// A GIN-indexed table for the gin_fuzzy_search_limit case of the key test.
extension_sql!(
    r#"
CREATE TABLE cache_gin(tags int[]);
INSERT INTO cache_gin SELECT '{1}' FROM generate_series(1, 5000);
CREATE INDEX ON cache_gin USING gin (tags);
GRANT SELECT ON cache_gin TO PUBLIC;
"#,
    name = "cache_settings_fixture"
);
