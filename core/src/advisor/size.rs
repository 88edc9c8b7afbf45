//! Size of an index that does not exist, from the table's row count and column widths.
//! Follows the on-disk layout of each access method as CREATE INDEX builds it (btree leaf
//! pages filled to 90 %, deduplicated posting lists for repeated keys; hash buckets at 75 %;
//! one BRIN summary per 128 heap pages). Pure, so the model is unit-tested here and compared
//! with real indexes in the #[pg_test]s.

pub const BLOCK_SIZE: f64 = 8192.0;
/// Page header (SizeOfPageHeaderData); heap pages have no special space after it.
pub const PAGE_HEADER: f64 = 24.0;
/// Page header (24) and the access method's special space (16 for btree and hash).
const USABLE_PAGE: f64 = BLOCK_SIZE - PAGE_HEADER - 16.0;
/// A line pointer (ItemIdData) per tuple on a page.
pub const ITEM_ID: f64 = 4.0;
const INDEX_TUPLE_HEADER: f64 = 8.0;
const HEAP_TID: f64 = 6.0;
const BTREE_LEAF_FILL: f64 = 0.90;
const BTREE_INNER_FILL: f64 = 0.70;
/// A posting list may use about a third of a page (BTMaxItemSize) before it is split.
const BTREE_MAX_POSTING_BYTES: f64 = (BLOCK_SIZE - 24.0 - 16.0) / 3.0 - 16.0;
const HASH_FILL: f64 = 0.75;
/// BRIN's default pages_per_range (BRIN_DEFAULT_PAGES_PER_RANGE).
pub const BRIN_PAGES_PER_RANGE: f64 = 128.0;
/// Heap TIDs per revmap page (REVMAP_PAGE_MAXITEMS: (8192 - 24 - 8) / 6).
const BRIN_REVMAP_ITEMS_PER_PAGE: f64 = 1360.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessMethod {
    Btree,
    Hash,
    Brin,
}

impl AccessMethod {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "btree" => Some(Self::Btree),
            "hash" => Some(Self::Hash),
            "brin" => Some(Self::Brin),
            _ => None,
        }
    }
}

/// What the size depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexShape {
    pub am: AccessMethod,
    /// Rows the index covers (after a partial index's predicate).
    pub tuples: f64,
    /// Average stored width of each indexed column (key and INCLUDE), in bytes.
    pub column_widths: Vec<f64>,
    /// Distinct key values, when known (drives btree deduplication).
    pub distinct_keys: Option<f64>,
    /// Heap pages of the table (BRIN summarises ranges of them).
    pub table_pages: f64,
    /// Unique indexes do not deduplicate.
    pub unique: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeEstimate {
    pub pages: f64,
    /// Levels above the leaves (btree), as the planner's `tree_height`; -1 when unknown.
    pub tree_height: i32,
}

impl SizeEstimate {
    pub fn bytes(&self) -> f64 {
        self.pages * BLOCK_SIZE
    }
}

/// Distinct values of a multi-column key from each column's pg_stats n_distinct (negative
/// means a fraction of the rows), assuming independent columns; None when any is unknown.
pub fn distinct_keys(ndistinct: &[Option<f64>], tuples: f64) -> Option<f64> {
    ndistinct
        .iter()
        .map(|n| n.map(|n| if n < 0.0 { -n * tuples } else { n }))
        .try_fold(1.0f64, |acc, n| n.map(|n| acc * n.max(1.0)))
        .map(|d| d.min(tuples.max(1.0)))
}

pub fn maxalign(bytes: f64) -> f64 {
    (bytes / 8.0).ceil() * 8.0
}

pub fn estimate(shape: &IndexShape) -> SizeEstimate {
    let tuples = shape.tuples.max(0.0);
    let data: f64 = shape.column_widths.iter().sum();
    match shape.am {
        AccessMethod::Btree => btree(tuples, data, shape.distinct_keys, shape.unique),
        AccessMethod::Hash => {
            let item = maxalign(INDEX_TUPLE_HEADER + 4.0) + ITEM_ID;
            let per_page = (USABLE_PAGE * HASH_FILL / item).floor().max(1.0);
            let buckets = (tuples / per_page).ceil().max(2.0);
            let buckets = 2f64.powi(buckets.log2().ceil() as i32);
            // meta page + bitmap page + buckets
            SizeEstimate { pages: buckets + 2.0, tree_height: -1 }
        }
        AccessMethod::Brin => {
            // A meta page, the revmap (one TID per range) and one min/max summary per range.
            let ranges = (shape.table_pages / BRIN_PAGES_PER_RANGE).ceil().max(1.0);
            let summary = maxalign(INDEX_TUPLE_HEADER + 2.0 * data) + ITEM_ID;
            let revmap = (ranges / BRIN_REVMAP_ITEMS_PER_PAGE).ceil();
            let regular = (ranges * summary / USABLE_PAGE).ceil();
            SizeEstimate { pages: 1.0 + revmap + regular, tree_height: -1 }
        }
    }
}

/// Type OIDs (pg_type.h) whose btree indexes the server deduplicates: numeric, floats,
/// jsonb and the like have no "equal image" support function. char(n) (bpchar) keys are
/// deduplicated from PostgreSQL 18 on only (see `deduplicates`).
pub const DEDUPLICABLE_TYPES: [u32; 14] = [
    21,   // int2
    23,   // int4
    20,   // int8
    26,   // oid
    16,   // bool
    18,   // char
    19,   // name
    1082, // date
    1083, // time
    1114, // timestamp
    1184, // timestamptz
    2950, // uuid
    25,   // text
    1043, // varchar
];

/// bpchar, char(n).
pub const BPCHAR: u32 = 1042;

/// Whether a btree key of this type is deduplicated by a server of this major version: 15
/// and 17 build char(n) indexes without deduplication, 18 with it (a pg_test builds each
/// type's index both ways on the server it runs on and compares).
pub fn deduplicates(type_oid: u32, server_major: u32) -> bool {
    DEDUPLICABLE_TYPES.contains(&type_oid) || (type_oid == BPCHAR && server_major >= 18)
}

/// An index as its definition gives it: what its size depends on besides the table.
#[derive(Clone, Copy, Debug)]
pub struct IndexDefinition<'a> {
    pub am: AccessMethod,
    pub unique: bool,
    /// Key columns come first, then INCLUDE columns.
    pub key_columns: usize,
    /// Per column: the type OID of the indexed value.
    pub column_types: &'a [u32],
    /// Per column: the average stored width, in bytes.
    pub column_widths: &'a [f64],
    /// Per key column: pg_stats n_distinct, when known.
    pub key_ndistinct: &'a [Option<f64>],
    /// The server's major version (which key types it deduplicates).
    pub server_major: u32,
}

/// Size of the index `definition` describes when it covers `tuples` rows of a table of
/// `table_pages` pages.
pub fn estimate_definition(
    definition: &IndexDefinition<'_>,
    tuples: f64,
    table_pages: f64,
) -> SizeEstimate {
    // Postgres deduplicates btree leaf tuples only without INCLUDE columns, in non-unique
    // indexes, and for key types that support it; otherwise every row is its own tuple.
    let deduplicates = !definition.unique
        && definition.key_columns == definition.column_types.len()
        && definition.column_types[..definition.key_columns]
            .iter()
            .all(|t| deduplicates(*t, definition.server_major));
    let distinct_keys =
        if deduplicates { distinct_keys(definition.key_ndistinct, tuples) } else { Some(tuples) };
    estimate(&IndexShape {
        am: definition.am,
        tuples,
        column_widths: definition.column_widths.to_vec(),
        distinct_keys,
        table_pages,
        unique: definition.unique,
    })
}

fn btree(tuples: f64, data: f64, distinct: Option<f64>, unique: bool) -> SizeEstimate {
    let key_tuple = maxalign(INDEX_TUPLE_HEADER + data);
    let duplicates = match distinct {
        Some(d) if !unique && d >= 1.0 && tuples / d >= 2.0 => tuples / d,
        _ => 1.0,
    };
    let leaf_bytes = if duplicates >= 2.0 {
        // One posting-list tuple per run of equal keys, split when it outgrows its limit.
        let groups = tuples / duplicates;
        let tids_per_posting = ((BTREE_MAX_POSTING_BYTES - key_tuple) / HEAP_TID).floor().max(1.0);
        let postings = groups * (duplicates / tids_per_posting).ceil();
        postings * (key_tuple + ITEM_ID) + tuples * HEAP_TID
    } else {
        tuples * (key_tuple + ITEM_ID)
    };
    let leaf_pages = (leaf_bytes / (USABLE_PAGE * BTREE_LEAF_FILL)).ceil().max(1.0);
    // Inner levels hold one (suffix-truncated, so at most key-sized) pivot per child page.
    let fanout = (USABLE_PAGE * BTREE_INNER_FILL / (key_tuple + ITEM_ID)).floor().max(2.0);
    let (mut level_pages, mut inner_pages, mut height) = (leaf_pages, 0.0, 0);
    while level_pages > 1.0 {
        level_pages = (level_pages / fanout).ceil();
        inner_pages += level_pages;
        height += 1;
    }
    SizeEstimate { pages: 1.0 + leaf_pages + inner_pages, tree_height: height }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btree_shape(tuples: f64, widths: &[f64], distinct: Option<f64>) -> IndexShape {
        IndexShape {
            am: AccessMethod::Btree,
            tuples,
            column_widths: widths.to_vec(),
            distinct_keys: distinct,
            table_pages: 0.0,
            unique: false,
        }
    }

    #[test]
    fn unique_int_btree_matches_the_known_size() {
        // A real btree on 1M distinct int4 keys is 2745 pages (22 MB) on PostgreSQL 15.
        let est = estimate(&btree_shape(1_000_000.0, &[4.0], Some(1_000_000.0)));
        assert!((est.pages - 2745.0).abs() / 2745.0 < 0.05, "{est:?}");
        assert_eq!(est.tree_height, 2);
    }

    #[test]
    fn repeated_keys_are_deduplicated() {
        let distinct = estimate(&btree_shape(1_000_000.0, &[4.0], Some(1_000_000.0)));
        let repeated = estimate(&btree_shape(1_000_000.0, &[4.0], Some(100.0)));
        assert!(repeated.pages < distinct.pages / 2.0, "{repeated:?} vs {distinct:?}");
        let unique =
            estimate(&IndexShape { unique: true, ..btree_shape(1_000_000.0, &[4.0], Some(100.0)) });
        assert_eq!(unique.pages, distinct.pages);
    }

    #[test]
    fn wider_and_more_columns_cost_more() {
        let narrow = estimate(&btree_shape(100_000.0, &[4.0], None));
        let wide = estimate(&btree_shape(100_000.0, &[4.0, 32.0], None));
        assert!(wide.pages > narrow.pages);
    }

    #[test]
    fn distinct_keys_combine_columns_and_fractions() {
        assert_eq!(distinct_keys(&[Some(-0.5)], 1000.0), Some(500.0));
        assert_eq!(distinct_keys(&[Some(10.0), Some(20.0)], 1000.0), Some(200.0));
        assert_eq!(distinct_keys(&[Some(100.0), Some(100.0)], 1000.0), Some(1000.0));
        assert_eq!(distinct_keys(&[Some(10.0), None], 1000.0), None);
    }

    fn int_definition<'a>(types: &'a [u32], widths: &'a [f64]) -> IndexDefinition<'a> {
        IndexDefinition {
            am: AccessMethod::Btree,
            unique: false,
            key_columns: 1,
            column_types: types,
            column_widths: widths,
            key_ndistinct: &[Some(100.0)],
            server_major: 15,
        }
    }

    #[test]
    fn definitions_deduplicate_only_plain_keys_of_equal_image_types() {
        let plain = estimate_definition(&int_definition(&[23], &[4.0]), 1_000_000.0, 0.0);
        let repeated = estimate(&btree_shape(1_000_000.0, &[4.0], Some(100.0)));
        assert_eq!(plain, repeated);
        let every_row = estimate(&btree_shape(1_000_000.0, &[4.0], Some(1_000_000.0)));
        // numeric (1700) has no equal image; unique and INCLUDE columns turn it off too.
        let numeric = estimate_definition(&int_definition(&[1700], &[4.0]), 1_000_000.0, 0.0);
        assert_eq!(numeric, every_row);
        let unique = IndexDefinition { unique: true, ..int_definition(&[23], &[4.0]) };
        assert_eq!(estimate_definition(&unique, 1_000_000.0, 0.0), every_row);
        let include = estimate_definition(&int_definition(&[23, 23], &[4.0, 0.0]), 1e6, 0.0);
        assert_eq!(include, every_row);
        // char(n) from PostgreSQL 18 on.
        let bpchar = int_definition(&[BPCHAR], &[4.0]);
        assert_eq!(estimate_definition(&bpchar, 1e6, 0.0), every_row);
        let on_18 = IndexDefinition { server_major: 18, ..bpchar };
        assert_eq!(estimate_definition(&on_18, 1e6, 0.0), repeated);
    }

    #[test]
    fn empty_table_still_has_a_meta_and_a_leaf_page() {
        assert_eq!(estimate(&btree_shape(0.0, &[4.0], None)).pages, 2.0);
    }

    #[test]
    fn brin_matches_real_indexes_and_grows_with_the_table_not_the_rows() {
        // PostgreSQL 15: a BRIN on a timestamp column of a 20,619-page table is 3 pages
        // (meta, revmap, one page of 162 summaries); of a 90,910-page table (8 M rows), 5 pages.
        let brin = |table_pages: f64, tuples: f64| {
            estimate(&IndexShape {
                am: AccessMethod::Brin,
                table_pages,
                ..btree_shape(tuples, &[8.0], None)
            })
        };
        assert_eq!(brin(20_619.0, 2e6).pages, 3.0);
        assert_eq!(brin(90_910.0, 8e6).pages, 5.0);
        assert_eq!(brin(90_910.0, 8e6), brin(90_910.0, 1e5), "rows do not matter");
        // Past 1360 ranges a second revmap page; an empty table still has three pages.
        assert_eq!(brin(1361.0 * 128.0, 1e8).pages - brin(1360.0 * 128.0, 1e8).pages, 1.0);
        assert_eq!(brin(0.0, 0.0).pages, 3.0);
        let btree = estimate(&btree_shape(1e7, &[8.0], Some(1e7)));
        assert!(btree.pages > 1000.0 * brin(90_910.0, 1e7).pages, "{btree:?}");
    }

    #[test]
    fn brin_is_tiny_and_hash_grows_in_powers_of_two() {
        let brin = estimate(&IndexShape {
            am: AccessMethod::Brin,
            table_pages: 100_000.0,
            ..btree_shape(10_000_000.0, &[8.0], None)
        });
        assert!(brin.pages < 10.0, "{brin:?}");
        let hash = estimate(&IndexShape {
            am: AccessMethod::Hash,
            ..btree_shape(1_000_000.0, &[4.0], None)
        });
        assert_eq!((hash.pages - 2.0).log2().fract(), 0.0);
        assert!(hash.pages > 2000.0 && hash.pages < 9000.0, "{hash:?}");
    }
}
