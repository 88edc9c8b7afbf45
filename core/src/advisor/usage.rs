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
    /// When the clause constrains an immutable expression of the table's columns
    /// (`lower(email) = $1`) rather than a column: the expression as SQL over the bare table;
    /// `attnum` is then the first column it reads.
    pub expression: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub attnum: i16,
    pub descending: bool,
    pub nulls_first: bool,
    /// An immutable expression (`date_trunc('day', at)`) instead of the column `attnum`.
    pub expression: Option<String>,
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
    /// Immutable expressions of this table's columns equated with another table's
    /// (`lower(a.email) = lower(b.email)`): the first column each reads, and the expression.
    pub join_expressions: Vec<(i16, String)>,
    /// ORDER BY (or GROUP BY) keys this table alone provides, leading ones first.
    pub order_by: Vec<SortKey>,
    /// Every column the query reads from this table; None when it needs more than plain
    /// columns (a whole-row reference, a system column), so no index can cover it.
    pub needed_columns: Option<Vec<i16>>,
    /// Names of every column mentioned above.
    pub column_names: BTreeMap<i16, String>,
    /// A partitioned table: its indexes are built on every partition (the usage is the
    /// parent's, as the query names it; the planner scans the partitions).
    pub partitioned: bool,
    /// Expressions the query filters, joins or orders on that would be index keys but for
    /// their `$n` parameters (`substr(email, $1, $2)`: pg_stat_statements replaced the
    /// constants), as SQL: an index holds an expression with its constants, so none is
    /// proposed for them.
    pub parameterized: Vec<String>,
}

impl TableUsage {
    /// Share of the table the query reads.
    pub fn kept_fraction(&self) -> f64 {
        if self.table_rows <= 0.0 {
            1.0
        } else {
            (self.rows_kept / self.table_rows).clamp(0.0, 1.0)
        }
    }

    /// Whether the query filters, joins or orders on this column.
    pub fn mentions(&self, attnum: i16) -> bool {
        self.filters.iter().any(|f| f.attnum == attnum)
            || self.join_columns.contains(&attnum)
            || self.join_expressions.iter().any(|(a, _)| *a == attnum)
            || self.order_by.iter().any(|s| s.attnum == attnum)
    }

    pub fn name(&self, attnum: i16) -> &str {
        self.column_names.get(&attnum).map(String::as_str).unwrap_or("?")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Insert,
    Update,
    Delete,
    Merge,
}

/// The table a data-modifying statement writes, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct TableWrite {
    pub relid: u32,
    pub kind: WriteKind,
    /// Columns an UPDATE (or MERGE) assigns.
    pub updated_columns: Vec<i16>,
    /// Rows the planner expects one execution to write.
    pub estimated_rows: f64,
}

impl TableWrite {
    /// Share of the written rows that must also enter an index on `columns`: every inserted
    /// row; an updated row unless the update can be HOT (it assigns none of the index's
    /// columns), at the table's observed non-HOT share; deleted rows leave at vacuum.
    pub fn index_share(&self, columns: &[i16], non_hot_share: f64) -> f64 {
        let assigns_indexed = self.updated_columns.iter().any(|c| columns.contains(c));
        match self.kind {
            WriteKind::Insert => 1.0,
            WriteKind::Merge => 1.0,
            WriteKind::Update if assigns_indexed => 1.0,
            WriteKind::Update => non_hot_share.clamp(0.0, 1.0),
            WriteKind::Delete => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_of_indexed_columns_always_cost_others_only_when_not_hot() {
        let update = TableWrite {
            relid: 1,
            kind: WriteKind::Update,
            updated_columns: vec![3],
            estimated_rows: 1.0,
        };
        assert_eq!(update.index_share(&[2, 3], 0.1), 1.0);
        assert_eq!(update.index_share(&[2], 0.1), 0.1);
        let insert =
            TableWrite { kind: WriteKind::Insert, updated_columns: vec![], ..update.clone() };
        assert_eq!(insert.index_share(&[2], 0.0), 1.0);
        let delete = TableWrite { kind: WriteKind::Delete, ..update };
        assert_eq!(delete.index_share(&[2], 1.0), 0.0);
    }
}
