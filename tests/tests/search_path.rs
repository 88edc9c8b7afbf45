//! Review R15 finding 1: whoever may create objects in `public` (on PostgreSQL 15+, the
//! database owner) plants exact-typed overloads of the pg_catalog functions pitstop's SQL calls
//! (`array_agg(text)`, `quote_ident(name)`, `json_agg`, `json_build_object`, `jsonb_build_object`,
//! `cardinality`, `unnest`: CVE-2018-1058). A superuser then runs the CLI's reports, `top`, the
//! snapshot job and `doctor`, and a daemon running as the superuser serves every console page:
//! none of the planted functions runs, because every daemon and CLI session pins its
//! search_path. The user's own statement text (`report indexes --query`, `report advice`)
//! still finds the user's tables the way the user's session would.

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{pitstop, poll_until, run_snapshot_job, Daemon, DaemonConfig, PgCluster};
use postgres::fallible_iterator::FallibleIterator;
use std::time::Duration;

/// Run by eve, the owner of database appdb: a recorder and the overloads that call it. In a
/// read-only transaction (the console's session) the recorder cannot insert and notifies.
const PLANT: &str = "
CREATE TABLE public.hijacked (who text, what text);
GRANT INSERT ON public.hijacked TO PUBLIC;
CREATE FUNCTION public.note(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.hijacked VALUES (current_user, what);
EXCEPTION WHEN read_only_sql_transaction THEN
  PERFORM pg_catalog.pg_notify('hijacked', current_user || ' ' || what);
END $$;
CREATE FUNCTION public.evil_sfunc(state text[], v text) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('array_agg(text)'); RETURN state OPERATOR(pg_catalog.||) v; END $$;
CREATE AGGREGATE public.array_agg(text) (SFUNC = public.evil_sfunc, STYPE = text[], INITCOND = '{}');
CREATE FUNCTION public.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('quote_ident(name)'); RETURN pg_catalog.quote_ident($1::text); END $$;
CREATE FUNCTION public.cardinality(bigint[]) RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('cardinality(bigint[])'); RETURN pg_catalog.cardinality($1); END $$;
CREATE FUNCTION public.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('unnest(bigint[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.json_build_object(text, bigint) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('json_build_object(text, bigint)'); RETURN pg_catalog.json_build_object($1, $2); END $$;
CREATE FUNCTION public.json_sfunc(state json, v json) RETURNS json LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('json_agg(json)'); RETURN v; END $$;
CREATE AGGREGATE public.json_agg(json) (SFUNC = public.json_sfunc, STYPE = json);
CREATE FUNCTION public.jsonb_build_object(text, bigint, text, timestamptz, text, float8, text, bigint,
                                          text, bigint, text, int[], text, bigint[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('jsonb_build_object(...)'); RETURN '{}'::jsonb; END $$;
";

/// Run by eve after PLANT (review R17): an operator and a type of pg_catalog's names, and an
/// operator that matches `100 * float8` better than pg_catalog's, which win once eve puts
/// `public` ahead of pg_catalog in her database's search_path: the value the user's own
/// statements run with.
const PLANT_OPERATORS: &str = "
CREATE FUNCTION public.evil_eq(a name, b name) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('=(name, name)'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_times(a int, b float8) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('*(int, float8)'); RETURN a OPERATOR(pg_catalog.*) b; END $$;
CREATE OPERATOR public.* (LEFTARG = int, RIGHTARG = float8, FUNCTION = public.evil_times);
CREATE FUNCTION public.noted_text(v pg_catalog.text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN PERFORM public.note('domain text'); RETURN true; END $$;
CREATE DOMAIN public.text AS pg_catalog.text CHECK (public.noted_text(VALUE));
";

/// Each of PLANT_OPERATORS' objects wins under `search_path = public, pg_catalog`.
const EACH_OPERATOR: &[&str] = &[
    "SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'pitstop'",
    "SELECT 100 * 1.5::float8",
    "SELECT 'x'::text",
];

/// Each overload, called unqualified under the default search_path, wins over pg_catalog's.
const EACH_OVERLOAD: &[&str] = &[
    "SELECT array_agg(x) FROM (VALUES ('a'::text)) v(x)",
    "SELECT quote_ident('a'::name)",
    "SELECT cardinality('{1}'::bigint[])",
    "SELECT unnest('{1}'::bigint[])",
    "SELECT json_agg(json_build_object('a', 1::bigint))",
    "SELECT jsonb_build_object('calls', 1::bigint, 'since', now(), 'max_ms', 1::float8, 'below', 0::bigint, \
     'above', 0::bigint, 'buckets', '{1}'::int[], 'counts', '{1}'::bigint[])",
];

#[test]
fn functions_planted_in_public_never_run_in_pitstops_sessions() {
    let (cluster, mut admin) = PgCluster::with_extension(
        "CREATE ROLE eve LOGIN; ALTER ROLE eve SET pitstop.slow_query_ms = 0",
    );
    admin.batch_execute("CREATE DATABASE appdb OWNER eve").unwrap();
    let mut app_admin = cluster.connect_as("postgres", "appdb");
    app_admin
        .batch_execute("CREATE EXTENSION pitstop; CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let mut eve = cluster.connect_as("eve", "appdb");
    eve.batch_execute(PLANT).unwrap();
    for sql in EACH_OVERLOAD {
        eve.batch_execute(sql).unwrap();
    }
    let planted: i64 = app_admin
        .query_one("SELECT count(DISTINCT what) FROM public.hijacked", &[])
        .unwrap()
        .get(0);
    assert_eq!(planted, 7, "an overload did not win over pg_catalog's: the test checks nothing");
    eve.batch_execute(PLANT_OPERATORS).unwrap();
    eve.batch_execute("ALTER DATABASE appdb SET search_path = public, pg_catalog").unwrap();
    let mut eve_later = cluster.connect_as("eve", "appdb");
    for sql in EACH_OPERATOR {
        eve_later.batch_execute(sql).unwrap();
    }
    let planted: i64 = app_admin
        .query_one("SELECT count(DISTINCT what) FROM public.hijacked", &[])
        .unwrap()
        .get(0);
    assert_eq!(planted, 10, "an operator or type did not win: the test checks nothing");
    app_admin.batch_execute("TRUNCATE public.hijacked").unwrap();

    // The application's workload: a filter an index would serve, a slow statement captured.
    eve.batch_execute(
        "CREATE TABLE public.orders (id int, customer_id int, pad text);
         INSERT INTO public.orders SELECT g, g % 20000, repeat('x', 50) FROM generate_series(1, 100000) g;
         ANALYZE public.orders",
    )
    .unwrap();
    // The load's INSERT would count as the write cost of an index on orders.
    app_admin.batch_execute("SELECT pg_stat_statements_reset()").unwrap();
    for customer in 0..50 {
        eve.query("SELECT * FROM orders WHERE customer_id = $1", &[&customer]).unwrap();
    }
    let mut listener = cluster.connect_as("postgres", "appdb");
    listener.batch_execute("LISTEN hijacked").unwrap();

    let dsn = format!("host=127.0.0.1 port={} user=postgres dbname=appdb", cluster.port);
    let run = |args: &[&str]| {
        let (code, out, err) = pitstop(&[&["--dsn", dsn.as_str()], args].concat());
        assert_eq!(code, 0, "pitstop {args:?}:\n{out}\n{err}");
        out
    };
    // The workload's suggestion is remembered for `report problems`.
    let advice = run(&["report", "indexes", "--json"]);
    assert!(advice.contains("customer_id"), "no index advised for eve's workload:\n{advice}");
    // The user's own text names the user's table unqualified.
    let advice = run(&[
        "report",
        "indexes",
        "--json",
        "--query",
        "SELECT * FROM orders WHERE customer_id = 7",
    ]);
    assert!(advice.contains("customer_id"), "--query found no table orders:\n{advice}");
    let advice = run(&["report", "advice", "--json", "SELECT * FROM orders WHERE customer_id = 7"]);
    assert!(advice.contains("orders"), "report advice found no table orders:\n{advice}");
    // Every statement run with the user's search_path (review R17).
    let curve = run(&["report", "indexes", "--curve", "--json"]);
    assert!(curve.contains("customer_id"), "{curve}");
    run(&["report", "unhelped", "--json"]);
    run(&["report", "index-health", "--with-advice", "--json"]);
    eve.batch_execute("CREATE INDEX orders_id_idx ON public.orders (id)").unwrap();
    run(&["report", "index-effect", "--index", "orders_id_idx", "--json"]);
    run(&["cache", "invalidate", "orders", "--yes"]);
    let problems = run(&["report", "problems", "--json"]);
    assert!(problems.contains("customer_id"), "no problem listed:\n{problems}");
    run(&["report", "problems", "--advice"]);
    run(&["top", "--interval", "300ms", "--json"]);
    run_snapshot_job(&dsn);
    let (code, out, err) = pitstop(&["--dsn", &dsn, "doctor"]);
    assert!(code == 0 || code == 1, "doctor: {out}\n{err}");

    let daemon =
        Daemon::start(&DaemonConfig::new(&dsn, "").set("http", "console = true").toml(), &[]);
    let listed = poll_until(Duration::from_secs(60), || {
        let (code, body) = daemon.get("/api/overview");
        code == 200 && body.contains("customer_id")
    });
    assert!(listed, "the overview never listed eve's statements:\n{}", daemon.log());
    let queryid = scalar_i64(
        &mut app_admin,
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%FROM orders WHERE customer_id%' LIMIT 1",
    );
    daemon.assert_every_page_answers(queryid);
    drop(daemon);

    let recorded: Vec<String> = app_admin
        .query("SELECT who || ' ' || what FROM public.hijacked", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    listener.batch_execute("SELECT 1").unwrap();
    let notified: Vec<String> =
        listener.notifications().iter().map(|n| Ok(n.payload().to_string())).collect().unwrap();
    assert!(
        recorded.is_empty() && notified.is_empty(),
        "planted functions ran in pitstop's sessions: {recorded:?} (console: {notified:?})"
    );
}
