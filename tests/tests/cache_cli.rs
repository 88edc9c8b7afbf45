//! `pitstop cache stats|entries|invalidate|clear` against a real cluster: what the CLI shows is
//! what the extension holds, the changes are refused without --yes when there is no terminal
//! (and change nothing then), and bad input is a clear error.

use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;
use postgres::Client;

const SETUP: &str = "CREATE TABLE public.t (id int PRIMARY KEY, v text);
    INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
    CREATE ROLE reader LOGIN; GRANT USAGE ON SCHEMA pitstop TO reader; GRANT SELECT ON public.t TO reader";

const QUERY: &str = "SELECT * FROM pitstop.cached('SELECT count(*) FROM public.t') AS r(n bigint)";

fn json(dsn: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--dsn", dsn, "--json", "cache"];
    all.extend_from_slice(args);
    let (code, out, err) = pitstop_tests::pitstop(&all);
    assert_eq!(code, 0, "pitstop cache {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn fresh(c: &mut Client) -> Vec<bool> {
    first_column(c, "SELECT fresh FROM pitstop.cache_entries", &[])
}

#[test]
fn the_cli_shows_invalidates_and_clears_the_cache() {
    let (cluster, mut c) = PgCluster::with_extension(SETUP);
    let dsn = cluster.dsn();
    c.batch_execute(&format!("{QUERY}; {QUERY}")).unwrap();

    let stats = json(&dsn, &["stats"]);
    assert_eq!(
        (stats[0]["hits"].as_i64(), stats[0]["fills"].as_i64(), stats[0]["entries"].as_i64()),
        (Some(1), Some(1), Some(1)),
        "{stats}"
    );
    let entries = json(&dsn, &["entries"]);
    assert_eq!(entries[0]["query"], "SELECT count(*) FROM public.t", "{entries}");
    // pitstop's sessions pin search_path = pg_catalog, pg_temp: names carry their schema.
    assert_eq!(entries[0]["relations"][0], "public.t", "{entries}");
    assert_eq!(entries[0]["fresh"], true);

    // No terminal and no --yes: refused, exit status 2, nothing changed.
    for args in [["cache", "invalidate", "public.t"].as_slice(), ["cache", "clear"].as_slice()] {
        let mut all = vec!["--dsn", dsn.as_str()];
        all.extend_from_slice(args);
        let (code, _, err) = pitstop_tests::pitstop(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("needs --yes"), "{err}");
    }
    assert_eq!(fresh(&mut c), vec![true]);

    // The table is found as the user's session would find it.
    assert_eq!(json(&dsn, &["invalidate", "t", "--yes"])[0]["invalidated"], true);
    assert_eq!(fresh(&mut c), vec![false]);
    assert_eq!(json(&dsn, &["clear", "-y"])[0]["removed"], 1);
    assert!(fresh(&mut c).is_empty());
    let (code, out, _) = pitstop_tests::pitstop(&["--dsn", &dsn, "cache", "entries"]);
    assert_eq!(code, 0);
    assert!(out.contains("No cached results"), "{out}");
}

#[test]
fn bad_tables_and_missing_rights_are_clear_errors() {
    let (cluster, mut c) = PgCluster::with_extension(SETUP);
    let dsn = cluster.dsn();
    c.batch_execute(QUERY).unwrap();
    let err = pitstop_tests::pitstop_error(&[
        "--dsn",
        &dsn,
        "cache",
        "invalidate",
        "public.no_such_table",
        "--yes",
    ]);
    assert!(err.contains("relation \"public.no_such_table\" does not exist"), "{err}");
    // EXECUTE on cache_clear is revoked from PUBLIC: a plain role is refused and the entry stays.
    let reader = format!("{dsn} user=reader");
    let err = pitstop_tests::pitstop_error(&["--dsn", &reader, "cache", "clear", "--yes"]);
    assert!(err.contains("permission denied for function cache_clear"), "{err}");
    assert_eq!(fresh(&mut c), vec![true]);
}
