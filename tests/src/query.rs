//! Query results as plain values: one `bigint`, the first column (or the first two) of every row.

use postgres::types::{FromSqlOwned, ToSql};
use postgres::Client;

/// The first column of every row `sql` returns (into a `Vec`, a set, …).
pub fn first_column<T: FromSqlOwned, C: FromIterator<T>>(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> C {
    c.query(sql, params).unwrap().iter().map(|r| r.get(0)).collect()
}

/// The first two columns of every row `sql` returns.
pub fn first_two_columns<A: FromSqlOwned, B: FromSqlOwned>(
    c: &mut Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<(A, B)> {
    c.query(sql, params).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The one `bigint` value of `sql`.
pub fn scalar_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}
