//! The rows of `pitstop.table_bloat`: a table or one of its btree indexes with its size, the
//! expected size (`bloat` for heaps, `btree` for indexes), the method and the fix.

use crate::health::bloat::{heap_expected_bytes, table_fix, Bloat, HeapFacts, FIX_MIN_BYTES};
use crate::health::btree::{expected_bytes, index_fix, BtreeFacts};
use crate::health::vacuum::analyze_command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Estimate,
    Pgstattuple,
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::Estimate => "estimate",
            Method::Pgstattuple => "pgstattuple",
        }
    }
}

/// One row of table_bloat: a table (index None) or one of its btree indexes.
#[derive(Clone, Debug, PartialEq)]
pub struct BloatRow {
    pub schema: String,
    pub table: String,
    pub index: Option<String>,
    pub qualified_table: String,
    pub bytes: f64,
    /// None when the statistics do not allow an estimate (never analyzed).
    pub expected: Option<f64>,
    pub method: Method,
}

impl BloatRow {
    pub fn kind(&self) -> &'static str {
        if self.index.is_some() {
            "index"
        } else {
            "table"
        }
    }

    pub fn bloat(&self) -> Option<Bloat> {
        self.expected.map(|expected| Bloat { bytes: self.bytes, expected })
    }

    pub fn fix(&self) -> Option<String> {
        match (self.bloat(), &self.index) {
            // Without statistics there is no estimate; worth an ANALYZE only when the size matters.
            (None, _) if self.bytes < FIX_MIN_BYTES => None,
            (None, _) => Some(format!(
                "{} (no statistics to estimate from yet)",
                analyze_command(&self.qualified_table)
            )),
            (Some(b), Some(index)) => index_fix(&self.schema, index, &b),
            (Some(b), None) => table_fix(&self.qualified_table, &b),
        }
    }
}

pub fn table_row(facts: &HeapFacts, expected: Option<f64>, method: Method) -> BloatRow {
    BloatRow {
        schema: facts.schema.clone(),
        table: facts.table.clone(),
        index: None,
        qualified_table: facts.qualified.clone(),
        bytes: facts.bytes,
        expected,
        method,
    }
}

pub fn index_row(
    facts: &BtreeFacts,
    bytes: f64,
    expected: Option<f64>,
    method: Method,
) -> BloatRow {
    let at = &facts.location;
    BloatRow {
        schema: at.schema.clone(),
        table: at.table.clone(),
        index: Some(at.index.clone()),
        qualified_table: at.qualified_table.clone(),
        bytes,
        expected,
        method,
    }
}

/// The estimate from statistics, tables and their indexes, in name order.
pub fn estimate_rows(tables: &[HeapFacts], indexes: &[BtreeFacts]) -> Vec<BloatRow> {
    let mut rows: Vec<BloatRow> =
        tables.iter().map(|t| table_row(t, heap_expected_bytes(t), Method::Estimate)).collect();
    rows.extend(indexes.iter().map(|i| index_row(i, i.bytes, expected_bytes(i), Method::Estimate)));
    sort_rows(&mut rows);
    rows
}

impl BloatRow {
    /// Whether `table_bloat` lists the row: bloat at least `min_pct` % and `min_bytes`; a
    /// relation without an estimate (no statistics yet) when it is itself at least `min_bytes`,
    /// since it could hold that much.
    pub fn listed(&self, min_pct: f64, min_bytes: f64) -> bool {
        match self.bloat() {
            Some(b) => b.pct() >= min_pct && b.excess() >= min_bytes,
            None => self.bytes >= min_bytes,
        }
    }
}

/// By schema, table, then the table before its indexes.
pub fn sort_rows(rows: &mut [BloatRow]) {
    rows.sort_by(|a, b| (&a.schema, &a.table, &a.index).cmp(&(&b.schema, &b.table, &b.index)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::bloat::tests::table;
    use crate::health::btree::IndexLocation;

    #[test]
    fn rows_carry_kind_and_fix_and_sort_tables_before_their_indexes() {
        let heap = HeapFacts {
            schema: "public".into(),
            table: "big".into(),
            qualified: "public.big".into(),
            ..table(1328.0 * 8192.0, 1328.0, 30_000.0)
        };
        let index = BtreeFacts {
            index_name: "big_id_idx".into(),
            table_name: "big".into(),
            location: IndexLocation {
                schema: "public".into(),
                table: "big".into(),
                index: "big_id_idx".into(),
                qualified_table: "public.big".into(),
                qualified_index: "public.big_id_idx".into(),
            },
            bytes: 10.0 * 2745.0 * 8192.0,
            tuples: 1_000_000.0,
            unique: true,
            key_columns: 1,
            widths: vec![Some(4.0)],
            ndistinct: vec![Some(-1.0)],
        };
        let never = HeapFacts {
            table: "aaa".into(),
            qualified: "public.aaa".into(),
            ..table(2e6, 0.0, -1.0)
        };
        let rows = estimate_rows(&[heap, never], &[index]);
        let kinds: Vec<_> = rows.iter().map(|r| (r.table.as_str(), r.kind())).collect();
        assert_eq!(kinds, vec![("aaa", "table"), ("big", "table"), ("big", "index")]);
        assert_eq!(
            rows[0].fix().as_deref(),
            Some("ANALYZE public.aaa (no statistics to estimate from yet)")
        );
        assert!(rows[1].fix().unwrap().contains("VACUUM FULL public.big"));
        assert!(rows[2].bloat().unwrap().pct() > 85.0, "{:?}", rows[2]);
        assert!(rows[2].fix().unwrap().starts_with("REINDEX INDEX CONCURRENTLY public.big_id_idx"));
        assert_eq!(rows[2].method.label(), "estimate");
    }

    #[test]
    fn listed_only_at_both_bounds() {
        let mb = 1_048_576.0;
        let row = |bytes: f64, expected: Option<f64>| BloatRow {
            schema: "public".into(),
            table: "t".into(),
            index: None,
            qualified_table: "public.t".into(),
            bytes,
            expected,
            method: Method::Estimate,
        };
        // table_bloat's defaults.
        let (pct, min) = (20.0, 10.0 * mb);
        // 100 MB with 20 MB free: exactly 20 % and above 10 MB.
        assert!(row(100.0 * mb, Some(80.0 * mb)).listed(pct, min));
        assert!(!row(100.0 * mb, Some(80.1 * mb)).listed(pct, min), "just under 20 %");
        // 50 MB with exactly 10 MB free (20 %) is listed; a byte less is not.
        assert!(row(50.0 * mb, Some(40.0 * mb)).listed(pct, min));
        assert!(!row(50.0 * mb - 1.0, Some(40.0 * mb)).listed(pct, min), "just under 10 MB");
        // 90 % of a 5 MB table is under 10 MB; 5 % of 1 GB is under 20 %.
        assert!(!row(5.0 * mb, Some(0.5 * mb)).listed(pct, min));
        assert!(!row(1024.0 * mb, Some(972.8 * mb)).listed(pct, min));
        // No estimate: listed when the relation itself could hold that much.
        assert!(row(10.0 * mb, None).listed(pct, min));
        assert!(!row(10.0 * mb - 1.0, None).listed(pct, min));
        // Zero thresholds list everything, a tight relation included.
        assert!(row(8192.0, Some(8192.0)).listed(0.0, 0.0));
    }
}
