//! The inputs of the health logic (`pitstop_core::health`), read through SPI (`spi::connect` +
//! `select`: read-only, no transaction id) from the queries in `sql/queries/`, by column name.

use crate::pg::spi::{self, column, extension_object, required};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::{SpiHeapTupleData, SpiTupleTable};
use pitstop_core::health::bloat::{HeapColumn, HeapFacts, HeapScan};
use pitstop_core::health::btree::{BtreeFacts, BtreeScan, IndexLocation, BTREE_DEFAULT_FILLFACTOR};
use pitstop_core::health::config::{CurrentSetting, Server};
use pitstop_core::health::vacuum::{ServerSettings, TableFacts, TableOptions};
use pitstop_core::query::{fill, with_own_relation};
use std::collections::HashMap;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    pgrx::error!("{what}: {e}")
}

/// The rows of `sql` with `args`, handed to `read`; an error is raised naming `what`.
fn select<R>(
    sql: &str,
    args: &[DatumWithOid],
    what: &str,
    read: impl FnOnce(SpiTupleTable<'_>) -> R,
) -> R {
    spi::connect(|client| {
        let table = client.select(sql, None, args).unwrap_or_else(|e| fail(what, e));
        read(table)
    })
}

/// The rows of a query over user relations, `$1` being `include_self` (its `{own_relation:…}`
/// filled in), handed to `read`; an error is raised naming `what`.
pub(crate) fn select_own<R>(
    sql: &str,
    include_self: bool,
    what: &str,
    read: impl FnOnce(SpiTupleTable<'_>) -> R,
) -> R {
    select(&with_own_relation(sql), &[include_self.into()], what, read)
}

pub fn vacuum_settings() -> ServerSettings {
    spi::connect(|client| {
        let mut table = client
            .select(include_str!("../../../sql/queries/vacuum_settings.sql"), Some(1), &[])
            .unwrap_or_else(|e| fail("vacuum settings", e));
        let row = table.next().unwrap_or_else(|| fail("vacuum settings", "no row"));
        let get = |name: &str| column::<f64>(&row, name).unwrap_or(f64::NAN);
        ServerSettings {
            autovacuum: column::<bool>(&row, "autovacuum").unwrap_or(true),
            vacuum_threshold: get("vacuum_threshold"),
            vacuum_scale_factor: get("vacuum_scale_factor"),
            analyze_threshold: get("analyze_threshold"),
            analyze_scale_factor: get("analyze_scale_factor"),
            insert_threshold: get("insert_threshold"),
            insert_scale_factor: get("insert_scale_factor"),
            freeze_max_age: get("freeze_max_age"),
            multixact_freeze_max_age: get("multixact_freeze_max_age"),
        }
    })
}

/// last_vacuum, last_autovacuum, last_analyze, last_autoanalyze.
pub type Stamps = [Option<TimestampWithTimeZone>; 4];

pub fn tables() -> Vec<(TableFacts, Stamps)> {
    let sql = include_str!("../../../sql/queries/vacuum_inputs.sql");
    select(sql, &[], "vacuum_health", |table| {
        table
            .map(|row| {
                let stamp = |name: &str| column::<TimestampWithTimeZone>(&row, name);
                let stamps = [
                    stamp("last_vacuum"),
                    stamp("last_autovacuum"),
                    stamp("last_analyze"),
                    stamp("last_autoanalyze"),
                ];
                let text = |name: &str| column::<String>(&row, name).unwrap_or_default();
                let float = |name: &str| column::<f64>(&row, name);
                let int = |name: &str| column::<i64>(&row, name).unwrap_or(0);
                let facts = TableFacts {
                    schema: text("schema_name"),
                    table: text("table_name"),
                    qualified: text("qualified"),
                    reltuples: float("reltuples").unwrap_or(-1.0),
                    n_live_tup: int("n_live_tup"),
                    n_dead_tup: int("n_dead_tup"),
                    n_mod_since_analyze: int("n_mod_since_analyze"),
                    n_ins_since_vacuum: int("n_ins_since_vacuum"),
                    ever_analyzed: stamps[2].is_some() || stamps[3].is_some(),
                    xid_age: int("xid_age"),
                    mxid_age: int("mxid_age"),
                    options: TableOptions {
                        enabled: column::<bool>(&row, "enabled"),
                        vacuum_threshold: float("vacuum_threshold"),
                        vacuum_scale_factor: float("vacuum_scale_factor"),
                        analyze_threshold: float("analyze_threshold"),
                        analyze_scale_factor: float("analyze_scale_factor"),
                        insert_threshold: float("insert_threshold"),
                        insert_scale_factor: float("insert_scale_factor"),
                        freeze_max_age: float("freeze_max_age"),
                        multixact_freeze_max_age: float("multixact_freeze_max_age"),
                    },
                };
                (facts, stamps)
            })
            .collect()
    })
}

/// (database, xid age, multixact age), oldest first.
pub fn databases() -> Vec<(String, i64, i64)> {
    let sql = include_str!("../../../sql/queries/database_wraparound.sql");
    select(sql, &[], "database_wraparound", |table| {
        table
            .map(|row| {
                (
                    column::<String>(&row, "datname").unwrap_or_default(),
                    column::<i64>(&row, "xid_age").unwrap_or(0),
                    column::<i64>(&row, "mxid_age").unwrap_or(0),
                )
            })
            .collect()
    })
}

/// Every user table (pitstop's own too when `include_self`) with what the heap model needs.
pub fn heap_facts(include_self: bool) -> Vec<HeapFacts> {
    let sql = include_str!("../../../sql/queries/table_bloat_inputs.sql");
    select_own(sql, include_self, "table_bloat", |table| {
        let mut out: Vec<HeapFacts> = Vec::new();
        for row in table {
            let text = |name: &str| column::<String>(&row, name).unwrap_or_default();
            let float = |name: &str| column::<f64>(&row, name);
            let qualified = text("qualified");
            if out.last().map(|f| &f.qualified) != Some(&qualified) {
                out.push(HeapFacts {
                    schema: text("schema_name"),
                    table: text("table_name"),
                    qualified,
                    bytes: float("bytes").unwrap_or(0.0),
                    relpages: float("relpages").unwrap_or(0.0),
                    reltuples: float("reltuples").unwrap_or(-1.0),
                    fillfactor: float("fillfactor").unwrap_or(100.0),
                    columns: Vec::new(),
                });
            }
            out.last_mut().expect("pushed above").columns.push(HeapColumn {
                attlen: column::<i32>(&row, "attlen").unwrap_or(-1),
                align: text("attalign").chars().next().unwrap_or('i'),
                avg_width: float("avg_width"),
                null_frac: float("null_frac").unwrap_or(0.0),
            });
        }
        out
    })
}

/// Every valid plain-column btree index of user tables (with pitstop's own unless
/// `include_self` is false), with what the size model needs (`index_health`, `table_bloat`
/// and `maintenance_plan` all estimate btree bloat from these).
pub fn btree_facts(include_self: bool) -> Vec<BtreeFacts> {
    let sql = include_str!("../../../sql/queries/index_bloat_inputs.sql");
    select_own(sql, include_self, "index_health", |table| {
        let mut out: Vec<BtreeFacts> = Vec::new();
        for row in table {
            let text = |name: &str| column::<String>(&row, name).unwrap_or_default();
            let name = text("index_name");
            if out.last().map(|f| &f.index_name) != Some(&name) {
                out.push(BtreeFacts {
                    index_name: name,
                    table_name: text("table_name"),
                    bytes: column(&row, "bytes").unwrap_or(0.0),
                    tuples: column(&row, "tuples").unwrap_or(0.0),
                    unique: column(&row, "indisunique").unwrap_or(false),
                    key_columns: column::<i32>(&row, "key_columns").unwrap_or(0) as usize,
                    location: IndexLocation {
                        schema: text("schema_name"),
                        table: text("table_relname"),
                        index: text("index_relname"),
                        qualified_table: text("qualified_table"),
                        qualified_index: text("qualified_index"),
                    },
                    widths: Vec::new(),
                    ndistinct: Vec::new(),
                });
            }
            let facts = out.last_mut().expect("pushed above");
            facts.widths.push(column(&row, "width"));
            if facts.ndistinct.len() < facts.key_columns {
                facts.ndistinct.push(column(&row, "n_distinct"));
            }
        }
        out
    })
}

/// The quoted schema pgstattuple is installed in, if it is.
pub fn pgstattuple_schema() -> Option<String> {
    spi::connect(|client| {
        let function = extension_object(client, "pgstattuple", "pgstattuple")?;
        function.strip_suffix(".pgstattuple").map(str::to_string)
    })
}

/// Runs `query` (a pgstattuple function installed in `schema`, named `what` in errors) on
/// `relation`; `read` makes what it needs of the one row (None if the relation vanished
/// meanwhile).
fn pgstattuple_row<T>(
    query: &str,
    what: &str,
    schema: &str,
    relation: &str,
    read: impl FnOnce(&SpiHeapTupleData<'_>) -> Option<T>,
) -> Option<T> {
    let sql = fill(query, "pgstattuple", schema);
    spi::connect(|client| {
        let mut table =
            client.select(&sql, Some(1), &[relation.into()]).unwrap_or_else(|e| fail(what, e));
        read(&table.next()?)
    })
}

/// pgstattuple's counts of one table (None if it vanished meanwhile).
pub fn heap_scan(schema: &str, qualified: &str) -> Option<HeapScan> {
    let query = include_str!("../../../sql/queries/table_bloat_pgstattuple.sql");
    pgstattuple_row(query, "pgstattuple", schema, qualified, |row| {
        Some(HeapScan {
            table_len: column(row, "table_len")?,
            tuple_count: column(row, "tuple_count")?,
            tuple_len: column(row, "tuple_len")?,
        })
    })
}

/// pgstatindex's counts of one btree index and its fillfactor.
pub fn btree_scan(schema: &str, qualified_index: &str) -> Option<(BtreeScan, f64)> {
    let query = include_str!("../../../sql/queries/table_bloat_pgstatindex.sql");
    pgstattuple_row(query, "pgstatindex", schema, qualified_index, |row| {
        let scan = BtreeScan {
            index_size: column(row, "index_size")?,
            internal_pages: column(row, "internal_pages")?,
            leaf_pages: column(row, "leaf_pages")?,
            avg_leaf_density: column(row, "avg_leaf_density").unwrap_or(f64::NAN),
        };
        Some((scan, column(row, "fillfactor").unwrap_or(BTREE_DEFAULT_FILLFACTOR)))
    })
}

/// The live server's facts, and the data directory when the caller may see it.
pub fn server() -> (Server, Option<String>) {
    #[cfg(not(any(feature = "pg17", feature = "pg18")))]
    const CHECKPOINTS: &str = include_str!("../../../sql/queries/config_checkpoints.sql");
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    const CHECKPOINTS: &str = include_str!("../../../sql/queries/config_checkpoints_pg17.sql");
    spi::connect(|client| {
        let mut facts = client
            .select(include_str!("../../../sql/queries/config_server.sql"), Some(1), &[])
            .unwrap_or_else(|e| fail("config_advice", e));
        let row = facts.next().unwrap_or_else(|| fail("config_advice", "no server row"));
        let get = |name: &str| column::<f64>(&row, name).unwrap_or(0.0);
        let mut server = Server {
            max_connections: get("max_connections"),
            database_bytes: get("database_bytes"),
            temp_files: get("temp_files"),
            temp_bytes: get("temp_bytes"),
            max_wal_size_mb: get("max_wal_size_mb"),
            ..Server::default()
        };
        let data_directory: Option<String> = column(&row, "data_directory");
        let mut checkpoints =
            client.select(CHECKPOINTS, Some(1), &[]).unwrap_or_else(|e| fail("config_advice", e));
        let row = checkpoints.next().unwrap_or_else(|| fail("config_advice", "no checkpoint row"));
        server.checkpoints_timed = column(&row, "checkpoints_timed").unwrap_or(0.0);
        server.checkpoints_req = column(&row, "checkpoints_req").unwrap_or(0.0);
        server.checkpoint_stats_since = column(&row, "stats_since").unwrap_or_default();
        (server, data_directory)
    })
}

/// The named settings as pg_settings shows them.
pub fn settings(names: Vec<&str>) -> HashMap<String, CurrentSetting> {
    let sql = include_str!("../../../sql/queries/config_settings.sql");
    select(sql, &[names.into()], "config_advice", |table| {
        table
            .map(|row| {
                let current = CurrentSetting {
                    setting: column(&row, "setting").unwrap_or_default(),
                    unit: column(&row, "unit"),
                    context: column(&row, "context").unwrap_or_default(),
                    shown: column(&row, "shown").unwrap_or_default(),
                };
                (required::<String>(&row, "name"), current)
            })
            .collect()
    })
}
