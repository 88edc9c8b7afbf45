//! The catalog reads behind BRIN candidates: each table's size, write counters and the
//! physical correlation of its analyzed columns (the rule is `candidates::brin_for_usage`).

use crate::pg::spi;
use pgrx::prelude::*;
use pitstop_core::advisor::candidates::{TableLayout, WriteCounts};
use std::collections::BTreeMap;

/// Layouts of the plain tables and materialized views among `relids` (others are left out).
pub fn table_layouts(relids: &[u32]) -> BTreeMap<u32, TableLayout> {
    let oids: Vec<pg_sys::Oid> = relids.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    let mut layouts: BTreeMap<u32, TableLayout> = BTreeMap::new();
    spi::connect(|client| {
        let sql = include_str!("../../../sql/queries/advisor_table_layout.sql");
        let Ok(rows) = client.select(sql, None, &[oids.into()]) else { return };
        for row in rows {
            let Some(relid) = spi::column::<pg_sys::Oid>(&row, "relid") else { continue };
            let layout = layouts.entry(relid.to_u32()).or_insert_with(|| {
                let count = |name| spi::column::<f64>(&row, name).unwrap_or(0.0);
                let writes = WriteCounts {
                    inserted: count("inserted"),
                    updated: count("updated"),
                    deleted: count("deleted"),
                };
                let counted = writes.inserted + writes.updated + writes.deleted > 0.0;
                TableLayout {
                    pages: spi::column(&row, "pages").unwrap_or(0.0),
                    writes: counted.then_some(writes),
                    correlation: BTreeMap::new(),
                }
            });
            if let (Some(attnum), Some(correlation)) =
                (spi::column::<i16>(&row, "attnum"), spi::column::<f64>(&row, "correlation"))
            {
                layout.correlation.insert(attnum, correlation);
            }
        }
    });
    layouts
}
