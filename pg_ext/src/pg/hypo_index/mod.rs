//! Hypothetical indexes: CREATE INDEX statements resolved against the catalog but never built,
//! kept in this backend's memory and offered to the planner through `get_relation_info_hook`
//! while a plain EXPLAIN (or the advisor) plans. Nothing is written to the catalog, so they
//! work on a standby, stay invisible to other sessions and vanish with the session.
//!
//! Planning with them is scoped: only the outermost planner call of a plain EXPLAIN (no
//! ANALYZE, not EXPLAIN EXECUTE) sees them, so no plan that uses one can ever be executed or
//! cached.
//!
//! `registry`: the backend's lists (created, hidden, offered by the advisor); `parse`: CREATE
//! INDEX text into a description and resolved catalog objects; `hooks`: the planner, utility
//! and EXPLAIN hooks that scope hypothetical planning; `index_info`: the planner's
//! IndexOptInfo built from a hypothetical index (what get_relation_info adds).

mod hooks;
mod index_info;
mod parse;
mod registry;

pub use hooks::planning_hypothetically;
pub use parse::parse_create_index;
pub use registry::{
    clear, descriptions, hidden, hide, offer_only, register, remove, unhide, unused_oid,
};

use pgrx::pg_sys;
use pitstop_core::advisor::size::{self, AccessMethod, IndexDefinition, SizeEstimate};
use std::ffi::{c_char, CStr};

/// What a hypothetical index is, as plain data (copied out of the registry freely).
#[derive(Clone, Debug)]
pub struct HypoDescription {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub relid: pg_sys::Oid,
    pub am: AccessMethod,
    pub am_name: String,
    /// Key columns come first, then INCLUDE columns.
    pub key_columns: usize,
    /// Per column: table attribute number, 0 for an expression.
    pub attnums: Vec<i16>,
    /// Per column: a display name (column name or deparsed expression).
    pub column_names: Vec<String>,
    /// Per column: the type of the indexed value and its typmod.
    pub column_types: Vec<(pg_sys::Oid, i32)>,
    pub descending: Vec<bool>,
    pub nulls_first: Vec<bool>,
    pub unique: bool,
    pub predicate_sql: Option<String>,
    /// Share of the table's rows a partial index covers (1 for a full index); estimated by
    /// the planner when the index is created (it cannot be computed inside the hook).
    pub covered_fraction: f64,
    /// Size inputs, filled in from pg_stats after parsing.
    pub column_widths: Vec<f64>,
    pub key_ndistinct: Vec<Option<f64>>,
}

impl HypoDescription {
    /// Its size when it covers `tuples` rows of a table of `table_pages` pages.
    pub fn size_estimate(&self, tuples: f64, table_pages: f64) -> SizeEstimate {
        let column_types: Vec<u32> = self.column_types.iter().map(|(t, _)| t.to_u32()).collect();
        let definition = IndexDefinition {
            am: self.am,
            unique: self.unique,
            key_columns: self.key_columns,
            column_types: &column_types,
            column_widths: &self.column_widths,
            key_ndistinct: &self.key_ndistinct,
            server_major: pg_sys::PG_VERSION_NUM / 10000,
        };
        size::estimate_definition(&definition, tuples, table_pages)
    }
}

/// One hypothetical index: its description plus the resolved catalog objects and expression
/// trees the planner needs.
pub struct HypoIndex {
    pub desc: HypoDescription,
    am_oid: pg_sys::Oid,
    collations: Vec<pg_sys::Oid>,
    opfamilies: Vec<pg_sys::Oid>,
    opcintypes: Vec<pg_sys::Oid>,
    /// Owns the expression and predicate trees below (freed with the index).
    memory: pg_sys::MemoryContext,
    /// Index expressions (varno 1), in column order of the zero attnums.
    expressions: *mut pg_sys::List,
    /// Implicit-AND predicate list (varno 1); NIL for a full index.
    predicate: *mut pg_sys::List,
}

impl Drop for HypoIndex {
    fn drop(&mut self) {
        // Null until parsing succeeded: until then `parse_create_index` owns the context.
        if !self.memory.is_null() {
            // SAFETY: `memory` was created for this index alone and nothing else points into
            // it once the index leaves the registry.
            unsafe { pg_sys::MemoryContextDelete(self.memory) };
        }
    }
}

fn cstr(s: *const c_char) -> Option<String> {
    // SAFETY: callers pass NULL or NUL-terminated strings from parse trees / catalogs.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// The average width Postgres assumes for a value of this type (no statistics needed).
pub fn type_width(type_oid: pg_sys::Oid, typmod: i32) -> f64 {
    // SAFETY: a syscache lookup of the type; returns a default for unknown types.
    f64::from(unsafe { pg_sys::get_typavgwidth(type_oid, typmod) })
}

/// Whether `relid` is a partitioned table.
pub fn is_partitioned(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookup by OID; '\0' when no relation has it.
    unsafe { pg_sys::get_rel_relkind(relid) as u8 == pg_sys::RELKIND_PARTITIONED_TABLE }
}
