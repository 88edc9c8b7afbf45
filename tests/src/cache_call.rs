//! Calls of `pitstop.cached` and `pitstop.cached_json` as the cache tests make them: each row
//! as text (the value for one column, the row's text form such as `(1,10)` for several, NULL
//! as `NULL`), and whether a call was served from the cache (`cache_stats()` hits).

use crate::cache_stats::cache_stats as stats;
use crate::PgCluster;
use postgres::error::SqlState;
use postgres::Client;

/// The `params` argument: NULL when there are none.
fn params_of(params: &[&str]) -> Option<Vec<String>> {
    (!params.is_empty()).then(|| params.iter().map(|p| p.to_string()).collect())
}

/// Column names of a column definition list such as `id int, v bigint`.
fn column_names(coldef: &str) -> Vec<&str> {
    coldef.split(',').map(|c| c.split_whitespace().next().unwrap()).collect()
}

/// How each row is shown: the value as text for one column, the row's text form for several.
fn row_text(coldef: &str) -> String {
    match column_names(coldef).as_slice() {
        [one] => format!("t.{one}::text"),
        _ => "t::text".to_string(),
    }
}

fn texts(rows: &[postgres::Row]) -> Vec<String> {
    rows.iter().map(|r| r.get::<_, Option<String>>(0).unwrap_or_else(|| "NULL".into())).collect()
}

/// `pitstop.cached(query, params[, ttl])` with the column list `coldef`; each row as text.
pub fn try_cached_ttl(
    c: &mut Client,
    query: &str,
    params: &[&str],
    ttl: Option<&str>,
    coldef: &str,
) -> Result<Vec<String>, postgres::Error> {
    let rows = match ttl {
        None => {
            let sql =
                format!("SELECT {} FROM pitstop.cached($1, $2) AS t({coldef})", row_text(coldef));
            c.query(&sql, &[&query, &params_of(params)])?
        }
        Some(ttl) => {
            let sql = format!(
                "SELECT {} FROM pitstop.cached($1, $2, $3::text::interval) AS t({coldef})",
                row_text(coldef)
            );
            c.query(&sql, &[&query, &params_of(params), &ttl])?
        }
    };
    Ok(texts(&rows))
}

/// `pitstop.cached(query, params)` with the column list `coldef`; each row as text.
pub fn try_cached(
    c: &mut Client,
    query: &str,
    params: &[&str],
    coldef: &str,
) -> Result<Vec<String>, postgres::Error> {
    try_cached_ttl(c, query, params, None, coldef)
}

/// `try_cached`, panicking with the error.
pub fn cached_with(c: &mut Client, query: &str, params: &[&str], coldef: &str) -> Vec<String> {
    try_cached(c, query, params, coldef)
        .unwrap_or_else(|e| panic!("pitstop.cached({query:?}, {params:?}): {e:?}"))
}

/// `pitstop.cached(query)` with the column list `coldef`; each row as text.
pub fn cached(c: &mut Client, query: &str, coldef: &str) -> Vec<String> {
    cached_with(c, query, &[], coldef)
}

/// `try_cached` and whether the call was served from the cache.
pub fn cached_hit(
    c: &mut Client,
    query: &str,
    params: &[&str],
    coldef: &str,
) -> Result<(Vec<String>, bool), postgres::Error> {
    let hits = stats(c).hits;
    let values = try_cached(c, query, params, coldef)?;
    Ok((values, stats(c).hits > hits))
}

/// `pitstop.cached_json(query, params)`, parsed (JSON null for SQL NULL).
pub fn try_cached_json(
    c: &mut Client,
    query: &str,
    params: &[&str],
) -> Result<serde_json::Value, postgres::Error> {
    let text: Option<String> = c
        .query_one("SELECT pitstop.cached_json($1, $2)::text", &[&query, &params_of(params)])?
        .get(0);
    Ok(text.map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(serde_json::Value::Null))
}

pub fn cached_json(c: &mut Client, query: &str) -> serde_json::Value {
    try_cached_json(c, query, &[])
        .unwrap_or_else(|e| panic!("pitstop.cached_json({query:?}) failed: {e:?}"))
}

/// The plain, uncached answer of `query` (no parameters), in the same text form as `cached`.
pub fn plain(c: &mut Client, query: &str, coldef: &str) -> Vec<String> {
    let sql = format!(
        "SELECT {} FROM ({query}) AS t({})",
        row_text(coldef),
        column_names(coldef).join(", ")
    );
    texts(&c.query(&sql, &[]).unwrap())
}

/// Calls `cached` and asserts both its answer and whether it was served from the cache.
pub fn expect_cached(c: &mut Client, query: &str, coldef: &str, expected: &[&str], hit: bool) {
    expect_cached_with(c, query, &[], coldef, expected, hit)
}

pub fn expect_cached_with(
    c: &mut Client,
    query: &str,
    params: &[&str],
    coldef: &str,
    expected: &[&str],
    hit: bool,
) {
    let before = stats(c);
    let got = cached_with(c, query, params, coldef);
    let after = stats(c);
    assert_eq!(got, expected, "pitstop.cached({query:?}, {params:?})");
    let hits = after.hits - before.hits;
    assert_eq!(
        hits,
        i64::from(hit),
        "{query:?}: expected {}; stats before {before:?} after {after:?}",
        if hit { "a hit" } else { "no hit" }
    );
}

/// Makes sure `query` is cached (whether or not it was) and checks that a call hits.
pub fn ensure_cached(c: &mut Client, query: &str, coldef: &str, expected: &[&str]) {
    assert_eq!(cached(c, query, coldef), expected, "pitstop.cached({query:?})");
    expect_cached(c, query, coldef, expected, true);
}

/// Fills the cache with `query` (a miss) and checks that the next call is a hit.
pub fn warm(c: &mut Client, query: &str, coldef: &str, expected: &[&str]) {
    let before = stats(c);
    expect_cached(c, query, coldef, expected, false);
    let after = stats(c);
    assert_eq!(after.misses - before.misses, 1, "first call must be a miss: {before:?} {after:?}");
    assert_eq!(after.fills - before.fills, 1, "first call must fill: {before:?} {after:?}");
    expect_cached(c, query, coldef, expected, true);
}

/// A cluster with `t(id int PRIMARY KEY, v bigint)` holding `values` (one of them `(1, 10)`)
/// and a session that has cached `select v from t where id = 1`: the cluster, the session, the
/// query and its column definition.
pub fn warmed_t(values: &str) -> (PgCluster, Client, &'static str, &'static str) {
    let (cluster, mut a) = PgCluster::with_extension(&format!(
        "CREATE TABLE t(id int PRIMARY KEY, v bigint); INSERT INTO t VALUES {values};"
    ));
    let (q, col) = ("select v from t where id = 1", "v bigint");
    warm(&mut a, q, col, &["10"]);
    (cluster, a, q, col)
}

/// The SQLSTATE of a server error, else the error's text.
pub fn sqlstate_text(e: &postgres::Error) -> String {
    e.code().map_or_else(|| e.to_string(), |s| s.code().to_string())
}

/// Asserts that `result` failed with SQLSTATE `code`; returns the error.
pub fn expect_error(
    result: Result<impl std::fmt::Debug, postgres::Error>,
    code: &SqlState,
    what: &str,
) -> postgres::Error {
    match result {
        Ok(v) => panic!("{what}: expected error {code:?}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), Some(code), "{what}: wrong SQLSTATE: {e:?}");
            e
        }
    }
}

/// One invalidation path: A caches `query` (a miss, then a hit), B runs `write`
/// (autocommit), and A's next call must return `after` — not the cached `before`.
pub fn invalidation_case(
    cluster: &PgCluster,
    a: &mut Client,
    query: &str,
    coldef: &str,
    before: &[&str],
    write: impl FnOnce(&mut Client),
    after: &[&str],
) {
    ensure_cached(a, query, coldef, before);
    let mut b = cluster.connect();
    let s0 = stats(a);
    write(&mut b);
    assert_eq!(
        plain(a, query, coldef),
        after,
        "the write did not have the effect the test expects"
    );
    let got = cached(a, query, coldef);
    let s1 = stats(a);
    assert_eq!(
        got, after,
        "stale cached result for {query:?} after the write; stats {s0:?} -> {s1:?}"
    );
    assert_eq!(s1.hits, s0.hits, "the call after the write must not be a hit: {s0:?} -> {s1:?}");
    // And the fresh answer is cached again.
    expect_cached(a, query, coldef, after, true);
}

/// `invalidation_case` for each `(write, after)` in turn, `write` being SQL that another
/// session runs: the answer before a write is the one after the previous (`first` at the start).
pub fn invalidation_steps(
    cluster: &PgCluster,
    a: &mut Client,
    query: &str,
    coldef: &str,
    first: &[&str],
    steps: &[(&str, &[&str])],
) {
    let mut before = first;
    for (write, after) in steps {
        let write = |b: &mut Client| b.batch_execute(write).unwrap();
        invalidation_case(cluster, a, query, coldef, before, write, after);
        before = after;
    }
}
