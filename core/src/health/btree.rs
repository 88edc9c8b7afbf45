//! Btree index bloat, one model for `table_bloat`, `index_health` and `maintenance_plan`: the
//! bytes a rebuild would take (the advisor's size model over statistics, or pgstatindex's exact
//! page counts), and the one REINDEX text they all print.

use crate::advisor::size::{self, AccessMethod, IndexShape, BLOCK_SIZE};
use crate::health::bloat::Bloat;
use crate::ident::quote_ident;

/// Default fillfactor of btree leaf pages (BTREE_DEFAULT_FILLFACTOR).
pub const BTREE_DEFAULT_FILLFACTOR: f64 = 90.0;

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

/// pgstatindex's counts of a btree index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BtreeScan {
    pub index_size: f64,
    pub internal_pages: f64,
    pub leaf_pages: f64,
    /// Percent; NaN when the index has no leaf pages.
    pub avg_leaf_density: f64,
}

/// Bytes of the index with its leaf pages packed to `fillfactor` (what REINDEX builds): meta
/// page + inner pages + leaves holding today's leaf data.
pub fn btree_exact_expected_bytes(scan: &BtreeScan, fillfactor: f64) -> f64 {
    let density =
        if scan.avg_leaf_density.is_finite() { scan.avg_leaf_density } else { fillfactor };
    let leaves = (scan.leaf_pages * density / fillfactor.clamp(10.0, 100.0)).ceil().max(1.0);
    ((1.0 + scan.internal_pages + leaves) * BLOCK_SIZE).min(scan.index_size.max(BLOCK_SIZE))
}

/// The REINDEX that rebuilds a bloated index without blocking reads or writes: schema-qualified,
/// each name quoted as PostgreSQL's quote_ident does. Every report that suggests a rebuild
/// prints this text; the daemon's maintenance runs it as the plan gives it.
pub fn reindex_command(schema: &str, index: &str) -> String {
    format!("REINDEX INDEX CONCURRENTLY {}.{}", quote_ident(schema), quote_ident(index))
}

/// What to run about a bloated btree index (`table_bloat`'s fix): the REINDEX and its cost.
pub fn index_fix(schema: &str, index: &str, bloat: &Bloat) -> Option<String> {
    bloat.worth_fixing().then(|| {
        format!(
            "{} (no blocking of reads or writes; needs room for a second copy \
             while it runs and cannot run inside a transaction block)",
            reindex_command(schema, index)
        )
    })
}

/// `index_health`'s bloat finding: what it says and the statement that fixes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub detail: String,
    pub fix: String,
}

/// A finding when the index is at least `min_pct` % and `min_bytes` larger than a rebuild.
pub fn bloat_finding(facts: &BtreeFacts, min_pct: f64, min_bytes: f64) -> Option<Finding> {
    let expected = expected_bytes(facts)?;
    let bloat = Bloat { bytes: facts.bytes, expected };
    let (excess, pct) = (bloat.excess(), bloat.pct());
    (excess > 0.0 && excess >= min_bytes && pct >= min_pct).then(|| Finding {
        detail: format!(
            "about {:.0}% ({} MB) of its {} MB is free space; a rebuild from {} rows would take ~{} MB",
            pct,
            (excess / 1_048_576.0).round(),
            (facts.bytes / 1_048_576.0).round(),
            facts.tuples.round(),
            (expected / 1_048_576.0).ceil()
        ),
        fix: format!("{};", reindex_command(&facts.location.schema, &facts.location.index)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(bytes: f64) -> BtreeFacts {
        BtreeFacts {
            index_name: "orders_id_idx".into(),
            table_name: "orders".into(),
            location: IndexLocation {
                schema: "public".into(),
                table: "orders".into(),
                index: "orders_id_idx".into(),
                qualified_table: "public.orders".into(),
                qualified_index: "public.orders_id_idx".into(),
            },
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
        let found = bloat_finding(&facts(3.0 * 2745.0 * 8192.0), 40.0, 1_048_576.0).unwrap();
        assert_eq!(found.fix, "REINDEX INDEX CONCURRENTLY public.orders_id_idx;");
        assert!(found.detail.starts_with("about 67%"), "{}", found.detail);
    }

    #[test]
    fn every_reindex_text_is_schema_qualified_and_quoted() {
        // index_health printed regclass::text ("orders_id_idx", unqualified when on the
        // search_path) while table_bloat and maintenance_plan qualified it: one text now.
        let mut f = facts(3.0 * 2745.0 * 8192.0);
        f.index_name = "\"Order\"".into();
        f.location.schema = "Sales".into();
        f.location.index = "Order".into();
        let expected = "REINDEX INDEX CONCURRENTLY \"Sales\".\"Order\"";
        assert_eq!(reindex_command("Sales", "Order"), expected);
        assert_eq!(bloat_finding(&f, 40.0, 1_048_576.0).unwrap().fix, format!("{expected};"));
        let bloat = Bloat { bytes: f.bytes, expected: f.bytes / 3.0 };
        assert!(index_fix("Sales", "Order", &bloat).unwrap().starts_with(&format!("{expected} (")));
        assert_eq!(reindex_command("public", "user"), "REINDEX INDEX CONCURRENTLY public.\"user\"");
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

    #[test]
    fn exact_btree_expectation_packs_the_leaves() {
        let sparse = BtreeScan {
            index_size: 1001.0 * 8192.0,
            internal_pages: 3.0,
            leaf_pages: 997.0,
            avg_leaf_density: 9.0,
        };
        let expected = btree_exact_expected_bytes(&sparse, 90.0);
        assert_eq!(expected, (1.0 + 3.0 + 100.0) * 8192.0);
        let bloat = Bloat { bytes: sparse.index_size, expected };
        assert!(index_fix("public", "t_idx", &bloat)
            .unwrap()
            .starts_with("REINDEX INDEX CONCURRENTLY public.t_idx"));
        let tight = BtreeScan { avg_leaf_density: 95.0, ..sparse };
        assert_eq!(
            btree_exact_expected_bytes(&tight, 90.0),
            sparse.index_size,
            "never more than the index itself"
        );
        let empty = BtreeScan {
            index_size: 8192.0,
            internal_pages: 0.0,
            leaf_pages: 0.0,
            avg_leaf_density: f64::NAN,
        };
        assert_eq!(btree_exact_expected_bytes(&empty, 90.0), 8192.0);
    }

    #[test]
    fn bloat_never_goes_negative_and_small_bloat_has_no_fix() {
        let small = Bloat { bytes: 100.0, expected: 200.0 };
        assert_eq!((small.excess(), small.pct()), (0.0, 0.0));
        assert_eq!(Bloat { bytes: 0.0, expected: 0.0 }.pct(), 0.0);
        let half_of_little = Bloat { bytes: 1_000_000.0, expected: 500_000.0 };
        assert_eq!(
            index_fix("public", "i", &half_of_little),
            None,
            "50 % of 1 MB is not worth a rebuild"
        );
    }
}
