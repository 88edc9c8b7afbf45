//! `pitstop.top_queries(sort, lim, include_self)`: the sort keys, the limit and the query text
//! (`sql/queries/top_queries.sql`); the extension's `insight/top_queries.rs` runs it.

use crate::query::{fill, OWN_STATEMENT};

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

/// A sort key `order_by` does not know, with the valid ones (the extension raises it with
/// SQLSTATE 22023).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSortKey {
    pub given: String,
    pub valid: String,
}

/// The ORDER BY clause for a sort key, or an error listing the valid keys.
pub fn order_by(sort: &str) -> Result<String, UnknownSortKey> {
    let key = sort.trim().to_ascii_lowercase();
    SORT_KEYS
        .iter()
        .find(|(name, _)| *name == key)
        // queryid breaks ties so the order is stable between calls.
        .map(|(_, expr)| format!("{expr}, s.queryid"))
        .ok_or_else(|| UnknownSortKey {
            given: sort.to_string(),
            valid: SORT_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
        })
}

/// The row limit, None when negative.
pub fn validate_limit(lim: i32) -> Option<i64> {
    (lim >= 0).then_some(i64::from(lim))
}

/// top_queries.sql over the pg_stat_statements view `pgss` (quoted, schema-qualified), ordered
/// by `order_by` (from `order_by`, never the caller's text).
pub fn top_queries_sql(pgss: &str, order_by: &str) -> String {
    let sql = include_str!("../../../sql/queries/top_queries.sql");
    let sql = fill(sql, "pgss", pgss);
    let sql = fill(&sql, "order_by", order_by);
    fill(&sql, "own_statement", OWN_STATEMENT)
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
        assert_eq!(err.given, "total_time; drop table x");
        assert!(err.valid.contains("total_time") && err.valid.contains("hit_ratio"));
    }

    #[test]
    fn negative_limit_is_rejected() {
        assert_eq!(validate_limit(-1), None);
        assert_eq!(validate_limit(0), Some(0));
    }

    #[test]
    fn sql_has_no_placeholders_left() {
        let sql = top_queries_sql("public.pg_stat_statements", "calls DESC");
        assert!(!sql.contains('{'));
        assert!(sql.contains("FROM public.pg_stat_statements AS s"));
    }
}
