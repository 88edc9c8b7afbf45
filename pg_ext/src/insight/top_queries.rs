//! `pitstop.top_queries(sort, lim, include_self)`: pg_stat_statements ranked, never reset;
//! pitstop's own statements left out unless asked.

use crate::error::{required, OrReport, PitstopError};
use pgrx::prelude::*;

/// The sort keys users may pass, each with the ORDER BY it stands for.
const SORT_KEYS: &[(&str, &str)] = &[
    ("total_time", "total_ms DESC"),
    ("mean_time", "mean_ms DESC"),
    ("max_time", "max_ms DESC"),
    ("stddev_time", "stddev_ms DESC"),
    ("calls", "calls DESC"),
    ("rows", "rows DESC"),
    ("temp_blks", "temp_blks DESC"),
    ("hit_ratio", "shared_hit_pct ASC NULLS LAST"),
];

/// The ORDER BY clause for a sort key, or an error listing the valid keys.
pub fn order_by(sort: &str) -> Result<String, PitstopError> {
    let key = sort.trim().to_ascii_lowercase();
    SORT_KEYS
        .iter()
        .find(|(name, _)| *name == key)
        // queryid breaks ties so the order is stable between calls.
        .map(|(_, expr)| format!("{expr}, s.queryid"))
        .ok_or_else(|| PitstopError::UnknownSortKey {
            given: sort.to_string(),
            valid: SORT_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
        })
}

pub fn validate_limit(lim: i32) -> Result<i64, PitstopError> {
    if lim < 0 {
        return Err(PitstopError::Negative { name: "lim", value: lim.to_string() });
    }
    Ok(i64::from(lim))
}

/// The predicate over a pg_stat_statements row `s` that is true for pitstop's own statements
/// and the statements pitstop runs inside functions (see the file for the rule).
pub const OWN_STATEMENT: &str = include_str!("../../../sql/queries/own_statement.sql");

fn top_queries_sql(pgss: &str, order_by: &str) -> String {
    include_str!("../../../sql/queries/top_queries.sql")
        .replace("{pgss}", pgss)
        .replace("{order_by}", order_by)
        .replace("{own_statement}", OWN_STATEMENT)
}

type TopQueryRow = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<String>,
);

#[pg_extern(stable, parallel_safe)]
#[allow(clippy::type_complexity)]
fn top_queries(
    sort: default!(Option<&str>, "'total_time'"),
    lim: default!(Option<i32>, 20),
    include_self: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(queryid, Option<i64>),
        name!(username, Option<String>),
        name!(calls, Option<i64>),
        name!(total_ms, Option<f64>),
        name!(mean_ms, Option<f64>),
        name!(stddev_ms, Option<f64>),
        name!(max_ms, Option<f64>),
        name!(rows, Option<i64>),
        name!(shared_hit_pct, Option<f64>),
        name!(temp_blks, Option<i64>),
        name!(pct_total_time, Option<f64>),
        name!(query, Option<String>),
    ),
> {
    let order = required(sort, "sort").and_then(order_by).or_report();
    let limit = required(lim, "lim").and_then(validate_limit).or_report();
    let include_self = required(include_self, "include_self").or_report();
    let rows: Vec<TopQueryRow> = Spi::connect(|client| {
        let pgss =
            crate::pg::spi::extension_object(client, "pg_stat_statements", "pg_stat_statements")
                .ok_or(PitstopError::MissingPgStatStatements)
                .or_report();
        let table = client
            .select(&top_queries_sql(&pgss, &order), None, &[limit.into(), include_self.into()])
            .unwrap_or_else(|e| pgrx::error!("top_queries: {e}"));
        table
            .map(|row| {
                (
                    row.get(1).ok().flatten(),
                    row.get(2).ok().flatten(),
                    row.get(3).ok().flatten(),
                    row.get(4).ok().flatten(),
                    row.get(5).ok().flatten(),
                    row.get(6).ok().flatten(),
                    row.get(7).ok().flatten(),
                    row.get(8).ok().flatten(),
                    row.get(9).ok().flatten(),
                    row.get(10).ok().flatten(),
                    row.get(11).ok().flatten(),
                    row.get(12).ok().flatten(),
                )
            })
            .collect()
    });
    TableIterator::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_maps_to_an_order() {
        for (key, _) in SORT_KEYS {
            assert!(order_by(key).is_ok(), "{key}");
        }
        assert_eq!(order_by(" Total_Time ").unwrap(), "total_ms DESC, s.queryid");
    }

    #[test]
    fn unknown_key_lists_the_valid_ones() {
        let err = order_by("total_time; drop table x").unwrap_err();
        match err {
            PitstopError::UnknownSortKey { valid, .. } => {
                assert!(valid.contains("total_time") && valid.contains("hit_ratio"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn negative_limit_is_rejected() {
        assert!(validate_limit(-1).is_err());
        assert_eq!(validate_limit(0).unwrap(), 0);
    }

    #[test]
    fn sql_has_no_placeholders_left() {
        let sql = top_queries_sql("public.pg_stat_statements", "calls DESC");
        assert!(!sql.contains('{'));
        assert!(sql.contains("FROM public.pg_stat_statements AS s"));
    }
}
