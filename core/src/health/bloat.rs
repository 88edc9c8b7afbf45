//! Bloat: the bytes a relation takes against the bytes a fresh copy of its live rows would
//! take (`Bloat`), and the table (heap) model. The estimate reads statistics only (pg_class,
//! pg_stats); exact mode feeds pgstattuple's counts into the same page model. Btree indexes are
//! in `btree`, the rows of `table_bloat` in `table_bloat`.

use crate::advisor::size::{maxalign, BLOCK_SIZE, ITEM_ID, PAGE_HEADER};

/// offsetof(HeapTupleHeaderData, t_bits): the fixed tuple header before the null bitmap.
const HEAP_TUPLE_HEADER: f64 = 23.0;
/// MaxHeapTuplesPerPage for 8 kB pages.
const MAX_HEAP_TUPLES_PER_PAGE: f64 = 291.0;
/// A varlena shorter than this is stored with a 1-byte header and no alignment padding.
const SHORT_VARLENA_MAX: f64 = 127.0;
/// Below these, a bloat row carries no fix: not worth a rewrite.
const FIX_MIN_PCT: f64 = 20.0;
pub(crate) const FIX_MIN_BYTES: f64 = 1_048_576.0;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::health::table_bloat::{table_row, Method};

    pub(crate) fn int_and_short_text() -> Vec<HeapColumn> {
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

    pub(crate) fn table(bytes: f64, relpages: f64, reltuples: f64) -> HeapFacts {
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
}
