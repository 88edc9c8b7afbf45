//! `pitstop.index_health()`: unused, invalid, duplicate and prefix-redundant indexes, foreign
//! keys without an index, and btree bloat estimated with the same size model as hypothetical
//! indexes (no index is read). Every row carries the DDL that fixes it. pitstop's own tables
//! are left out unless `include_self`; with `with_advice`, a foreign key that an index the
//! advisor suggests would serve points at that suggestion instead of asking for its own index.

use crate::advisor::size::{self, AccessMethod, IndexShape};
use crate::advisor::suggest::{default_suggestions, SuggestedKeys};
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
    let distinct = size::distinct_keys(
        &facts.ndistinct[..facts.key_columns.min(facts.ndistinct.len())],
        facts.tuples,
    );
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
        foreign_key: None,
    })
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthRow {
    pub problem: String,
    pub table_name: String,
    pub index_name: Option<String>,
    pub index_bytes: Option<i64>,
    pub detail: String,
    pub fix: String,
    /// For a foreign key without an index: its table and columns (attnums).
    pub foreign_key: Option<(u32, Vec<i16>)>,
}

const OWN_RELATION: &str = include_str!("../../../sql/queries/own_relation.sql");

/// `sql` with each `{own_relation:EXPR}` replaced by the predicate of own_relation.sql over the
/// relation oid EXPR. One left unclosed stays as written, and the statement fails to parse.
pub fn with_own_relation(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("{own_relation:") {
        let after = &rest[start + "{own_relation:".len()..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&OWN_RELATION.replace("{rel}", &after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn catalog_findings(include_self: bool) -> Vec<HealthRow> {
    Spi::connect(|client| {
        let sql = with_own_relation(include_str!("../../../sql/queries/index_health.sql"));
        let table = client
            .select(&sql, None, &[include_self.into()])
            .unwrap_or_else(|e| pgrx::error!("index_health: {e}"));
        table
            .map(|row| HealthRow {
                problem: row.get(1).ok().flatten().unwrap_or_default(),
                table_name: row.get(2).ok().flatten().unwrap_or_default(),
                index_name: row.get(3).ok().flatten(),
                index_bytes: row.get(4).ok().flatten(),
                detail: row.get(5).ok().flatten().unwrap_or_default(),
                fix: row.get(6).ok().flatten().unwrap_or_default(),
                foreign_key: row
                    .get::<pg_sys::Oid>(7)
                    .ok()
                    .flatten()
                    .zip(row.get::<Vec<i16>>(8).ok().flatten())
                    .map(|(relid, keys)| (relid.to_u32(), keys)),
            })
            .collect()
    })
}

/// The first suggestion (in rank order) that serves a foreign key of `relid` on `fk_columns`:
/// not partial, and its leading key columns are exactly the foreign key's, in any order (the
/// rule index_health.sql applies to existing indexes).
pub fn covering_suggestion<'a>(
    relid: u32,
    fk_columns: &[i16],
    suggestions: &'a [SuggestedKeys],
) -> Option<&'a SuggestedKeys> {
    let mut wanted = fk_columns.to_vec();
    wanted.sort_unstable();
    suggestions.iter().find(|s| {
        let mut leading: Vec<i16> = s.keys.iter().take(wanted.len()).copied().collect();
        leading.sort_unstable();
        s.relid == relid && !s.partial && leading == wanted
    })
}

/// Points a missing-foreign-key-index row at the suggestion that serves it.
pub fn point_at_suggestion(row: &mut HealthRow, suggestion: &SuggestedKeys) {
    row.detail.push_str(&format!(
        "; index #{} of suggest_indexes starts with these columns and serves the foreign key too: build that one, not a second",
        suggestion.rank
    ));
    row.fix = format!("-- served by suggest_indexes #{}: {};", suggestion.rank, suggestion.ddl);
}

/// Every valid plain-column btree index of user tables (with pitstop's own unless
/// `include_self` is false), with what the size model needs.
pub fn btree_facts(include_self: bool) -> Vec<BtreeFacts> {
    Spi::connect(|client| {
        let sql = with_own_relation(include_str!("../../../sql/queries/index_bloat_inputs.sql"));
        let table = client
            .select(&sql, None, &[include_self.into()])
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
/// `min_bloat_pct` % and `min_bloat_bytes` bytes larger than a rebuild would be. pitstop's own
/// tables are left out unless `include_self`. `with_advice` runs `suggest_indexes` (its
/// defaults) when a foreign key lacks an index, to point it at a suggestion that serves it.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn index_health(
    min_bloat_pct: default!(Option<f64>, 40.0),
    min_bloat_bytes: default!(Option<i64>, 1048576),
    include_self: default!(Option<bool>, false),
    with_advice: default!(Option<bool>, false),
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
    let include_self = required(include_self, "include_self").or_report();
    let with_advice = required(with_advice, "with_advice").or_report();
    let mut rows = catalog_findings(include_self);
    if with_advice && rows.iter().any(|r| r.foreign_key.is_some()) {
        let suggestions = default_suggestions(include_self).or_report();
        for row in &mut rows {
            let found = row
                .foreign_key
                .as_ref()
                .and_then(|(relid, keys)| covering_suggestion(*relid, keys, &suggestions));
            if let Some(suggestion) = found {
                point_at_suggestion(row, suggestion);
            }
        }
    }
    rows.extend(
        btree_facts(include_self)
            .iter()
            .filter_map(|f| bloat_finding(f, min_pct, min_bytes as f64)),
    );
    TableIterator::new(
        rows.into_iter()
            .map(|r| (r.problem, r.table_name, r.index_name, r.index_bytes, r.detail, r.fix)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_relation_is_filled_in_for_each_expression_and_an_unclosed_one_is_left_alone() {
        let sql = with_own_relation("a {own_relation:t.oid} b {own_relation:f.conrelid} c");
        assert!(!sql.contains("{own_relation:") && !sql.contains("{rel}"), "{sql}");
        assert!(
            sql.contains("t.oid")
                && sql.contains("f.conrelid")
                && sql.starts_with("a ")
                && sql.ends_with(" c"),
            "{sql}"
        );
        assert_eq!(with_own_relation("x {own_relation:t.oid"), "x {own_relation:t.oid");
    }

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
