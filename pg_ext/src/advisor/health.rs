//! `pitstop.index_health()`: unused, invalid, duplicate and prefix-redundant indexes, foreign
//! keys without an index, and btree bloat estimated with the same size model as hypothetical
//! indexes (no index is read). Every row carries the DDL that fixes it. pitstop's own tables
//! are left out unless `include_self`; with `with_advice`, a foreign key that an index the
//! advisor suggests would serve points at that suggestion instead of asking for its own index.

use crate::advisor::suggest::{default_suggestions, SuggestedKeys};
use crate::error::{required, OrReport, PitstopError};
use crate::health::read::{btree_facts, select_own};
use crate::pg::spi::column;
use pgrx::prelude::*;
use pitstop_core::health::btree::{self, BtreeFacts};

/// A bloat row when the index is at least `min_pct` % and `min_bytes` larger than a rebuild
/// (the estimate and its REINDEX text are health's: `pitstop_core::health::btree`).
fn bloat_finding(facts: &BtreeFacts, min_pct: f64, min_bytes: f64) -> Option<HealthRow> {
    btree::bloat_finding(facts, min_pct, min_bytes).map(|found| HealthRow {
        problem: "bloated".into(),
        table_name: facts.table_name.clone(),
        index_name: Some(facts.index_name.clone()),
        index_bytes: Some(facts.bytes as i64),
        detail: found.detail,
        fix: found.fix,
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

fn catalog_findings(include_self: bool) -> Vec<HealthRow> {
    let sql = include_str!("../../../sql/queries/index_health.sql");
    select_own(sql, include_self, "index_health", |table| {
        table
            .map(|row| HealthRow {
                problem: column(&row, "problem").unwrap_or_default(),
                table_name: column(&row, "table_name").unwrap_or_default(),
                index_name: column(&row, "index_name"),
                index_bytes: column(&row, "bytes"),
                detail: column(&row, "detail").unwrap_or_default(),
                fix: column(&row, "fix").unwrap_or_default(),
                foreign_key: column::<pg_sys::Oid>(&row, "fk_table")
                    .zip(column::<Vec<i16>>(&row, "fk_columns"))
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
        s.relid == relid && s.btree && !s.partial && leading == wanted
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

    fn suggestion(rank: usize, keys: &[i16], btree: bool, partial: bool) -> SuggestedKeys {
        SuggestedKeys { rank, relid: 7, keys: keys.to_vec(), partial, btree, ddl: String::new() }
    }

    #[test]
    fn a_foreign_key_is_served_by_a_whole_btree_led_by_its_columns() {
        let suggestions = [
            suggestion(1, &[2], false, false),   // BRIN on the column
            suggestion(2, &[2, 3], true, true),  // partial btree
            suggestion(3, &[3, 2], true, false), // btree led by the columns
        ];
        let found = covering_suggestion(7, &[2], &suggestions).map(|s| s.rank);
        assert_eq!(found, None, "a one-column key is not led by [3, 2]");
        assert_eq!(covering_suggestion(7, &[2, 3], &suggestions).map(|s| s.rank), Some(3));
        assert_eq!(covering_suggestion(8, &[2, 3], &suggestions).map(|s| s.rank), None);
        let brin_only = [suggestion(1, &[2], false, false)];
        assert_eq!(covering_suggestion(7, &[2], &brin_only).map(|s| s.rank), None);
        let btree = [suggestion(4, &[2], true, false)];
        assert_eq!(covering_suggestion(7, &[2], &btree).map(|s| s.rank), Some(4));
    }
}
