//! Table (heap) and btree index bloat: the bytes a relation takes against the bytes a fresh
//! copy of its live rows would take. The estimate reads statistics only (pg_class, pg_stats);
//! exact mode feeds pgstattuple's counts into the same page model. Btree indexes use the
//! advisor's size model (`advisor::health::expected_bytes`), one model for both reports.

use crate::advisor::health::{expected_bytes, BtreeFacts};
use crate::advisor::size::{maxalign, BLOCK_SIZE, ITEM_ID, PAGE_HEADER};
use crate::health::vacuum::analyze_command;

/// offsetof(HeapTupleHeaderData, t_bits): the fixed tuple header before the null bitmap.
const HEAP_TUPLE_HEADER: f64 = 23.0;
/// MaxHeapTuplesPerPage for 8 kB pages.
const MAX_HEAP_TUPLES_PER_PAGE: f64 = 291.0;
/// Default fillfactor of btree leaf pages (BTREE_DEFAULT_FILLFACTOR).
pub const BTREE_DEFAULT_FILLFACTOR: f64 = 90.0;
/// A varlena shorter than this is stored with a 1-byte header and no alignment padding.
const SHORT_VARLENA_MAX: f64 = 127.0;
/// Below these, a bloat row carries no fix: not worth a rewrite.
const FIX_MIN_PCT: f64 = 20.0;
const FIX_MIN_BYTES: f64 = 1_048_576.0;

/// Size against the size of a fresh copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bloat {
    pub bytes: f64,
    pub expected: f64,
}

impl Bloat {
    /// Bytes a rewrite would give back (never negative: a relation smaller than the model is tight).
    pub fn excess(&self) -> f64 {
        (self.bytes - self.expected).max(0.0)
    }

    pub fn pct(&self) -> f64 {
        if self.bytes > 0.0 {
            100.0 * self.excess() / self.bytes
        } else {
            0.0
        }
    }

    /// Worth fixing: at least 20 % and 1 MB.
    pub fn worth_fixing(&self) -> bool {
        self.pct() >= FIX_MIN_PCT && self.excess() >= FIX_MIN_BYTES
    }
}

/// One column as pg_attribute and pg_stats describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct HeapColumn {
    /// pg_attribute.attlen (-1 varlena, -2 cstring, else fixed).
    pub attlen: i32,
    /// pg_attribute.attalign: 'c', 's', 'i' or 'd'.
    pub align: char,
    /// pg_stats.avg_width (None: no statistics for this column).
    pub avg_width: Option<f64>,
    pub null_frac: f64,
}

/// One table as the heap estimate sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeapFacts {
    pub schema: String,
    pub table: String,
    pub qualified: String,
    /// pg_relation_size of the main fork now.
    pub bytes: f64,
    /// pg_class.relpages and reltuples, as of the last VACUUM or ANALYZE (-1 tuples: never).
    pub relpages: f64,
    pub reltuples: f64,
    pub fillfactor: f64,
    pub columns: Vec<HeapColumn>,
}

fn align_to(offset: f64, align: char) -> f64 {
    let n = match align {
        's' => 2.0,
        'i' => 4.0,
        'd' => 8.0,
        _ => 1.0,
    };
    (offset / n).ceil() * n
}

/// Average stored size of one row (header, null bitmap, columns with their alignment padding),
/// maxaligned as on disk; None when a column has no statistics.
pub fn heap_tuple_bytes(columns: &[HeapColumn]) -> Option<f64> {
    let has_nulls = columns.iter().any(|c| c.null_frac > 0.0);
    let bitmap = if has_nulls { (columns.len() as f64 / 8.0).ceil() } else { 0.0 };
    let mut offset = maxalign(HEAP_TUPLE_HEADER + bitmap);
    for column in columns {
        let width = column.avg_width?;
        let present = (1.0 - column.null_frac).clamp(0.0, 1.0);
        if present == 0.0 {
            continue;
        }
        // Fixed-width and long varlena values are aligned; short varlenas are not.
        let aligned = column.attlen > 0 || width >= SHORT_VARLENA_MAX;
        if aligned && present >= 0.5 {
            offset = align_to(offset, column.align);
        }
        offset += width * present;
    }
    Some(maxalign(offset))
}

/// Pages that `tuples` rows of `tuple_bytes` each fill when written fresh at `fillfactor` %.
pub fn heap_pages(tuples: f64, tuple_bytes: f64, fillfactor: f64) -> f64 {
    if tuples <= 0.0 {
        return 0.0;
    }
    let reserved = BLOCK_SIZE * (100.0 - fillfactor.clamp(10.0, 100.0)) / 100.0;
    let room = BLOCK_SIZE - PAGE_HEADER - reserved;
    let per_page = (room / (tuple_bytes + ITEM_ID)).floor().clamp(1.0, MAX_HEAP_TUPLES_PER_PAGE);
    (tuples / per_page).ceil()
}

/// Bytes a rewrite of the table would take, from statistics. The live row count is pg_class's
/// density (reltuples per relpage, as of the last VACUUM/ANALYZE) applied to today's size, as
/// the planner does; None before the first ANALYZE or without column statistics.
pub fn heap_expected_bytes(facts: &HeapFacts) -> Option<f64> {
    if facts.bytes == 0.0 {
        return Some(0.0);
    }
    if facts.reltuples < 0.0 {
        return None;
    }
    let tuples = if facts.relpages > 0.0 {
        facts.reltuples / facts.relpages * (facts.bytes / BLOCK_SIZE)
    } else {
        facts.reltuples
    };
    let tuple = heap_tuple_bytes(&facts.columns)?;
    Some(heap_pages(tuples, tuple, facts.fillfactor) * BLOCK_SIZE)
}

/// pgstattuple's counts of a table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeapScan {
    pub table_len: f64,
    pub tuple_count: f64,
    /// Sum of the live tuples' lengths (header included, not maxaligned).
    pub tuple_len: f64,
}

/// Bytes a rewrite would take, from pgstattuple's exact live-tuple counts.
pub fn heap_exact_expected_bytes(scan: &HeapScan, fillfactor: f64) -> f64 {
    if scan.tuple_count <= 0.0 {
        return 0.0;
    }
    let tuple = maxalign(scan.tuple_len / scan.tuple_count);
    heap_pages(scan.tuple_count, tuple, fillfactor) * BLOCK_SIZE
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

/// What to run about a bloated table, honestly: nothing that shrinks it is free.
pub fn table_fix(qualified: &str, bloat: &Bloat) -> Option<String> {
    bloat.worth_fixing().then(|| {
        format!(
            "VACUUM lets new rows reuse the space but returns little of it to the OS. To shrink it online: \
             pg_repack --table={qualified} (needs the pg_repack extension and room for a copy). \
             VACUUM FULL {qualified} also shrinks it but holds an ACCESS EXCLUSIVE lock (no reads or writes) for the whole rewrite."
        )
    })
}

/// What to run about a bloated btree index.
pub fn index_fix(qualified_index: &str, bloat: &Bloat) -> Option<String> {
    bloat.worth_fixing().then(|| {
        format!(
            "REINDEX INDEX CONCURRENTLY {qualified_index} (no blocking of reads or writes; needs room for a second copy \
             while it runs and cannot run inside a transaction block)"
        )
    })
}

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
    pub qualified_index: Option<String>,
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
        match (self.bloat(), &self.qualified_index) {
            // Without statistics there is no estimate; worth an ANALYZE only when the size matters.
            (None, _) if self.bytes < FIX_MIN_BYTES => None,
            (None, _) => Some(format!(
                "{} (no statistics to estimate from yet)",
                analyze_command(&self.qualified_table)
            )),
            (Some(b), Some(index)) => index_fix(index, &b),
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
        qualified_index: None,
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
        qualified_index: Some(at.qualified_index.clone()),
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

    fn int_and_short_text() -> Vec<HeapColumn> {
        vec![
            HeapColumn { attlen: 4, align: 'i', avg_width: Some(4.0), null_frac: 0.0 },
            HeapColumn { attlen: -1, align: 'i', avg_width: Some(2.0), null_frac: 0.0 },
        ]
    }

    #[test]
    fn rows_are_laid_out_as_heap_tuples() {
        // 24-byte header, int4 at 24..28, 2-byte short varlena: 30, maxaligned to 32.
        assert_eq!(heap_tuple_bytes(&int_and_short_text()), Some(32.0));
        // One int8: 24 + 8.
        assert_eq!(
            heap_tuple_bytes(&[HeapColumn {
                attlen: 8,
                align: 'd',
                avg_width: Some(8.0),
                null_frac: 0.0
            }]),
            Some(32.0)
        );
        // A nullable column adds a bitmap byte (23 + 1 = 24 still) and absent values cost nothing.
        let mostly_null = vec![
            HeapColumn { attlen: 4, align: 'i', avg_width: Some(4.0), null_frac: 0.0 },
            HeapColumn { attlen: -1, align: 'i', avg_width: Some(100.0), null_frac: 1.0 },
        ];
        assert_eq!(heap_tuple_bytes(&mostly_null), Some(32.0));
        let unknown = vec![HeapColumn { attlen: 4, align: 'i', avg_width: None, null_frac: 0.0 }];
        assert_eq!(heap_tuple_bytes(&unknown), None);
    }

    #[test]
    fn long_values_are_aligned() {
        let cols = vec![
            HeapColumn { attlen: 1, align: 'c', avg_width: Some(1.0), null_frac: 0.0 },
            HeapColumn { attlen: -1, align: 'i', avg_width: Some(200.0), null_frac: 0.0 },
        ];
        // 24 + 1 = 25, aligned to 28, + 200 = 228, maxaligned 232.
        assert_eq!(heap_tuple_bytes(&cols), Some(232.0));
    }

    #[test]
    fn pages_follow_postgres_packing() {
        // 226 rows of (int4, short text) fit an 8 kB page: (8192 - 24) / 36.
        assert_eq!(heap_pages(226.0, 32.0, 100.0), 1.0);
        assert_eq!(heap_pages(227.0, 32.0, 100.0), 2.0);
        assert_eq!(heap_pages(0.0, 32.0, 100.0), 0.0);
        // fillfactor 50 leaves half of each page free.
        assert_eq!(
            heap_pages(1000.0, 32.0, 50.0),
            (1000.0f64 / ((8192.0 - 24.0 - 4096.0) / 36.0f64).floor()).ceil()
        );
        // Tiny rows are capped by MaxHeapTuplesPerPage.
        assert_eq!(heap_pages(291.0, 24.0, 100.0), 1.0);
        assert_eq!(heap_pages(292.0, 24.0, 100.0), 2.0);
    }

    fn table(bytes: f64, relpages: f64, reltuples: f64) -> HeapFacts {
        HeapFacts {
            bytes,
            relpages,
            reltuples,
            fillfactor: 100.0,
            columns: int_and_short_text(),
            ..HeapFacts::default()
        }
    }

    #[test]
    fn a_packed_table_has_no_bloat_and_a_mostly_deleted_one_has() {
        // 300000 rows of (int4, 'p') take 1328 pages when freshly loaded.
        let fresh = table(1328.0 * 8192.0, 1328.0, 300_000.0);
        let expected = heap_expected_bytes(&fresh).unwrap();
        let bloat = Bloat { bytes: fresh.bytes, expected };
        assert!(bloat.pct() < 1.0, "{bloat:?}");
        assert_eq!(table_fix("public.t", &bloat), None);
        // After deleting 90 % and a VACUUM, the file keeps its pages but holds 30000 rows.
        let deleted = table(1328.0 * 8192.0, 1328.0, 30_000.0);
        let bloat =
            Bloat { bytes: deleted.bytes, expected: heap_expected_bytes(&deleted).unwrap() };
        assert!((bloat.pct() - 90.0).abs() < 1.0, "{bloat:?}");
        assert!(table_fix("public.t", &bloat).unwrap().contains("pg_repack --table=public.t"));
    }

    #[test]
    fn row_counts_follow_the_file_as_it_grows() {
        // Analyzed at 100 pages and 22600 rows; the file doubled since: twice the rows.
        let grown = table(200.0 * 8192.0, 100.0, 22_600.0);
        assert_eq!(heap_expected_bytes(&grown), Some(200.0 * 8192.0));
    }

    #[test]
    fn never_analyzed_tables_have_no_estimate() {
        let never = table(2e6, 0.0, -1.0);
        assert_eq!(heap_expected_bytes(&never), None);
        // An empty file needs no statistics; a small unanalyzed one is not worth a nag.
        assert_eq!(heap_expected_bytes(&table(0.0, 0.0, -1.0)), Some(0.0));
        assert_eq!(table_row(&table(8192.0, 0.0, -1.0), None, Method::Estimate).fix(), None);
        assert!(table_row(&never, None, Method::Estimate).fix().unwrap().starts_with("ANALYZE"));
    }

    #[test]
    fn exact_counts_use_the_same_page_model() {
        let scan = HeapScan {
            table_len: 1328.0 * 8192.0,
            tuple_count: 30_000.0,
            tuple_len: 30_000.0 * 30.0,
        };
        assert_eq!(
            heap_exact_expected_bytes(&scan, 100.0),
            heap_pages(30_000.0, 32.0, 100.0) * 8192.0
        );
        let empty = HeapScan { table_len: 8192.0, tuple_count: 0.0, tuple_len: 0.0 };
        assert_eq!(heap_exact_expected_bytes(&empty, 100.0), 0.0);
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
        assert!(index_fix("public.t_idx", &bloat)
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
    fn rows_carry_kind_and_fix_and_sort_tables_before_their_indexes() {
        use crate::advisor::health::IndexLocation;
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
    fn bloat_never_goes_negative_and_small_bloat_has_no_fix() {
        let small = Bloat { bytes: 100.0, expected: 200.0 };
        assert_eq!((small.excess(), small.pct()), (0.0, 0.0));
        assert_eq!(Bloat { bytes: 0.0, expected: 0.0 }.pct(), 0.0);
        let half_of_little = Bloat { bytes: 1_000_000.0, expected: 500_000.0 };
        assert_eq!(index_fix("i", &half_of_little), None, "50 % of 1 MB is not worth a rebuild");
    }

    #[test]
    fn listed_only_at_both_bounds() {
        let mb = 1_048_576.0;
        let row = |bytes: f64, expected: Option<f64>| BloatRow {
            schema: "public".into(),
            table: "t".into(),
            index: None,
            qualified_table: "public.t".into(),
            qualified_index: None,
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
