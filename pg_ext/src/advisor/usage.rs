//! What one planned query asks of one table: the facts candidate indexes are derived from.
//! Collected by the planner hook in `pg/planning.rs` from the planner's own structures
//! (restriction clauses, equivalence classes, pathkeys, target list), so constants, `$n`
//! parameters, views and subqueries are already resolved.

use std::collections::BTreeMap;

/// How a restriction clause constrains a column, in the terms a btree understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Restriction {
    /// `col = x` (also `col = ANY(...)`, `col IN (...)` and `col IS NULL`).
    Equality,
    /// `col < x`, `col BETWEEN a AND b`, …
    Range,
    /// `col LIKE 'abc%'`: a range on a pattern operator class (or the C collation).
    LikePrefix,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnFilter {
    pub attnum: i16,
    pub restriction: Restriction,
    /// Share of the table's rows the clause keeps, as the planner estimated it.
    pub selectivity: f64,
    /// The clause as SQL when it compares the column with a literal (`status = 'open'`),
    /// for partial-index candidates; None for `$n` parameters and non-literal values.
    pub literal_predicate: Option<String>,
    /// Operator class a LIKE prefix needs (`text_pattern_ops`), when the default one cannot.
    pub opclass: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub attnum: i16,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableUsage {
    pub relid: u32,
    /// Schema-qualified, quoted: ready for DDL.
    pub table: String,
    /// Rows in the table and rows the query keeps after its restrictions.
    pub table_rows: f64,
    pub rows_kept: f64,
    pub filters: Vec<ColumnFilter>,
    /// Columns equated with another table's columns (join keys).
    pub join_columns: Vec<i16>,
    /// ORDER BY (or GROUP BY) keys this table alone provides, leading ones first.
    pub order_by: Vec<SortKey>,
    /// Every column the query reads from this table; None when it needs more than plain
    /// columns (a whole-row reference, a system column), so no index can cover it.
    pub needed_columns: Option<Vec<i16>>,
    /// Names of every column mentioned above.
    pub column_names: BTreeMap<i16, String>,
}

impl TableUsage {
    /// Share of the table the query reads.
    pub fn kept_fraction(&self) -> f64 {
        if self.table_rows <= 0.0 { 1.0 } else { (self.rows_kept / self.table_rows).clamp(0.0, 1.0) }
    }

    pub fn name(&self, attnum: i16) -> &str {
        self.column_names.get(&attnum).map(String::as_str).unwrap_or("?")
    }
}
