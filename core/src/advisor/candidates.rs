//! Candidate indexes from table usage: single columns, equality-first composites, orderings
//! (ORDER BY, and GROUP BY through the planner's wanted ordering) with their direction,
//! covering (INCLUDE) variants, partial indexes on selective literal predicates, expression
//! keys for immutable expressions the query filters, joins or groups on, and one index on a
//! partitioned table rather than one per partition; BRIN on large append-mostly tables whose
//! filtered column follows the rows' physical order. Existing indexes that already cover a
//! candidate remove it. Pure: no catalog.

use crate::advisor::size::{AccessMethod, BRIN_PAGES_PER_RANGE};
use crate::advisor::usage::{ColumnFilter, Restriction, SortKey, TableUsage};
use crate::ident::quote_ident;
use std::collections::{BTreeMap, BTreeSet};

/// More key columns rarely pay for their size.
const MAX_KEY_COLUMNS: usize = 4;
/// A covering variant only when it adds few columns.
const MAX_INCLUDE_COLUMNS: usize = 4;
/// A partial index on `col = literal` only when the literal keeps at most this share of rows.
const PARTIAL_MAX_SELECTIVITY: f64 = 0.2;
/// A BRIN only on a table of at least this many pages (32 MB, 32 block ranges): below that a
/// btree is small too and a sequential scan cheap.
pub const BRIN_MIN_PAGES: f64 = 4096.0;
/// ... whose filtered column's |pg_stats.correlation| is at least this: the column's values
/// then rise (or fall) with the rows' physical position, so each block range holds a narrow
/// span of them and a filter skips most ranges. At 0.9 a range's span is still a small share
/// of the column's; lower, ranges overlap until a filter matches most of them.
pub const BRIN_MIN_CORRELATION: f64 = 0.9;
/// ... and whose updates and deletes are at most this share of its inserts (append-mostly): a
/// non-HOT update moves its row to wherever there is room and deletes leave room that later
/// inserts fill, so churn scatters the values and widens every range's summary.
pub const BRIN_MAX_CHURN: f64 = 0.1;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyColumn {
    /// The column, or for an expression the first column it reads.
    pub attnum: i16,
    pub name: String,
    pub descending: bool,
    pub nulls_first: bool,
    pub opclass: Option<String>,
    /// An immutable expression over the table (as the server deparsed it) indexed instead
    /// of the column.
    pub expression: Option<String>,
}

impl KeyColumn {
    fn plain(usage: &TableUsage, attnum: i16) -> Self {
        KeyColumn {
            attnum,
            name: usage.name(attnum).to_string(),
            descending: false,
            nulls_first: false,
            opclass: None,
            expression: None,
        }
    }

    fn of_expression(usage: &TableUsage, attnum: i16, expression: &Option<String>) -> Self {
        KeyColumn { expression: expression.clone(), ..Self::plain(usage, attnum) }
    }

    /// The key as pg_index.indkey numbers it: the column, 0 for an expression.
    pub fn indkey(&self) -> i16 {
        if self.expression.is_some() {
            0
        } else {
            self.attnum
        }
    }

    /// What makes two keys the same key: the column or the expression.
    fn identity(&self) -> (i16, Option<&str>) {
        (self.attnum, self.expression.as_deref())
    }

    fn sql(&self) -> String {
        // CREATE INDEX takes an expression in parentheses; the deparser quoted its names.
        let mut text = match &self.expression {
            Some(expression) => format!("({expression})"),
            None => quote_ident(&self.name),
        };
        if let Some(opclass) = &self.opclass {
            text.push(' ');
            text.push_str(opclass);
        }
        if self.descending {
            text.push_str(" DESC");
        }
        if self.nulls_first != self.descending {
            text.push_str(if self.nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
        }
        text
    }
}

/// One index the advisor may suggest: a btree, or a BRIN on one column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate {
    pub relid: u32,
    pub table: String,
    pub keys: Vec<KeyColumn>,
    pub include: Vec<(i16, String)>,
    pub predicate: Option<String>,
    /// On a partitioned table: the index cascades to every partition.
    pub partitioned: bool,
    pub am: AccessMethod,
}

impl Candidate {
    /// The statement that builds it. A partitioned table refuses CONCURRENTLY: the plain
    /// statement builds every partition's index under a lock that blocks writes (the purpose
    /// says how to build it without).
    pub fn ddl(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(KeyColumn::sql).collect();
        let concurrently = if self.partitioned { "" } else { " CONCURRENTLY" };
        let using = if self.am == AccessMethod::Brin { " USING brin" } else { "" };
        let mut sql =
            format!("CREATE INDEX{concurrently} ON {}{using} ({})", self.table, keys.join(", "));
        if !self.include.is_empty() {
            let include: Vec<String> =
                self.include.iter().map(|(_, name)| quote_ident(name)).collect();
            sql.push_str(&format!(" INCLUDE ({})", include.join(", ")));
        }
        if let Some(predicate) = &self.predicate {
            sql.push_str(&format!(" WHERE {predicate}"));
        }
        sql
    }

    /// Same table, keys and predicate as `other` (the INCLUDE lists, or the access method, may
    /// differ): one index on a key is enough.
    pub fn same_key(&self, other: &Candidate) -> bool {
        self.relid == other.relid && self.keys == other.keys && self.predicate == other.predicate
    }

    /// Whether this index can do `other`'s job as well: same table and predicate, `other`'s
    /// keys lead this one and every column `other` carries is here. A btree led by a BRIN's
    /// column does its job (and more); a BRIN does no btree's.
    pub fn supersedes(&self, other: &Candidate) -> bool {
        if self.am == AccessMethod::Brin {
            return false;
        }
        if other.am == AccessMethod::Brin {
            return self.relid == other.relid
                && self.predicate == other.predicate
                && self.keys.first() == other.keys.first();
        }
        self != other
            && self.relid == other.relid
            && self.predicate == other.predicate
            && other.keys.len() <= self.keys.len()
            && other.keys.iter().zip(&self.keys).all(|(a, b)| a == b)
            && other.include.iter().all(|(a, _)| {
                self.keys.iter().any(|k| k.identity() == (*a, None))
                    || self.include.iter().any(|(i, _)| i == a)
            })
    }

    /// Share of a btree's maintenance this index costs per row written: a BRIN writes a block
    /// range's summary once (when a vacuum summarizes the range, or a row lands in a range
    /// already summarized), not once per row, and a range holds at least one row per page.
    pub fn write_share(&self) -> f64 {
        match self.am {
            AccessMethod::Brin => 1.0 / BRIN_PAGES_PER_RANGE,
            _ => 1.0,
        }
    }

    /// What the index is for, in a few words.
    pub fn purpose(&self) -> String {
        let names =
            |keys: &[KeyColumn]| keys.iter().map(KeyColumn::sql).collect::<Vec<_>>().join(", ");
        if self.am == AccessMethod::Brin {
            return format!(
                "brin on ({}): one min/max summary per {BRIN_PAGES_PER_RANGE} table pages, a tiny index; \
                 the table is appended in this column's order (pg_stats correlation ≥ {BRIN_MIN_CORRELATION}, \
                 few updates or deletes), so a filter on it reads only the block ranges that can match",
                names(&self.keys)
            );
        }
        let mut parts = vec![format!("btree on ({})", names(&self.keys))];
        if !self.include.is_empty() {
            parts.push("covering the columns read (index-only scan)".to_string());
        }
        if let Some(predicate) = &self.predicate {
            parts.push(format!("only rows where {predicate}"));
        }
        if self.keys.iter().any(|k| k.expression.is_some()) {
            parts.push(
                "on the expression the query uses (a plain index on its column cannot serve it)"
                    .to_string(),
            );
        }
        if self.partitioned {
            parts.push(format!(
                "on the partitioned table: builds one index per partition under a write-blocking lock; without it: \
                 CREATE INDEX ON ONLY {table} …, then CREATE INDEX CONCURRENTLY on each partition and \
                 ALTER INDEX … ATTACH PARTITION each",
                table = self.table
            ));
        }
        parts.join(", ")
    }
}

/// One covering index per group of candidates with the same keys and predicate but
/// different INCLUDE lists, carrying all their columns: one index can then serve every
/// query the variants serve, instead of one near-duplicate per query.
pub fn merged_covering(candidates: &std::collections::BTreeSet<Candidate>) -> Vec<Candidate> {
    type Group<'a> = (u32, &'a [KeyColumn], &'a Option<String>);
    let mut groups: std::collections::BTreeMap<Group<'_>, Vec<&Candidate>> = Default::default();
    for c in candidates.iter().filter(|c| !c.include.is_empty()) {
        groups.entry((c.relid, &c.keys, &c.predicate)).or_default().push(c);
    }
    groups
        .into_values()
        .filter(|variants| variants.len() > 1)
        .filter_map(|variants| {
            let include: std::collections::BTreeMap<i16, String> =
                variants.iter().flat_map(|v| v.include.iter().cloned()).collect();
            (include.len() <= 2 * MAX_INCLUDE_COLUMNS).then(|| Candidate {
                include: include.into_iter().collect(),
                ..variants[0].clone()
            })
        })
        .collect()
}

/// A real index of the table, as far as coverage is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingIndex {
    pub relid: u32,
    /// None for an access method the advisor does not suggest (GiST, GIN, …).
    pub am: Option<AccessMethod>,
    pub partial: bool,
    /// Key columns and their DESC flags; 0 for an expression, and for a column under another
    /// operator class or collation than the ones a candidate's key would get.
    pub keys: Vec<(i16, bool)>,
    pub include: Vec<i16>,
}

impl ExistingIndex {
    /// Whether this index already does what `candidate` would: a btree whose leading keys are
    /// the candidate's in a compatible order (or all reversed) and that carries every column it
    /// would, with no predicate; for a BRIN candidate also a BRIN led by its column (whatever
    /// its pages_per_range: the advisor only offers the default).
    pub fn covers(&self, candidate: &Candidate) -> bool {
        let usable = match self.am {
            Some(AccessMethod::Btree) => true,
            Some(AccessMethod::Brin) => candidate.am == AccessMethod::Brin,
            _ => false,
        };
        if self.relid != candidate.relid
            || !usable
            || self.partial
            || candidate.keys.len() > self.keys.len()
        {
            return false;
        }
        // Operator classes and expressions are not compared: such candidates are weighed (an
        // index that exists already brings them no benefit).
        if candidate.keys.iter().any(|k| k.opclass.is_some() || k.expression.is_some()) {
            return false;
        }
        let same = candidate
            .keys
            .iter()
            .zip(&self.keys)
            .all(|(k, (a, d))| k.attnum == *a && k.descending == *d);
        let reversed = candidate
            .keys
            .iter()
            .zip(&self.keys)
            .all(|(k, (a, d))| k.attnum == *a && k.descending != *d);
        if !same && !reversed {
            return false;
        }
        let here: BTreeSet<i16> =
            self.keys.iter().map(|(a, _)| *a).chain(self.include.iter().copied()).collect();
        candidate.include.iter().all(|(a, _)| here.contains(a))
    }
}

/// Every candidate one query's use of one table suggests, each with why it was proposed.
pub fn for_usage(usage: &TableUsage) -> Vec<Candidate> {
    let mut equality: Vec<_> =
        usage.filters.iter().filter(|f| f.restriction == Restriction::Equality).collect();
    equality.sort_by(|a, b| a.selectivity.total_cmp(&b.selectivity));
    let mut seen: BTreeSet<(i16, Option<String>)> = BTreeSet::new();
    equality.retain(|f| seen.insert((f.attnum, f.expression.clone())));
    let ranges: Vec<_> = usage
        .filters
        .iter()
        .filter(|f| {
            f.restriction != Restriction::Equality
                && !seen.contains(&(f.attnum, f.expression.clone()))
        })
        .collect();

    let key = |attnum| KeyColumn::plain(usage, attnum);
    let filter_key = |f: &ColumnFilter| KeyColumn {
        opclass: f.opclass.clone(),
        ..KeyColumn::of_expression(usage, f.attnum, &f.expression)
    };
    let equality_keys: Vec<KeyColumn> = equality.iter().map(|f| filter_key(f)).collect();
    let joins: Vec<KeyColumn> = usage
        .join_columns
        .iter()
        .map(|a| key(*a))
        .chain(
            usage
                .join_expressions
                .iter()
                .map(|(a, e)| KeyColumn::of_expression(usage, *a, &Some(e.clone()))),
        )
        .collect();
    let mut keysets: Vec<Vec<KeyColumn>> = Vec::new();

    // Single columns: every filtered or joined column or expression.
    for f in &usage.filters {
        keysets.push(vec![filter_key(f)]);
    }
    for k in &joins {
        keysets.push(vec![k.clone()]);
    }
    // Equality columns first (most selective leading), then one range or the ordering.
    if equality_keys.len() > 1 {
        keysets.push(equality_keys.clone());
    }
    for range in &ranges {
        keysets.push(with(&equality_keys, [filter_key(range)]));
    }
    // The wanted ordering (ORDER BY, or GROUP BY: a grouping in index order needs no sort or
    // hash), after the equality columns.
    if !usage.order_by.is_empty() {
        let order: Vec<KeyColumn> = usage
            .order_by
            .iter()
            .filter(|s| !seen.contains(&(s.attnum, s.expression.clone())))
            .map(|s: &SortKey| KeyColumn {
                descending: s.descending,
                nulls_first: s.nulls_first,
                ..KeyColumn::of_expression(usage, s.attnum, &s.expression)
            })
            .collect();
        keysets.push(with(&equality_keys, order));
    }
    // A join key after the equality columns serves a parameterised inner index scan.
    for k in &joins {
        if !equality_keys.is_empty() && !seen.contains(&(k.attnum, k.expression.clone())) {
            keysets.push(with(&equality_keys, [k.clone()]));
        }
    }

    let mut candidates: Vec<Candidate> = Vec::new();
    for keys in keysets {
        let keys: Vec<KeyColumn> = dedup_keys(keys);
        if keys.is_empty() {
            continue;
        }
        let plain = Candidate {
            relid: usage.relid,
            table: usage.table.clone(),
            keys,
            include: vec![],
            predicate: None,
            partitioned: usage.partitioned,
            am: AccessMethod::Btree,
        };
        if let Some(covering) = covering_variant(usage, &plain) {
            candidates.push(covering);
        }
        candidates.push(plain);
    }
    candidates.extend(partial_candidates(usage, &equality_keys, &ranges));
    let mut unique = BTreeSet::new();
    candidates.retain(|c| unique.insert(c.clone()));
    candidates
}

/// Rows a table saw written since its statistics were last reset (pg_stat_all_tables).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteCounts {
    pub inserted: f64,
    pub updated: f64,
    pub deleted: f64,
}

/// How a table is laid out and written: what decides whether a BRIN index suits it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableLayout {
    /// Heap pages.
    pub pages: f64,
    /// None when the table has no write counters (never written since a statistics reset, or
    /// restored from a dump): the columns' correlation then decides alone.
    pub writes: Option<WriteCounts>,
    /// pg_stats.correlation of each analyzed column (-1 to 1).
    pub correlation: BTreeMap<i16, f64>,
}

impl TableLayout {
    /// Whether a BRIN index on `attnum` would skip most of the table for a selective filter:
    /// a large table, appended in that column's order.
    pub fn suits_brin(&self, attnum: i16) -> bool {
        let append_mostly =
            self.writes.is_none_or(|w| w.updated + w.deleted <= BRIN_MAX_CHURN * w.inserted);
        self.pages >= BRIN_MIN_PAGES
            && append_mostly
            && self.correlation.get(&attnum).is_some_and(|c| c.abs() >= BRIN_MIN_CORRELATION)
    }
}

/// BRIN candidates for one query's use of one table: one per column it filters by equality
/// or range when the table's layout suits a BRIN on it. Not on a partitioned table (its
/// partitions' layouts are not the parent's statistics) nor on expressions (no correlation).
pub fn brin_for_usage(usage: &TableUsage, layout: &TableLayout) -> Vec<Candidate> {
    if usage.partitioned {
        return Vec::new();
    }
    let columns: BTreeSet<i16> = usage
        .filters
        .iter()
        .filter(|f| {
            matches!(f.restriction, Restriction::Equality | Restriction::Range)
                && f.expression.is_none()
                && layout.suits_brin(f.attnum)
        })
        .map(|f| f.attnum)
        .collect();
    columns
        .into_iter()
        .map(|attnum| Candidate {
            relid: usage.relid,
            table: usage.table.clone(),
            keys: vec![KeyColumn::plain(usage, attnum)],
            include: vec![],
            predicate: None,
            partitioned: false,
            am: AccessMethod::Brin,
        })
        .collect()
}

/// Why a statement gets no expression index where its expressions have `$n` parameters for
/// their constants (as pg_stat_statements records them), or None when none has.
pub fn parameterized_reason(usage: &[TableUsage]) -> Option<String> {
    let named: Vec<String> = usage
        .iter()
        .flat_map(|u| u.parameterized.iter().map(move |e| format!("{e} on {}", u.table)))
        .collect();
    let (its, has) = match named.len() {
        0 => return None,
        1 => ("its expression", "has"),
        _ => ("its expressions", "have"),
    };
    Some(format!(
        "{its} {} {has} constants that pg_stat_statements replaced by parameters ($n), and an \
         index holds an expression with its constants: advise the statement's literal text \
         with queries => ARRAY['…']",
        named.join(", ")
    ))
}

fn with(prefix: &[KeyColumn], rest: impl IntoIterator<Item = KeyColumn>) -> Vec<KeyColumn> {
    prefix.iter().cloned().chain(rest).collect()
}

/// First occurrence of each column or expression wins; at most `MAX_KEY_COLUMNS`.
fn dedup_keys(keys: Vec<KeyColumn>) -> Vec<KeyColumn> {
    let mut seen = BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert((k.attnum, k.expression.clone())))
        .take(MAX_KEY_COLUMNS)
        .collect()
}

/// The same keys plus INCLUDE columns for everything else the query reads, when that is a
/// handful of plain columns (an index-only scan then needs no heap visits). The columns an
/// expression key reads are carried too: the planner checks the query's columns, not its
/// expressions, when it considers an index-only scan.
fn covering_variant(usage: &TableUsage, plain: &Candidate) -> Option<Candidate> {
    let needed = usage.needed_columns.as_ref()?;
    let rest: Vec<(i16, String)> = needed
        .iter()
        .filter(|a| !plain.keys.iter().any(|k| k.identity() == (**a, None)))
        .map(|a| (*a, usage.name(*a).to_string()))
        .collect();
    (!rest.is_empty() && rest.len() <= MAX_INCLUDE_COLUMNS)
        .then(|| Candidate { include: rest, ..plain.clone() })
}

/// For a selective `col = literal`: the other useful keys, only over the rows it keeps.
fn partial_candidates(
    usage: &TableUsage,
    equality_keys: &[KeyColumn],
    ranges: &[&crate::advisor::usage::ColumnFilter],
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for filter in &usage.filters {
        let Some(predicate) = &filter.literal_predicate else { continue };
        if filter.restriction != Restriction::Equality
            || filter.selectivity > PARTIAL_MAX_SELECTIVITY
        {
            continue;
        }
        let mut keys: Vec<KeyColumn> = equality_keys
            .iter()
            .filter(|k| k.identity() != (filter.attnum, filter.expression.as_deref()))
            .cloned()
            .collect();
        keys.extend(ranges.iter().take(1).map(|r| KeyColumn {
            opclass: r.opclass.clone(),
            ..KeyColumn::of_expression(usage, r.attnum, &r.expression)
        }));
        if keys.is_empty() {
            keys.extend(usage.order_by.iter().map(|s| KeyColumn {
                descending: s.descending,
                nulls_first: s.nulls_first,
                ..KeyColumn::of_expression(usage, s.attnum, &s.expression)
            }));
        }
        if keys.is_empty() {
            keys.extend(usage.join_columns.first().map(|a| KeyColumn::plain(usage, *a)));
        }
        let keys = dedup_keys(keys);
        if keys.is_empty() {
            continue;
        }
        out.push(Candidate {
            relid: usage.relid,
            table: usage.table.clone(),
            keys,
            include: vec![],
            predicate: Some(predicate.clone()),
            partitioned: usage.partitioned,
            am: AccessMethod::Btree,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn usage(
        filters: Vec<ColumnFilter>,
        order_by: Vec<SortKey>,
        joins: Vec<i16>,
        needed: Option<Vec<i16>>,
    ) -> TableUsage {
        let names: BTreeMap<i16, String> = [
            (1, "id"),
            (2, "customer_id"),
            (3, "status"),
            (4, "created_at"),
            (5, "total"),
            (6, "Note"),
        ]
        .into_iter()
        .map(|(a, n)| (a, n.to_string()))
        .collect();
        TableUsage {
            relid: 42,
            table: "public.orders".into(),
            table_rows: 1e6,
            rows_kept: 10.0,
            filters,
            join_columns: joins,
            order_by,
            needed_columns: needed,
            column_names: names,
            join_expressions: vec![],
            partitioned: false,
            parameterized: vec![],
        }
    }

    fn filter(attnum: i16, restriction: Restriction, selectivity: f64) -> ColumnFilter {
        ColumnFilter {
            attnum,
            restriction,
            selectivity,
            literal_predicate: None,
            opclass: None,
            expression: None,
        }
    }

    fn ddls(candidates: &[Candidate]) -> Vec<String> {
        candidates.iter().map(Candidate::ddl).collect()
    }

    #[test]
    fn equality_columns_lead_most_selective_first_then_range() {
        let u = usage(
            vec![
                filter(3, Restriction::Equality, 0.2),
                filter(4, Restriction::Range, 0.1),
                filter(2, Restriction::Equality, 0.001),
            ],
            vec![],
            vec![],
            None,
        );
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(
                &"CREATE INDEX CONCURRENTLY ON public.orders (customer_id, status)".to_string()
            ),
            "{all:?}"
        );
        assert!(all.contains(
            &"CREATE INDEX CONCURRENTLY ON public.orders (customer_id, status, created_at)"
                .to_string()
        ));
        assert!(
            all.contains(&"CREATE INDEX CONCURRENTLY ON public.orders (created_at)".to_string())
        );
        assert!(!all.iter().any(|d| d.contains("(created_at, customer_id")));
    }

    #[test]
    fn ordering_keeps_direction_after_equality() {
        let u = usage(
            vec![filter(2, Restriction::Equality, 0.001)],
            vec![SortKey { attnum: 4, descending: true, nulls_first: true, expression: None }],
            vec![],
            None,
        );
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(
                &"CREATE INDEX CONCURRENTLY ON public.orders (customer_id, created_at DESC)"
                    .to_string()
            ),
            "{all:?}"
        );
    }

    #[test]
    fn covering_variant_includes_what_the_query_reads_and_quotes_names() {
        let u = usage(
            vec![filter(2, Restriction::Equality, 0.001)],
            vec![],
            vec![],
            Some(vec![2, 5, 6]),
        );
        let all = ddls(&for_usage(&u));
        assert!(all.contains(&r#"CREATE INDEX CONCURRENTLY ON public.orders (customer_id) INCLUDE (total, "Note")"#.to_string()), "{all:?}");
        let too_wide = usage(
            vec![filter(2, Restriction::Equality, 0.001)],
            vec![],
            vec![],
            Some(vec![1, 2, 3, 4, 5, 6]),
        );
        assert!(!ddls(&for_usage(&too_wide)).iter().any(|d| d.contains("INCLUDE")));
        let uncoverable =
            usage(vec![filter(2, Restriction::Equality, 0.001)], vec![], vec![], None);
        assert!(!ddls(&for_usage(&uncoverable)).iter().any(|d| d.contains("INCLUDE")));
    }

    #[test]
    fn partial_index_only_for_selective_literals() {
        let mut status = filter(3, Restriction::Equality, 0.01);
        status.literal_predicate = Some("status = 'open'".into());
        let u =
            usage(vec![status.clone(), filter(4, Restriction::Range, 0.3)], vec![], vec![], None);
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(
                &"CREATE INDEX CONCURRENTLY ON public.orders (created_at) WHERE status = 'open'"
                    .to_string()
            ),
            "{all:?}"
        );
        status.selectivity = 0.5;
        let broad = usage(vec![status, filter(4, Restriction::Range, 0.3)], vec![], vec![], None);
        assert!(!ddls(&for_usage(&broad)).iter().any(|d| d.contains("WHERE")));
    }

    #[test]
    fn like_prefix_uses_its_operator_class() {
        let mut like = filter(6, Restriction::LikePrefix, 0.01);
        like.opclass = Some("text_pattern_ops".into());
        let all = ddls(&for_usage(&usage(vec![like], vec![], vec![], None)));
        assert_eq!(
            all,
            vec![r#"CREATE INDEX CONCURRENTLY ON public.orders ("Note" text_pattern_ops)"#
                .to_string()]
        );
    }

    #[test]
    fn join_keys_alone_and_after_equality() {
        let u = usage(vec![filter(3, Restriction::Equality, 0.05)], vec![], vec![2], None);
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(&"CREATE INDEX CONCURRENTLY ON public.orders (customer_id)".to_string())
        );
        assert!(
            all.contains(
                &"CREATE INDEX CONCURRENTLY ON public.orders (status, customer_id)".to_string()
            ),
            "{all:?}"
        );
    }

    #[test]
    fn covering_variants_with_the_same_keys_merge_into_one() {
        let a = for_usage(&usage(
            vec![filter(2, Restriction::Equality, 0.001)],
            vec![],
            vec![],
            Some(vec![2, 5]),
        ));
        let b = for_usage(&usage(
            vec![filter(2, Restriction::Equality, 0.001)],
            vec![],
            vec![],
            Some(vec![2, 6]),
        ));
        let all: std::collections::BTreeSet<Candidate> = a.into_iter().chain(b).collect();
        let merged = merged_covering(&all);
        assert_eq!(ddls(&merged), vec![r#"CREATE INDEX CONCURRENTLY ON public.orders (customer_id) INCLUDE (total, "Note")"#.to_string()]);
        assert!(all.iter().filter(|c| !c.include.is_empty()).all(|v| merged[0].supersedes(v)));
    }

    #[test]
    fn a_longer_index_supersedes_its_prefix_only() {
        let u = usage(
            vec![filter(2, Restriction::Equality, 0.001), filter(4, Restriction::Range, 0.1)],
            vec![],
            vec![],
            Some(vec![2, 4, 5]),
        );
        let all = for_usage(&u);
        let find = |ddl: &str| {
            all.iter().find(|c| c.ddl() == ddl).unwrap_or_else(|| panic!("{ddl}: {:?}", ddls(&all)))
        };
        let single = find("CREATE INDEX CONCURRENTLY ON public.orders (customer_id)");
        let composite =
            find("CREATE INDEX CONCURRENTLY ON public.orders (customer_id, created_at)");
        let covering = find(
            "CREATE INDEX CONCURRENTLY ON public.orders (customer_id) INCLUDE (created_at, total)",
        );
        assert!(composite.supersedes(single));
        assert!(!single.supersedes(composite));
        assert!(!single.supersedes(single));
        assert!(!composite.supersedes(covering), "total is not in the composite");
        assert!(covering.supersedes(single));
    }

    #[test]
    fn existing_index_covers_prefix_in_either_direction_but_not_other_columns() {
        let existing = ExistingIndex {
            relid: 42,
            am: Some(AccessMethod::Btree),
            partial: false,
            keys: vec![(2, false), (4, false)],
            include: vec![5],
        };
        let u =
            usage(vec![filter(2, Restriction::Equality, 0.001)], vec![], vec![], Some(vec![2, 5]));
        let candidates = for_usage(&u);
        assert!(candidates.iter().all(|c| existing.covers(c)), "{:?}", ddls(&candidates));
        let desc = Candidate {
            relid: 42,
            table: "t".into(),
            keys: vec![
                KeyColumn {
                    attnum: 2,
                    name: "customer_id".into(),
                    descending: true,
                    nulls_first: true,
                    opclass: None,
                    expression: None,
                },
                KeyColumn {
                    attnum: 4,
                    name: "created_at".into(),
                    descending: true,
                    nulls_first: true,
                    opclass: None,
                    expression: None,
                },
            ],
            include: vec![],
            predicate: None,
            partitioned: false,
            am: AccessMethod::Btree,
        };
        assert!(existing.covers(&desc), "a backward scan gives the reversed order");
        let mixed = Candidate {
            keys: vec![
                desc.keys[0].clone(),
                KeyColumn { descending: false, ..desc.keys[1].clone() },
            ],
            ..desc.clone()
        };
        assert!(!existing.covers(&mixed));
        let other_column = Candidate { include: vec![(6, "Note".into())], ..mixed.clone() };
        assert!(!existing.covers(&other_column));
        let partial_existing = ExistingIndex { partial: true, ..existing.clone() };
        assert!(!partial_existing.covers(&candidates[0]));
        let other_table = ExistingIndex { relid: 7, ..existing };
        assert!(!other_table.covers(&candidates[0]));
    }

    #[test]
    fn expressions_are_keys_in_parentheses_and_carry_their_columns_for_covering() {
        let mut lower = filter(6, Restriction::Equality, 0.0001);
        lower.expression = Some("lower(\"Note\")".into());
        let day = SortKey {
            attnum: 4,
            descending: false,
            nulls_first: false,
            expression: Some("date_trunc('day'::text, created_at)".into()),
        };
        let u = usage(
            vec![lower.clone(), filter(6, Restriction::Range, 0.5)],
            vec![day],
            vec![],
            Some(vec![5, 6]),
        );
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(
                &r#"CREATE INDEX CONCURRENTLY ON public.orders ((lower("Note")))"#.to_string()
            ),
            "{all:?}"
        );
        assert!(
            all.contains(&r#"CREATE INDEX CONCURRENTLY ON public.orders ("Note")"#.to_string()),
            "the column is its own key: {all:?}"
        );
        assert!(
            all.contains(&r#"CREATE INDEX CONCURRENTLY ON public.orders ((lower("Note")), (date_trunc('day'::text, created_at)))"#.to_string()),
            "{all:?}"
        );
        assert!(all.contains(&r#"CREATE INDEX CONCURRENTLY ON public.orders ((lower("Note"))) INCLUDE (total, "Note")"#.to_string()), "{all:?}");
        let existing = ExistingIndex {
            relid: 42,
            am: Some(AccessMethod::Btree),
            partial: false,
            keys: vec![(6, false)],
            include: vec![5],
        };
        let expression =
            for_usage(&u).into_iter().find(|c| c.keys[0].expression.is_some()).unwrap();
        assert!(
            !existing.covers(&expression),
            "an index on the column does not serve the expression"
        );
        assert!(expression.purpose().contains("expression"), "{}", expression.purpose());
    }

    #[test]
    fn join_expressions_are_candidates() {
        let mut u = usage(vec![filter(3, Restriction::Equality, 0.05)], vec![], vec![], None);
        u.join_expressions = vec![(6, "lower(\"Note\")".into())];
        let all = ddls(&for_usage(&u));
        assert!(
            all.contains(
                &r#"CREATE INDEX CONCURRENTLY ON public.orders ((lower("Note")))"#.to_string()
            ),
            "{all:?}"
        );
        assert!(
            all.contains(
                &r#"CREATE INDEX CONCURRENTLY ON public.orders (status, (lower("Note")))"#
                    .to_string()
            ),
            "{all:?}"
        );
        assert!(u.mentions(6));
    }

    #[test]
    fn a_partitioned_table_gets_one_index_without_concurrently_and_says_how_to_build_it_online() {
        let mut u = usage(vec![filter(2, Restriction::Equality, 0.001)], vec![], vec![], None);
        u.partitioned = true;
        let candidates = for_usage(&u);
        assert_eq!(
            ddls(&candidates),
            vec!["CREATE INDEX ON public.orders (customer_id)".to_string()]
        );
        let purpose = candidates[0].purpose();
        assert!(
            purpose.contains("CREATE INDEX ON ONLY public.orders")
                && purpose.contains("ATTACH PARTITION"),
            "{purpose}"
        );
    }

    fn layout(pages: f64, writes: Option<(f64, f64, f64)>, correlation: f64) -> TableLayout {
        TableLayout {
            pages,
            writes: writes.map(|(inserted, updated, deleted)| WriteCounts {
                inserted,
                updated,
                deleted,
            }),
            correlation: [(4, correlation), (6, correlation)].into_iter().collect(),
        }
    }

    #[test]
    fn expressions_with_parameters_are_named_in_the_reason() {
        let mut u = range_on_created_at();
        assert_eq!(parameterized_reason(std::slice::from_ref(&u)), None);
        u.parameterized = vec!["substr(\"Note\", $1, $2)".into()];
        assert_eq!(
            parameterized_reason(&[u.clone()]).unwrap(),
            "its expression substr(\"Note\", $1, $2) on public.orders has constants that \
             pg_stat_statements replaced by parameters ($n), and an index holds an expression \
             with its constants: advise the statement's literal text with queries => ARRAY['…']"
        );
        let other = TableUsage {
            table: "public.events".into(),
            parameterized: vec!["(data ->> $3)".into()],
            ..u.clone()
        };
        let both = parameterized_reason(&[u, other]).unwrap();
        assert!(
            both.starts_with(
                "its expressions substr(\"Note\", $1, $2) on public.orders, (data ->> $3) on \
                 public.events have constants"
            ),
            "{both}"
        );
    }

    fn range_on_created_at() -> TableUsage {
        usage(vec![filter(4, Restriction::Range, 0.01)], vec![], vec![], Some(vec![1, 4]))
    }

    #[test]
    fn brin_for_a_large_append_mostly_table_filtered_on_a_correlated_column() {
        let u = range_on_created_at();
        let appended = layout(100_000.0, Some((1e7, 1e5, 1e5)), 0.99);
        let brin = brin_for_usage(&u, &appended);
        assert_eq!(
            ddls(&brin),
            vec!["CREATE INDEX CONCURRENTLY ON public.orders USING brin (created_at)".to_string()]
        );
        assert!(brin[0].purpose().starts_with("brin on (created_at)"), "{}", brin[0].purpose());
        assert_eq!(brin[0].write_share(), 1.0 / 128.0, "one summary per range, not per row");
        assert!(for_usage(&u).iter().all(|c| c.write_share() == 1.0));
        // Falling values follow the order as well; equality filters too.
        assert_eq!(brin_for_usage(&u, &layout(100_000.0, None, -0.95)).len(), 1);
        let equality = usage(vec![filter(4, Restriction::Equality, 0.001)], vec![], vec![], None);
        assert_eq!(brin_for_usage(&equality, &appended).len(), 1);
        // The name is quoted as every key is.
        let mut note = u.clone();
        note.filters = vec![filter(6, Restriction::Range, 0.01)];
        assert_eq!(
            ddls(&brin_for_usage(&note, &appended)),
            vec![r#"CREATE INDEX CONCURRENTLY ON public.orders USING brin ("Note")"#.to_string()]
        );
    }

    #[test]
    fn no_brin_when_uncorrelated_small_churned_or_unanalyzed() {
        let u = range_on_created_at();
        let none = |l: TableLayout| brin_for_usage(&u, &l).is_empty();
        assert!(none(layout(100_000.0, None, 0.3)), "uncorrelated");
        assert!(none(layout(100_000.0, None, -0.89)), "below the threshold");
        assert!(none(layout(BRIN_MIN_PAGES - 1.0, None, 1.0)), "small table");
        assert!(!none(layout(BRIN_MIN_PAGES, None, 1.0)));
        assert!(none(layout(100_000.0, Some((1e6, 8e4, 3e4)), 1.0)), "update-heavy");
        assert!(!none(layout(100_000.0, Some((1e6, 6e4, 4e4)), 1.0)), "10 % churn is fine");
        assert!(none(layout(100_000.0, Some((0.0, 0.0, 5.0)), 1.0)), "deletes only");
        let unanalyzed = TableLayout { correlation: BTreeMap::new(), ..layout(1e5, None, 1.0) };
        assert!(none(unanalyzed), "no correlation known");
        // Not on a partitioned table, an expression or a LIKE prefix.
        let mut partitioned = u.clone();
        partitioned.partitioned = true;
        assert!(brin_for_usage(&partitioned, &layout(1e5, None, 1.0)).is_empty());
        let mut expression = filter(4, Restriction::Range, 0.01);
        expression.expression = Some("date_trunc('day'::text, created_at)".into());
        let mut like = filter(6, Restriction::LikePrefix, 0.01);
        like.opclass = Some("text_pattern_ops".into());
        let other = usage(vec![expression, like], vec![], vec![], None);
        assert!(brin_for_usage(&other, &layout(1e5, None, 1.0)).is_empty());
    }

    #[test]
    fn a_btree_on_the_column_does_a_brins_job_but_not_the_reverse() {
        let u = range_on_created_at();
        let brin = brin_for_usage(&u, &layout(1e5, None, 1.0)).remove(0);
        let btrees = for_usage(&u);
        let plain = btrees.iter().find(|c| c.include.is_empty()).unwrap();
        let covering = btrees.iter().find(|c| !c.include.is_empty()).unwrap();
        assert!(plain.same_key(&brin) && brin.same_key(plain), "one index per key");
        assert!(plain.supersedes(&brin) && covering.supersedes(&brin));
        assert!(!brin.supersedes(plain) && !brin.supersedes(covering));
        let other_column = Candidate {
            keys: vec![KeyColumn::plain(&u, 2), brin.keys[0].clone()],
            am: AccessMethod::Btree,
            ..brin.clone()
        };
        assert!(!other_column.supersedes(&brin), "led by another column");
        let existing = ExistingIndex {
            relid: 42,
            am: Some(AccessMethod::Btree),
            partial: false,
            keys: vec![(4, true)],
            include: vec![],
        };
        assert!(existing.covers(&brin), "a btree on the column already serves the filter");
        assert!(!ExistingIndex { keys: vec![(2, false), (4, false)], ..existing }.covers(&brin));
    }

    #[test]
    fn an_existing_brin_covers_a_brin_on_its_leading_column_and_no_btree() {
        let u = range_on_created_at();
        let brin = brin_for_usage(&u, &layout(1e5, None, 1.0)).remove(0);
        let existing = ExistingIndex {
            relid: 42,
            am: Some(AccessMethod::Brin),
            partial: false,
            keys: vec![(4, false)],
            include: vec![],
        };
        assert!(existing.covers(&brin), "a BRIN on the column exists already");
        assert!(for_usage(&u).iter().all(|c| !existing.covers(c)), "a BRIN does no btree's job");
        let led_by_other = ExistingIndex { keys: vec![(2, false), (4, false)], ..existing.clone() };
        assert!(!led_by_other.covers(&brin));
        assert!(!ExistingIndex { partial: true, ..existing.clone() }.covers(&brin));
        assert!(!ExistingIndex { relid: 7, ..existing.clone() }.covers(&brin));
        let gist = ExistingIndex { am: None, ..existing.clone() };
        assert!(!gist.covers(&brin), "another access method");
        let hash = ExistingIndex { am: Some(AccessMethod::Hash), ..existing };
        assert!(!hash.covers(&brin));
    }
}
