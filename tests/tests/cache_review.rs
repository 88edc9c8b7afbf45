//! Cache findings of the second review, on a real cluster: type names resolved through a
//! session's temporary schema, and a `cached()` call served from the cache while another
//! call's fill runs.

use pitstop_tests::cache_call::{cached_hit, sqlstate_text};
use pitstop_tests::{cache_stats as stats, PgCluster};
use postgres::Client;

/// `pitstop.cached(query)` of one column `coldef`, each value as text, and whether the call
/// was served from the cache; Err with the SQLSTATE when it fails.
fn call(c: &mut Client, query: &str, coldef: &str) -> Result<(Vec<String>, bool), String> {
    cached_hit(c, query, &[], coldef).map_err(|e| sqlstate_text(&e))
}

/// The query run plainly, its one value as text (or the SQLSTATE of its error).
fn plain(c: &mut Client, query: &str) -> Result<Vec<String>, String> {
    let rows = c.query(&format!("SELECT (({query}))::text"), &[]).map_err(|e| sqlstate_text(&e))?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into()))
        .collect())
}

// ---- finding 4: temporary types and domains ------------------------------------------------

#[test]
fn types_resolved_through_a_sessions_temporary_schema_are_not_shared() {
    // The same role in both sessions; in B, pg_temp (searched first for type names) shadows
    // the permanent domains.
    let (cluster, mut a) =
        PgCluster::with_extension("CREATE DOMAIN d AS int; CREATE DOMAIN w AS int;");
    let mut b = cluster.connect();
    let check = "select 5::d::int";
    let queries = [
        "select '05'::w::text",
        "select (array['05']::w[])::text",
        "select 'w'::regtype::oid::text",
    ];
    // B has called them all before its temporary types exist (what it remembers of them
    // must be forgotten).
    assert_eq!(call(&mut b, check, "n int").unwrap().0, ["5"]);
    for query in queries {
        assert_eq!(
            call(&mut b, query, "v text").unwrap().0,
            plain(&mut a, query).unwrap(),
            "{query}"
        );
    }
    b.batch_execute(
        "CREATE DOMAIN pg_temp.d AS int CHECK (VALUE < 0); CREATE DOMAIN pg_temp.w AS text;",
    )
    .unwrap();

    // Every difference is collected, so that a failure names all the cases that fail.
    let mut wrong = Vec::new();
    let mut expect = |what: String,
                      got: Result<(Vec<String>, bool), String>,
                      want: Result<Vec<String>, String>| {
        if got.clone().map(|(v, _)| v) != want {
            wrong.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };

    // A fills; B must not be served A's entry.
    assert_eq!(plain(&mut b, check), Err("23514".to_string()), "B's d has a check");
    expect("A".into(), call(&mut a, check, "n int"), Ok(vec!["5".into()]));
    assert_eq!(call(&mut a, check, "n int"), Ok((vec!["5".to_string()], true)), "cacheable in A");
    expect("B after A".into(), call(&mut b, check, "n int"), Err("23514".into()));

    // B calls first (it must not store), then A, then B again: each sees its own type. A
    // domain cast, an array of the domain, and a regtype literal naming it.
    let bypassed = stats(&mut b).reason("temporary_table");
    for query in queries {
        let (in_a, in_b) = (plain(&mut a, query), plain(&mut b, query));
        assert_ne!(in_a, in_b, "{query}");
        expect(format!("{query} in B"), call(&mut b, query, "v text"), in_b.clone());
        expect(format!("{query} in A, after B"), call(&mut a, query, "v text"), in_a.clone());
        assert_eq!(
            call(&mut a, query, "v text").map(|(_, hit)| hit),
            Ok(true),
            "{query} cacheable in A"
        );
        expect(format!("{query} in B, after A"), call(&mut b, query, "v text"), in_b);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(stats(&mut b).reason("temporary_table"), bypassed + 2 * queries.len() as i64);
}

// ---- finding 5: a nested hit during a fill ---------------------------------------------------

#[test]
fn a_fill_that_is_served_a_nested_entry_depends_on_what_that_entry_read() {
    let (_cluster, mut c) = PgCluster::with_extension(
        "CREATE TABLE t(v int); INSERT INTO t VALUES (1);
         CREATE FUNCTION inner_count() RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$
         DECLARE n bigint; BEGIN
           SELECT x.n INTO n FROM pitstop.cached('select count(*) from t') x(n bigint); RETURN n;
         END $$;",
    );
    let (inner, outer) = ("select count(*) from t", "select inner_count() + 0 AS n");
    assert_eq!(
        call(&mut c, inner, "n bigint"),
        Ok((vec!["1".to_string()], false)),
        "fills the inner entry"
    );
    // The outer fill is served the inner entry (a nested hit) and stores its own entry.
    let hits = stats(&mut c).hits;
    assert_eq!(call(&mut c, outer, "n bigint").unwrap().0, ["1"]);
    assert_eq!(stats(&mut c).hits, hits + 1, "the nested call was a hit");
    assert_eq!(
        call(&mut c, outer, "n bigint"),
        Ok((vec!["1".to_string()], true)),
        "the outer entry is served"
    );

    c.batch_execute("INSERT INTO t VALUES (2)").unwrap();
    assert_eq!(plain(&mut c, outer), Ok(vec!["2".to_string()]));
    assert_eq!(call(&mut c, outer, "n bigint").unwrap().0, ["2"], "the outer entry depends on t");
    assert_eq!(call(&mut c, outer, "n bigint"), Ok((vec!["2".to_string()], true)));
}
