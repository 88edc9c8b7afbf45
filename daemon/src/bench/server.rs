//! The server's view of a run: pg_stat_statements deltas for the scripts' statements and,
//! when the extension has it, pitstop.query_latency's percentiles for the same queryids.

use std::collections::HashMap;
use tokio_postgres::Client;

/// pg_stat_statements of this database and role: queryid → (calls, total ms, query).
pub type Snapshot = HashMap<i64, (i64, f64, String)>;

pub async fn snapshot(client: &Client) -> Result<Option<Snapshot>, String> {
    // Its schema from pg_extension, as the snapshot job finds it: a name resolved on the path
    // could find a relation of that name that someone else put ahead of it.
    let Some(schema) = crate::maintenance::snapshot::locate(client)
        .await
        .map_err(|e| crate::db::describe_pg(&e))?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            &format!(
                "SELECT queryid, calls, total_exec_time, query FROM {schema}.pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
                   AND userid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER)
                   AND queryid IS NOT NULL"
            ),
            &[],
        )
        .await
        .map_err(|e| format!("pg_stat_statements: {}", crate::db::describe_pg(&e)))?;
    Ok(Some(
        rows.iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    (r.get::<_, i64>(1), r.get::<_, f64>(2), r.get::<_, String>(3)),
                )
            })
            .collect(),
    ))
}

/// pitstop.query_latency's percentiles (ms) by queryid for this database and role, None when
/// the view is not there.
pub async fn latency(client: &Client) -> Option<HashMap<i64, [Option<f64>; 3]>> {
    let present = client
        .query_one("SELECT pg_catalog.to_regclass('pitstop.query_latency') IS NOT NULL", &[])
        .await
        .ok()?
        .get::<_, bool>(0);
    if !present {
        return None;
    }
    let rows = client
        .query(
            "SELECT queryid, p50::float8, p95::float8, p99::float8 FROM pitstop.query_latency
             WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
               AND userid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER)",
            &[],
        )
        .await
        .ok()?;
    Some(rows.iter().map(|r| (r.get::<_, i64>(0), [r.get(1), r.get(2), r.get(3)])).collect())
}

/// A statement as pg_stat_statements and a script both show it, with constants, `$n` and
/// `:var` alike reduced to `?`, so that the two can be matched.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
            }
            '$' | ':'
                if chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                    && !out.ends_with(':') =>
            {
                while chars.peek().is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_') {
                    chars.next();
                }
                out.push('?');
            }
            d if d.is_ascii_digit()
                && !out.chars().last().is_some_and(|p| p.is_ascii_alphanumeric() || p == '_') =>
            {
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
                out.push('?');
            }
            w if w.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            other => out.extend(other.to_lowercase()),
        }
    }
    out.trim_end().trim_end_matches(';').trim_end().to_string()
}

/// What the server saw of one statement between two snapshots.
pub struct Seen {
    pub calls: i64,
    pub mean_ms: Option<f64>,
    pub queryid: Option<i64>,
}

pub fn delta(before: &Snapshot, after: &Snapshot, statement: &str) -> Seen {
    let wanted = normalize(statement);
    let (mut calls, mut total, mut best) = (0i64, 0.0, None::<(i64, i64)>);
    for (queryid, (c, t, query)) in after {
        if normalize(query) != wanted {
            continue;
        }
        let (c0, t0) = before.get(queryid).map_or((0, 0.0), |(c0, t0, _)| (*c0, *t0));
        let d = c - c0;
        if d > 0 {
            calls += d;
            total += t - t0;
            if best.is_none_or(|(_, bc)| d > bc) {
                best = Some((*queryid, d));
            }
        }
    }
    Seen {
        calls,
        mean_ms: (calls > 0).then(|| total / calls as f64),
        queryid: best.map(|(q, _)| q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripts_statement_matches_pg_stat_statements_text() {
        let ours = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2";
        let theirs = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2";
        assert_eq!(normalize(ours), normalize(theirs));
        assert_eq!(
            normalize("SELECT id FROM t1 WHERE x = 'a''b' AND y = 42 LIMIT 20;"),
            "select id from t1 where x = ? and y = ? limit ?"
        );
        assert_eq!(normalize("select  pg_sleep(0.01)"), normalize("SELECT pg_sleep($1)"));
        assert_eq!(
            normalize("SELECT x::int4 FROM t WHERE id = :id"),
            "select x::int4 from t where id = ?"
        );
        assert_ne!(normalize("SELECT a FROM t"), normalize("SELECT b FROM t"));
    }

    #[test]
    fn deltas_count_only_the_run() {
        let before: Snapshot = HashMap::from([(1, (10, 5.0, "SELECT $1".to_string()))]);
        let after: Snapshot = HashMap::from([
            (1, (14, 13.0, "SELECT $1".to_string())),
            (2, (3, 3.0, "SELECT now()".to_string())),
        ]);
        let seen = delta(&before, &after, "SELECT 1");
        assert_eq!((seen.calls, seen.mean_ms, seen.queryid), (4, Some(2.0), Some(1)));
        assert_eq!(delta(&before, &after, "SELECT 2 + 2").calls, 0);
    }
}
