//! SQL surface of hypothetical indexes: `pitstop.hypo_create`, `hypo_list`, `hypo_drop`,
//! `hypo_reset`, `hypo_size`, `hypo_hide`, `hypo_unhide`.

use crate::error::{required, OrReport, PitstopError};
use crate::pg::hypo_index::{self, HypoDescription, HypoIndex};
use crate::pg::role::ActingRole;
use crate::pg::{planning, spi, subxact};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;
use pitstop_core::ident::quote_ident;
use std::collections::HashMap;

/// Average widths and n_distinct of the table's columns from pg_stats (when analyzed).
fn column_statistics(relid: pg_sys::Oid) -> ColumnStatistics {
    spi::connect(|client| {
        let Ok(table) = client.select(
            include_str!("../../../sql/queries/column_statistics.sql"),
            None,
            &[relid.into()],
        ) else {
            return HashMap::new();
        };
        table
            .filter_map(|row| {
                let attnum: i16 = spi::column(&row, "attnum")?;
                Some((attnum, (spi::column(&row, "avg_width"), spi::column(&row, "n_distinct"))))
            })
            .collect()
    })
}

fn fill_statistics(index: &mut HypoDescription, stats: &ColumnStatistics) {
    index.column_widths = index
        .attnums
        .iter()
        .zip(&index.column_types)
        .map(|(attnum, (type_oid, typmod))| {
            stats
                .get(attnum)
                .and_then(|(width, _)| *width)
                .filter(|w| *w > 0.0)
                .unwrap_or_else(|| hypo_index::type_width(*type_oid, *typmod))
        })
        .collect();
    index.key_ndistinct = index.attnums[..index.key_columns]
        .iter()
        .map(|attnum| stats.get(attnum).and_then(|(_, n)| *n))
        .collect();
}

type ColumnStatistics = HashMap<i16, (Option<f64>, Option<f64>)>;

/// What a hypothetical index's size and costs are estimated from, of its table.
struct TableFacts {
    stats: ColumnStatistics,
    /// Rows and pages (`table_size`).
    rows: f64,
    pages: f64,
}

impl TableFacts {
    fn read(relid: pg_sys::Oid) -> TableFacts {
        let (rows, pages) = table_size(relid);
        TableFacts { stats: column_statistics(relid), rows, pages }
    }
}

/// Per table, its facts read once: the advisor prepares hundreds of candidates on a few
/// tables, and nothing it does changes them meanwhile. Read outside any subtransaction, as
/// `hypo_size` reads them: read inside the candidate's rolled-back subtransaction, a table
/// created and analyzed earlier in the same transaction came back with no rows (a #[pg_test]).
#[derive(Default)]
pub struct Tables {
    facts: HashMap<pg_sys::Oid, TableFacts>,
}

impl Tables {
    fn of(&mut self, relid: pg_sys::Oid) -> &TableFacts {
        self.facts.entry(relid).or_insert_with(|| TableFacts::read(relid))
    }

    /// `size_bytes`, from the table's facts read once.
    pub fn size_bytes(&mut self, index: &HypoDescription) -> i64 {
        let facts = self.of(index.relid);
        estimated_bytes(index, facts.rows, facts.pages)
    }
}

/// The CREATE INDEX statement that builds this index for real.
pub fn ddl(index: &HypoDescription, table: &str) -> String {
    let column = |i: usize| {
        let name = &index.column_names[i];
        let mut text = if index.attnums[i] == 0 { format!("({name})") } else { quote_ident(name) };
        if i < index.key_columns {
            if index.descending[i] {
                text.push_str(" DESC");
            }
            if index.nulls_first[i] != index.descending[i] {
                text.push_str(if index.nulls_first[i] { " NULLS FIRST" } else { " NULLS LAST" });
            }
        }
        text
    };
    let keys: Vec<String> = (0..index.key_columns).map(column).collect();
    let includes: Vec<String> = (index.key_columns..index.attnums.len()).map(column).collect();
    // A partitioned table refuses CONCURRENTLY.
    let concurrently = if hypo_index::is_partitioned(index.relid) { "" } else { " CONCURRENTLY" };
    let mut sql = format!(
        "CREATE {}INDEX{concurrently} ON {table}{} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if index.am_name == "btree" { String::new() } else { format!(" USING {}", index.am_name) },
        keys.join(", ")
    );
    if !includes.is_empty() {
        sql.push_str(&format!(" INCLUDE ({})", includes.join(", ")));
    }
    if let Some(predicate) = &index.predicate_sql {
        sql.push_str(&format!(" WHERE {predicate}"));
    }
    sql
}

/// Creates a hypothetical index from a CREATE INDEX statement and returns its OID.
/// Only this session sees it, only in plain EXPLAIN and the advisor.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_create(ddl: Option<&str>) -> pg_sys::Oid {
    let ddl = required(ddl, "ddl").or_report();
    hypo_index::register(prepare(ddl, &ActingRole::caller()).or_report()).or_report()
}

/// A hypothetical index from its DDL, with the statistics its size and costs are estimated
/// from (not registered: the advisor plans with its own). Whatever the DDL's expressions and
/// predicate evaluate runs as `role`, in a restricted security context.
pub fn prepare(ddl: &str, role: &ActingRole) -> Result<HypoIndex, PitstopError> {
    let mut index = subxact::rolled_back(|| role.run(|| hypo_index::parse_create_index(ddl)))?;
    let facts = TableFacts::read(index.desc.relid);
    complete(&mut index, &facts, role);
    Ok(index)
}

/// `prepare` for the advisor, with the table facts read once per table: None when the DDL
/// cannot be prepared (an error inside is rolled back and the candidate left out).
pub fn prepare_for_advice(ddl: &str, role: &ActingRole, tables: &mut Tables) -> Option<HypoIndex> {
    let mut index =
        subxact::try_rolled_back(|| role.run(|| hypo_index::parse_create_index(ddl))).ok()?.ok()?;
    let facts = tables.of(index.desc.relid);
    complete(&mut index, facts, role);
    Some(index)
}

/// Column statistics, and of a partial index the share of rows its predicate covers.
fn complete(index: &mut HypoIndex, facts: &TableFacts, role: &ActingRole) {
    fill_statistics(&mut index.desc, &facts.stats);
    if let Some(predicate) = index.desc.predicate_sql.clone() {
        if facts.rows > 0.0 {
            index.desc.covered_fraction =
                (covered_rows(index.desc.relid, &predicate, facts.rows, role) / facts.rows)
                    .clamp(0.0, 1.0);
        }
    }
}

/// Row count and page count of a table, as the planner would start from; of a partitioned
/// table, summed over its partitions (an index on it is built on each).
fn table_size(relid: pg_sys::Oid) -> (f64, f64) {
    spi::connect(|client| {
        client
            .select(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 AS reltuples,
                        coalesce(sum(c.relpages), 0)::float8 AS relpages
                   FROM (SELECT $1::oid AS relid UNION SELECT relid FROM pg_catalog.pg_partition_tree($1) WHERE isleaf) t
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid AND c.relkind <> 'p'",
                Some(1),
                &[relid.into()],
            )
            .ok()
            .and_then(|mut t| t.next())
            .map(|row| {
                let read = |name: &str| spi::column::<f64>(&row, name).unwrap_or(0.0);
                (read("reltuples"), read("relpages"))
            })
            .unwrap_or((0.0, 0.0))
    })
}

/// Rows a partial index covers: the planner's estimate for its predicate, planned as `role`.
fn covered_rows(relid: pg_sys::Oid, predicate: &str, table_rows: f64, role: &ActingRole) -> f64 {
    let statement = format!("SELECT 1 FROM {} WHERE {predicate}", qualified_table_name(relid));
    planning::plan(&statement, role, &[], false)
        .map(|p| p.rows)
        .unwrap_or(table_rows)
        .min(table_rows)
}

/// `schema.table`, quoted, whatever the search_path.
fn qualified_table_name(relid: pg_sys::Oid) -> String {
    spi::connect(|client| {
        spi::select_one(
            client,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[relid.into()],
        )
    })
    .unwrap_or_default()
}

fn table_name(relid: pg_sys::Oid) -> String {
    spi::connect(|client| spi::select_one(client, "SELECT $1::regclass::text", &[relid.into()]))
        .unwrap_or_default()
}

pub fn size_bytes(index: &HypoDescription) -> i64 {
    let (rows, pages) = table_size(index.relid);
    estimated_bytes(index, rows, pages)
}

fn estimated_bytes(index: &HypoDescription, rows: f64, pages: f64) -> i64 {
    index.size_estimate(rows * index.covered_fraction, pages).bytes() as i64
}

/// Estimated size in bytes of a hypothetical index, from the table's current statistics.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_size(indexrelid: Option<pg_sys::Oid>) -> i64 {
    let oid = required(indexrelid, "indexrelid").or_report();
    let index = hypo_index::descriptions()
        .into_iter()
        .find(|h| h.oid == oid)
        .unwrap_or_else(|| PitstopError::UnknownHypoIndex(oid.to_u32()).report());
    size_bytes(&index)
}

/// This session's hypothetical indexes.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn hypo_list() -> TableIterator<
    'static,
    (
        name!(indexrelid, pg_sys::Oid),
        name!(index_name, String),
        name!(table_name, String),
        name!(access_method, String),
        name!(estimated_bytes, i64),
        name!(ddl, String),
    ),
> {
    let rows: Vec<_> = hypo_index::descriptions()
        .iter()
        .map(|h| {
            let table = table_name(h.relid);
            (h.oid, h.name.clone(), table.clone(), h.am_name.clone(), size_bytes(h), ddl(h, &table))
        })
        .collect();
    TableIterator::new(rows)
}

/// Removes one hypothetical index; false when it does not exist.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_drop(indexrelid: Option<pg_sys::Oid>) -> bool {
    hypo_index::remove(required(indexrelid, "indexrelid").or_report())
}

/// Removes every hypothetical index of this session and unhides hidden indexes.
/// Returns how many hypothetical indexes were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_reset() -> i64 {
    for oid in hypo_index::hidden() {
        hypo_index::unhide(oid);
    }
    hypo_index::clear() as i64
}

fn require_index(index: Option<PgRelation>) -> pg_sys::Oid {
    let relation = required(index, "index").or_report();
    if !relation.is_index() {
        PitstopError::NotAnIndex(relation.name().to_string()).report();
    }
    relation.oid()
}

/// Hides a real index from plain EXPLAIN and the advisor in this session (to see the plans
/// without it); true if it was not hidden already. Real execution still uses it.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_hide(index: Option<PgRelation>) -> bool {
    hypo_index::hide(require_index(index))
}

/// Undoes `hypo_hide`; true if the index was hidden.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_unhide(index: Option<PgRelation>) -> bool {
    hypo_index::unhide(require_index(index))
}

/// Real indexes hidden in this session.
#[pg_extern(volatile, parallel_unsafe)]
fn hypo_hidden() -> SetOfIterator<'static, pg_sys::Oid> {
    SetOfIterator::new(hypo_index::hidden())
}
