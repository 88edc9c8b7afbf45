//! The SQL entry points of health: thin functions that read the inputs (`read`), call the pure
//! logic (`pitstop_core::health`) and return rows. `sql/schema/health.sql` puts the views,
//! `name`-typed columns and the documented signatures on top of the `*_raw` ones;
//! `config_advice` has no view and is the SQL function of the same name.

use crate::error::{required, OrReport, PitstopError};
use crate::health::read::{self, btree_facts};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pitstop_core::health::bloat::{self, HeapFacts};
use pitstop_core::health::btree;
use pitstop_core::health::config::{self, Workload};
use pitstop_core::health::host;
use pitstop_core::health::plan::{self, BadThreshold, Thresholds};
use pitstop_core::health::table_bloat::{self, BloatRow, Method};
use pitstop_core::health::vacuum::{self, wraparound_pct};

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// One row per user table: autovacuum's counters, its thresholds for this table, the distance
/// to wraparound, a status and the command that clears it (behind the `vacuum_health` view).
#[pg_extern(stable)]
#[allow(clippy::type_complexity)]
fn vacuum_health_raw() -> TableIterator<
    'static,
    (
        name!(schema, String),
        name!(table_name, String),
        name!(n_live_tup, i64),
        name!(n_dead_tup, i64),
        name!(dead_ratio, f64),
        name!(last_vacuum, Option<TimestampWithTimeZone>),
        name!(last_autovacuum, Option<TimestampWithTimeZone>),
        name!(last_analyze, Option<TimestampWithTimeZone>),
        name!(last_autoanalyze, Option<TimestampWithTimeZone>),
        name!(n_mod_since_analyze, i64),
        name!(n_ins_since_vacuum, i64),
        name!(xid_age, i64),
        name!(wraparound_pct, f64),
        name!(mxid_age, i64),
        name!(freeze_max_age, i64),
        name!(autovacuum_enabled, bool),
        name!(vacuum_threshold, i64),
        name!(analyze_threshold, i64),
        name!(insert_threshold, Option<i64>),
        name!(status, String),
        name!(action, Option<String>),
        name!(reason, Option<String>),
    ),
> {
    let server = read::vacuum_settings();
    let rows = read::tables().into_iter().map(
        move |(facts, [last_vacuum, last_autovacuum, last_analyze, last_autoanalyze])| {
            let a = vacuum::assess(&server, &facts);
            let reason = vacuum::reason(&facts, &a);
            (
                facts.schema,
                facts.table,
                facts.n_live_tup,
                facts.n_dead_tup,
                round(a.dead_ratio, 4),
                last_vacuum,
                last_autovacuum,
                last_analyze,
                last_autoanalyze,
                facts.n_mod_since_analyze,
                facts.n_ins_since_vacuum,
                facts.xid_age,
                round(a.wraparound_pct, 2),
                facts.mxid_age,
                a.limits.freeze_max_age as i64,
                a.limits.autovacuum_enabled,
                // Counts are whole: "more than 250.6" is "more than 250".
                a.limits.vacuum.floor() as i64,
                a.limits.analyze.floor() as i64,
                a.limits.insert.map(|t| t.floor() as i64),
                a.status.label().to_string(),
                a.action,
                reason,
            )
        },
    );
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// One row per database: how far its oldest xid and multixact are from wraparound.
#[pg_extern(stable)]
#[allow(clippy::type_complexity)]
fn database_wraparound_raw() -> TableIterator<
    'static,
    (
        name!(datname, String),
        name!(xid_age, i64),
        name!(wraparound_pct, f64),
        name!(mxid_age, i64),
        name!(mxid_wraparound_pct, f64),
        name!(status, String),
    ),
> {
    let server = read::vacuum_settings();
    let rows = read::databases().into_iter().map(|(datname, xid_age, mxid_age)| {
        let status = vacuum::database_status(xid_age, mxid_age, &server);
        (
            datname,
            xid_age,
            round(wraparound_pct(xid_age), 2),
            mxid_age,
            round(wraparound_pct(mxid_age), 2),
            status.label().to_string(),
        )
    });
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// Bloat rows from statistics, or (exact) from pgstattuple/pgstatindex, which read every page;
/// pitstop's own tables and their indexes only when `include_self`.
fn bloat_rows(exact: bool, include_self: bool) -> Result<Vec<BloatRow>, PitstopError> {
    if !exact {
        return Ok(table_bloat::estimate_rows(
            &read::heap_facts(include_self),
            &btree_facts(include_self),
        ));
    }
    let schema = read::pgstattuple_schema().ok_or(PitstopError::MissingPgstattuple)?;
    let mut rows = Vec::new();
    for table in read::heap_facts(include_self) {
        if let Some(scan) = read::heap_scan(&schema, &table.qualified) {
            let expected = bloat::heap_exact_expected_bytes(&scan, table.fillfactor);
            let facts = HeapFacts { bytes: scan.table_len, ..table };
            rows.push(table_bloat::table_row(&facts, Some(expected), Method::Pgstattuple));
        }
    }
    for index in btree_facts(include_self) {
        if let Some((scan, fillfactor)) = read::btree_scan(&schema, &index.location.qualified_index)
        {
            let expected = btree::btree_exact_expected_bytes(&scan, fillfactor);
            rows.push(table_bloat::index_row(
                &index,
                scan.index_size,
                Some(expected),
                Method::Pgstattuple,
            ));
        }
    }
    table_bloat::sort_rows(&mut rows);
    Ok(rows)
}

/// Table and btree index bloat (behind `table_bloat(...)` and the `table_bloat` view): the
/// relations with at least `min_bloat_pct` % and `min_bloat_bytes` of bloat.
#[pg_extern(stable)]
#[allow(clippy::type_complexity)]
fn table_bloat_raw(
    exact: default!(Option<bool>, false),
    min_bloat_pct: default!(Option<f64>, 20.0),
    min_bloat_bytes: default!(Option<i64>, 10485760),
    include_self: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(schema, String),
        name!(table_name, String),
        name!(index_name, Option<String>),
        name!(kind, String),
        name!(bytes, i64),
        name!(expected_bytes, Option<i64>),
        name!(bloat_bytes, Option<i64>),
        name!(bloat_pct, Option<f64>),
        name!(method, String),
        name!(fix, Option<String>),
    ),
> {
    let exact = required(exact, "exact").or_report();
    let min_pct = required(min_bloat_pct, "min_bloat_pct").or_report();
    let min_bytes = required(min_bloat_bytes, "min_bloat_bytes").or_report();
    let include_self = required(include_self, "include_self").or_report();
    if min_pct.is_nan() || min_pct < 0.0 {
        PitstopError::Negative { name: "min_bloat_pct", value: min_pct.to_string() }.report();
    }
    if min_bytes < 0 {
        PitstopError::Negative { name: "min_bloat_bytes", value: min_bytes.to_string() }.report();
    }
    let listed = bloat_rows(exact, include_self)
        .or_report()
        .into_iter()
        .filter(|row| row.listed(min_pct, min_bytes as f64));
    let rows = listed.map(|row| {
        let bloat = row.bloat();
        (
            row.schema.clone(),
            row.table.clone(),
            row.index.clone(),
            row.kind().to_string(),
            row.bytes as i64,
            row.expected.map(|e| e as i64),
            bloat.map(|b| b.excess() as i64),
            bloat.map(|b| round(b.pct(), 1)),
            row.method.label().to_string(),
            row.fix(),
        )
    });
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// Settings for this host and server under a workload ('web', 'oltp', 'dw', 'mixed'), each
/// with the current value, the suggestion (as ALTER SYSTEM SET takes it) and the reason.
#[pg_extern(stable)]
#[allow(clippy::type_complexity)]
fn config_advice(
    workload: default!(Option<&str>, "'mixed'"),
) -> TableIterator<
    'static,
    (
        name!(name, String),
        name!(current, String),
        name!(suggested, String),
        name!(unit, Option<String>),
        name!(reason, String),
        name!(restart_required, bool),
        name!(differs, bool),
    ),
> {
    let workload = Workload::parse(required(workload, "workload").or_report())
        .map_err(|e| PitstopError::UnknownWorkload(e.0))
        .or_report();
    let (server, data_directory) = read::server();
    let host = host::read_host(data_directory.as_deref());
    let advice = config::advise(workload, &host, &server);
    let current = read::settings(advice.iter().map(|a| a.name).collect());
    let rows = advice
        .iter()
        .filter_map(|a| current.get(a.name).map(|c| config::row(a, c)))
        .map(|r| (r.name, r.current, r.suggested, r.unit, r.reason, r.restart_required, r.differs));
    TableIterator::new(rows.collect::<Vec<_>>())
}

/// The actions scheduled maintenance would take now (behind `maintenance_plan(...)`, which
/// declares the defaults).
#[pg_extern(stable)]
#[allow(clippy::type_complexity)]
fn maintenance_plan_raw(
    vacuum_dead_ratio: Option<f64>,
    vacuum_min_dead: Option<i64>,
    analyze_mod_ratio: Option<f64>,
    reindex_bloat_pct: Option<f64>,
    reindex_min_bytes: Option<i64>,
) -> TableIterator<
    'static,
    (
        name!(priority, i32),
        name!(action, String),
        name!(schema, String),
        name!(relation, String),
        name!(index_name, Option<String>),
        name!(target, String),
        name!(command, String),
        name!(reason, String),
    ),
> {
    let thresholds = Thresholds {
        vacuum_dead_ratio: required(vacuum_dead_ratio, "vacuum_dead_ratio").or_report(),
        vacuum_min_dead: required(vacuum_min_dead, "vacuum_min_dead").or_report(),
        analyze_mod_ratio: required(analyze_mod_ratio, "analyze_mod_ratio").or_report(),
        reindex_bloat_pct: required(reindex_bloat_pct, "reindex_bloat_pct").or_report(),
        reindex_min_bytes: required(reindex_min_bytes, "reindex_min_bytes").or_report(),
    }
    .validate()
    .map_err(|e| match e {
        BadThreshold::OutOfRange { name, value, expected } => {
            PitstopError::OutOfRange { name, value, expected }
        }
        BadThreshold::Negative { name, value } => PitstopError::Negative { name, value },
    })
    .or_report();
    let server = read::vacuum_settings();
    let tables: Vec<_> = read::tables()
        .into_iter()
        .map(|(facts, _)| {
            let a = vacuum::assess(&server, &facts);
            (facts, a)
        })
        .collect();
    let indexes: Vec<BloatRow> =
        // Scheduled maintenance keeps pitstop's own indexes tidy too.
        table_bloat::estimate_rows(&[], &btree_facts(true)).into_iter().filter(|r| r.index.is_some()).collect();
    let rows = plan::plan(&tables, &indexes, &thresholds).into_iter().map(|r| {
        (
            r.action.priority(),
            r.action.label().to_string(),
            r.schema,
            r.relation,
            r.index_name,
            r.target,
            r.command,
            r.reason,
        )
    });
    TableIterator::new(rows.collect::<Vec<_>>())
}
