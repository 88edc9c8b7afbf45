//! The inputs of the health logic, read through SPI (`Spi::connect` + `select`: read-only, no
//! transaction id) from the queries in `sql/queries/`.

use crate::advisor::health::with_own_relation;
use crate::health::bloat::{BtreeScan, HeapColumn, HeapFacts, HeapScan, BTREE_DEFAULT_FILLFACTOR};
use crate::health::config::{CurrentSetting, Server};
use crate::health::vacuum::{ServerSettings, TableFacts, TableOptions};
use crate::pg::spi::extension_object;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;
use std::collections::HashMap;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    pgrx::error!("{what}: {e}")
}

fn text(row: &SpiHeapTupleData<'_>, i: usize) -> String {
    row.get(i).ok().flatten().unwrap_or_default()
}

fn float(row: &SpiHeapTupleData<'_>, i: usize) -> Option<f64> {
    row.get(i).ok().flatten()
}

fn int(row: &SpiHeapTupleData<'_>, i: usize) -> i64 {
    row.get(i).ok().flatten().unwrap_or(0)
}

pub fn vacuum_settings() -> ServerSettings {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/vacuum_settings.sql"), Some(1), &[])
            .unwrap_or_else(|e| fail("vacuum settings", e));
        let row = table.first();
        let get = |i: usize| row.get::<f64>(i).ok().flatten().unwrap_or(f64::NAN);
        ServerSettings {
            autovacuum: row.get::<bool>(1).ok().flatten().unwrap_or(true),
            vacuum_threshold: get(2),
            vacuum_scale_factor: get(3),
            analyze_threshold: get(4),
            analyze_scale_factor: get(5),
            insert_threshold: get(6),
            insert_scale_factor: get(7),
            freeze_max_age: get(8),
            multixact_freeze_max_age: get(9),
        }
    })
}

/// last_vacuum, last_autovacuum, last_analyze, last_autoanalyze.
pub type Stamps = [Option<TimestampWithTimeZone>; 4];

pub fn tables() -> Vec<(TableFacts, Stamps)> {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/vacuum_inputs.sql"), None, &[])
            .unwrap_or_else(|e| fail("vacuum_health", e));
        table
            .map(|row| {
                let stamp = |i: usize| row.get::<TimestampWithTimeZone>(i).ok().flatten();
                let stamps = [stamp(9), stamp(10), stamp(11), stamp(12)];
                let facts = TableFacts {
                    schema: text(&row, 1),
                    table: text(&row, 2),
                    qualified: text(&row, 3),
                    reltuples: float(&row, 4).unwrap_or(-1.0),
                    n_live_tup: int(&row, 5),
                    n_dead_tup: int(&row, 6),
                    n_mod_since_analyze: int(&row, 7),
                    n_ins_since_vacuum: int(&row, 8),
                    ever_analyzed: stamps[2].is_some() || stamps[3].is_some(),
                    xid_age: int(&row, 13),
                    mxid_age: int(&row, 14),
                    options: TableOptions {
                        enabled: row.get::<bool>(15).ok().flatten(),
                        vacuum_threshold: float(&row, 16),
                        vacuum_scale_factor: float(&row, 17),
                        analyze_threshold: float(&row, 18),
                        analyze_scale_factor: float(&row, 19),
                        insert_threshold: float(&row, 20),
                        insert_scale_factor: float(&row, 21),
                        freeze_max_age: float(&row, 22),
                        multixact_freeze_max_age: float(&row, 23),
                    },
                };
                (facts, stamps)
            })
            .collect()
    })
}

/// (database, xid age, multixact age), oldest first.
pub fn databases() -> Vec<(String, i64, i64)> {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/database_wraparound.sql"), None, &[])
            .unwrap_or_else(|e| fail("database_wraparound", e));
        table.map(|row| (text(&row, 1), int(&row, 2), int(&row, 3))).collect()
    })
}

/// Every user table (pitstop's own too when `include_self`) with what the heap model needs.
pub fn heap_facts(include_self: bool) -> Vec<HeapFacts> {
    let sql = with_own_relation(include_str!("../../../sql/queries/table_bloat_inputs.sql"));
    Spi::connect(|client| {
        let table = client
            .select(&sql, None, &[include_self.into()])
            .unwrap_or_else(|e| fail("table_bloat", e));
        let mut out: Vec<HeapFacts> = Vec::new();
        for row in table {
            let qualified = text(&row, 3);
            if out.last().map(|f| &f.qualified) != Some(&qualified) {
                out.push(HeapFacts {
                    schema: text(&row, 1),
                    table: text(&row, 2),
                    qualified,
                    bytes: float(&row, 4).unwrap_or(0.0),
                    relpages: float(&row, 5).unwrap_or(0.0),
                    reltuples: float(&row, 6).unwrap_or(-1.0),
                    fillfactor: float(&row, 7).unwrap_or(100.0),
                    columns: Vec::new(),
                });
            }
            let align: String = text(&row, 9);
            out.last_mut().expect("pushed above").columns.push(HeapColumn {
                attlen: row.get::<i32>(8).ok().flatten().unwrap_or(-1),
                align: align.chars().next().unwrap_or('i'),
                avg_width: float(&row, 10),
                null_frac: float(&row, 11).unwrap_or(0.0),
            });
        }
        out
    })
}

/// The quoted schema pgstattuple is installed in, if it is.
pub fn pgstattuple_schema() -> Option<String> {
    Spi::connect(|client| {
        let function = extension_object(client, "pgstattuple", "pgstattuple")?;
        function.strip_suffix(".pgstattuple").map(str::to_string)
    })
}

fn with_schema(sql: &str, schema: &str) -> String {
    sql.replace("@pgstattuple@", schema)
}

/// pgstattuple's counts of one table (None if it vanished meanwhile).
pub fn heap_scan(schema: &str, qualified: &str) -> Option<HeapScan> {
    let sql = with_schema(include_str!("../../../sql/queries/table_bloat_pgstattuple.sql"), schema);
    Spi::connect(|client| {
        let table = client
            .select(&sql, Some(1), &[qualified.into()])
            .unwrap_or_else(|e| fail("pgstattuple", e));
        let row = table.first();
        Some(HeapScan {
            table_len: row.get::<f64>(1).ok().flatten()?,
            tuple_count: row.get::<f64>(2).ok().flatten()?,
            tuple_len: row.get::<f64>(3).ok().flatten()?,
        })
    })
}

/// pgstatindex's counts of one btree index and its fillfactor.
pub fn btree_scan(schema: &str, qualified_index: &str) -> Option<(BtreeScan, f64)> {
    let sql = with_schema(include_str!("../../../sql/queries/table_bloat_pgstatindex.sql"), schema);
    Spi::connect(|client| {
        let table = client
            .select(&sql, Some(1), &[qualified_index.into()])
            .unwrap_or_else(|e| fail("pgstatindex", e));
        let row = table.first();
        let scan = BtreeScan {
            index_size: row.get::<f64>(1).ok().flatten()?,
            internal_pages: row.get::<f64>(2).ok().flatten()?,
            leaf_pages: row.get::<f64>(3).ok().flatten()?,
            avg_leaf_density: row.get::<f64>(4).ok().flatten().unwrap_or(f64::NAN),
        };
        Some((scan, row.get::<f64>(5).ok().flatten().unwrap_or(BTREE_DEFAULT_FILLFACTOR)))
    })
}

/// The live server's facts, and the data directory when the caller may see it.
pub fn server() -> (Server, Option<String>) {
    #[cfg(not(any(feature = "pg17", feature = "pg18")))]
    const CHECKPOINTS: &str = include_str!("../../../sql/queries/config_checkpoints.sql");
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    const CHECKPOINTS: &str = include_str!("../../../sql/queries/config_checkpoints_pg17.sql");
    Spi::connect(|client| {
        let facts = client
            .select(include_str!("../../../sql/queries/config_server.sql"), Some(1), &[])
            .unwrap_or_else(|e| fail("config_advice", e));
        let row = facts.first();
        let get = |i: usize| row.get::<f64>(i).ok().flatten().unwrap_or(0.0);
        let mut server = Server {
            max_connections: get(1),
            database_bytes: get(2),
            temp_files: get(3),
            temp_bytes: get(4),
            max_wal_size_mb: get(6),
            ..Server::default()
        };
        let data_directory: Option<String> = row.get(5).ok().flatten();
        let checkpoints =
            client.select(CHECKPOINTS, Some(1), &[]).unwrap_or_else(|e| fail("config_advice", e));
        let row = checkpoints.first();
        server.checkpoints_timed = row.get::<f64>(1).ok().flatten().unwrap_or(0.0);
        server.checkpoints_req = row.get::<f64>(2).ok().flatten().unwrap_or(0.0);
        server.checkpoint_stats_since = row.get::<String>(3).ok().flatten().unwrap_or_default();
        (server, data_directory)
    })
}

/// The named settings as pg_settings shows them.
pub fn settings(names: Vec<&str>) -> HashMap<String, CurrentSetting> {
    Spi::connect(|client| {
        let table = client
            .select(include_str!("../../../sql/queries/config_settings.sql"), None, &[names.into()])
            .unwrap_or_else(|e| fail("config_advice", e));
        table
            .map(|row| {
                let current = CurrentSetting {
                    setting: text(&row, 2),
                    unit: row.get(3).ok().flatten(),
                    context: text(&row, 4),
                    shown: text(&row, 5),
                };
                (text(&row, 1), current)
            })
            .collect()
    })
}
