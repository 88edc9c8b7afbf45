//! `pitstop.index_health()`: unused, invalid, duplicate and prefix-redundant indexes, foreign
//! keys without an index, and btree bloat estimated with the same size model as hypothetical
//! indexes (no index is read). Every row carries the DDL that fixes it.

use crate::advisor::size::{self, AccessMethod, IndexShape};
use crate::error::{required, OrReport, PitstopError};
use crate::health::bloat::Bloat;
use pgrx::prelude::*;

/// Where an index lives: bare names, and `quote_ident`-qualified ones for commands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexLocation {
    pub schema: String,
    pub table: String,
    pub index: String,
    pub qualified_table: String,
    pub qualified_index: String,
}

/// One btree index as the bloat estimate sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct BtreeFacts {
    /// As `regclass::text` prints them (qualified only when not on the search_path).
    pub index_name: String,
    pub table_name: String,
    pub location: IndexLocation,
    pub bytes: f64,
    pub tuples: f64,
    pub unique: bool,
    pub key_columns: usize,
    /// Per column (keys, then INCLUDE): average width; None when unknown.
    pub widths: Vec<Option<f64>>,
    /// Per key column: pg_stats n_distinct (negative = fraction of rows).
    pub ndistinct: Vec<Option<f64>>,
}

/// Bytes a freshly built copy of the index would take, when the statistics allow a guess.
pub fn expected_bytes(facts: &BtreeFacts) -> Option<f64> {
    let widths: Option<Vec<f64>> = facts.widths.iter().copied().collect();
    let distinct = size::distinct_keys(&facts.ndistinct[..facts.key_columns.min(facts.ndistinct.len())], facts.tuples);
    let shape = IndexShape {
        am: AccessMethod::Btree,
        tuples: facts.tuples,
        column_widths: widths?,
        distinct_keys: distinct,
        table_pages: 0.0,
        unique: facts.unique,
    };
    Some(size::estimate(&shape).bytes())
}

/// A bloat row when the index is at least `min_pct` % and `min_bytes` larger than a rebuild.
pub fn bloat_finding(facts: &BtreeFacts, min_pct: f64, min_bytes: f64) -> Option<HealthRow> {
    let expected = expected_bytes(facts)?;
    let bloat = Bloat { bytes: facts.bytes, expected };
    let (excess, pct) = (bloat.excess(), bloat.pct());
    (excess > 0.0 && excess >= min_bytes && pct >= min_pct).then(|| HealthRow {
        problem: "bloated".into(),
        table_name: facts.table_name.clone(),
        index_name: Some(facts.index_name.clone()),
        index_bytes: Some(facts.bytes as i64),
        detail: format!(
            "about {:.0}% ({} MB) of its {} MB is free space; a rebuild from {} rows would take ~{} MB",
            pct,
            (excess / 1_048_576.0).round(),
            (facts.bytes / 1_048_576.0).round(),
            facts.tuples.round(),
            (expected / 1_048_576.0).ceil()
        ),
        fix: format!("REINDEX INDEX CONCURRENTLY {};", facts.index_name),
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct HealthRow {
    pub problem: String,
    pub table_name: String,
    pub index_name: Option<String>,
    pub index_bytes: Option<i64>,
    pub detail: String,
    pub fix: String,
}

fn catalog_findings() -> Vec<HealthRow> {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/index_health.sql"), None, &[])
            .unwrap_or_else(|e| pgrx::error!("index_health: {e}"));
        table
            .map(|row| HealthRow {
                problem: row.get(1).ok().flatten().unwrap_or_default(),
                table_name: row.get(2).ok().flatten().unwrap_or_default(),
                index_name: row.get(3).ok().flatten(),
                index_bytes: row.get(4).ok().flatten(),
                detail: row.get(5).ok().flatten().unwrap_or_default(),
                fix: row.get(6).ok().flatten().unwrap_or_default(),
            })
            .collect()
    })
}

/// Every valid plain-column btree index of user tables, with what the size model needs.
pub fn btree_facts() -> Vec<BtreeFacts> {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/index_bloat_inputs.sql"), None, &[])
            .unwrap_or_else(|e| pgrx::error!("index_health: {e}"));
        let mut out: Vec<BtreeFacts> = Vec::new();
        for row in table {
            let name: String = row.get(1).ok().flatten().unwrap_or_default();
            if out.last().map(|f| &f.index_name) != Some(&name) {
                out.push(BtreeFacts {
                    index_name: name,
                    table_name: row.get(2).ok().flatten().unwrap_or_default(),
                    bytes: row.get(3).ok().flatten().unwrap_or(0.0),
                    tuples: row.get(4).ok().flatten().unwrap_or(0.0),
                    unique: row.get(5).ok().flatten().unwrap_or(false),
                    key_columns: row.get::<i32>(6).ok().flatten().unwrap_or(0) as usize,
                    location: IndexLocation {
                        schema: row.get(10).ok().flatten().unwrap_or_default(),
                        table: row.get(11).ok().flatten().unwrap_or_default(),
                        index: row.get(12).ok().flatten().unwrap_or_default(),
                        qualified_table: row.get(13).ok().flatten().unwrap_or_default(),
                        qualified_index: row.get(14).ok().flatten().unwrap_or_default(),
                    },
                    widths: Vec::new(),
                    ndistinct: Vec::new(),
                });
            }
            let facts = out.last_mut().expect("pushed above");
            facts.widths.push(row.get(8).ok().flatten());
            if facts.ndistinct.len() < facts.key_columns {
                facts.ndistinct.push(row.get(9).ok().flatten());
            }
        }
        out
    })
}

/// Index problems with the DDL that fixes each. Bloat is reported when an index is at least
/// `min_bloat_pct` % and `min_bloat_bytes` bytes larger than a rebuild would be.
#[pg_extern(stable, parallel_safe)]
#[allow(clippy::type_complexity)]
fn index_health(
    min_bloat_pct: default!(Option<f64>, 40.0),
    min_bloat_bytes: default!(Option<i64>, 1048576),
) -> TableIterator<
    'static,
    (
        name!(problem, String),
        name!(table_name, String),
        name!(index_name, Option<String>),
        name!(index_bytes, Option<i64>),
        name!(detail, String),
        name!(fix, String),
    ),
> {
    let min_pct = required(min_bloat_pct, "min_bloat_pct").or_report();
    let min_bytes = required(min_bloat_bytes, "min_bloat_bytes").or_report();
    if min_pct < 0.0 {
        PitstopError::Negative { name: "min_bloat_pct", value: min_pct.to_string() }.report();
    }
    if min_bytes < 0 {
        PitstopError::Negative { name: "min_bloat_bytes", value: min_bytes.to_string() }.report();
    }
    let mut rows = catalog_findings();
    rows.extend(btree_facts().iter().filter_map(|f| bloat_finding(f, min_pct, min_bytes as f64)));
    TableIterator::new(
        rows.into_iter().map(|r| (r.problem, r.table_name, r.index_name, r.index_bytes, r.detail, r.fix)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(bytes: f64) -> BtreeFacts {
        BtreeFacts {
            index_name: "orders_id_idx".into(),
            table_name: "orders".into(),
            location: IndexLocation::default(),
            bytes,
            tuples: 1_000_000.0,
            unique: true,
            key_columns: 1,
            widths: vec![Some(4.0)],
            ndistinct: vec![Some(-1.0)],
        }
    }

    #[test]
    fn a_freshly_built_index_is_not_bloated() {
        // 2745 pages is what PostgreSQL 15 builds for 1M int4 keys.
        assert_eq!(bloat_finding(&facts(2745.0 * 8192.0), 40.0, 1_048_576.0), None);
    }

    #[test]
    fn an_index_three_times_its_rebuilt_size_is_bloated() {
        let row = bloat_finding(&facts(3.0 * 2745.0 * 8192.0), 40.0, 1_048_576.0).unwrap();
        assert_eq!(row.problem, "bloated");
        assert_eq!(row.fix, "REINDEX INDEX CONCURRENTLY orders_id_idx;");
        assert!(row.detail.starts_with("about 67%"), "{}", row.detail);
    }

    #[test]
    fn unknown_widths_give_no_estimate() {
        let mut f = facts(1e9);
        f.widths = vec![None];
        assert_eq!(expected_bytes(&f), None);
    }

    #[test]
    fn small_excess_is_ignored() {
        let mut f = facts(3.0 * 16384.0);
        f.tuples = 10.0;
        assert_eq!(bloat_finding(&f, 40.0, 1_048_576.0), None);
    }
}
