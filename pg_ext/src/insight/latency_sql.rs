//! Latency histograms per statement: fed by the executor hooks, read through
//! `pitstop.query_latency`, `query_latency_histogram()`, `latency_stats()`.

use crate::error::{OrReport, PitstopError};
use crate::gucs;
use crate::insight::latency::{Row, Slot, Table, TableHeader};
use crate::pg::executor::{self, FinishedQuery, TimingObserver};
use crate::pg::{backend, shmem, statement_key};
use pgrx::prelude::*;
use pitstop_core::latency::{bucket_value, Histogram, Key, ALPHA, MAX_US, MIN_US};
use std::sync::atomic::Ordering;

/// The table's shared memory.
static TABLE: shmem::SlotRegion<TableHeader, Slot> = shmem::SlotRegion::new(
    c"pitstop latency histograms",
    gucs::latency_max_statements,
    |_capacity| TableHeader::new(backend::now()),
    Slot::free,
);

fn attached_table() -> Option<Table<'static>> {
    TABLE.get().map(|(header, slots)| Table::new(header, slots))
}

/// Requests the table's shared memory and the statements' durations (preload only).
pub fn init() {
    TABLE.install();
    executor::observe_timing(TimingObserver { wants, at_end: record });
}

/// Top-level statements only, like pg_stat_statements.track = top.
fn wants(nesting_level: u32) -> bool {
    nesting_level == 0 && TABLE.is_attached()
}

/// Runs at every timed statement's end: plain reads and the table's try-locks, no ERROR.
fn record(query: &FinishedQuery) {
    if query.nesting_level != 0 {
        return;
    }
    let Some(table) = attached_table() else { return };
    let queryid = query.queryid();
    if queryid == 0 {
        table.counters().no_queryid.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let key = Key {
        dbid: backend::current_database().to_u32(),
        userid: statement_key::user_id(),
        queryid,
    };
    table.record(key, query.duration_ms() * 1000.0, statement_key::statement_start());
}

fn table() -> Table<'static> {
    attached_table().ok_or(PitstopError::NotPreloaded).or_report()
}

/// The rows the caller may see: its own statements, everyone's with pg_read_all_stats.
fn visible_rows() -> Vec<Row> {
    let see_all = backend::can_read_all_stats();
    let me = backend::current_user().to_u32();
    table().snapshot().into_iter().filter(|r| see_all || r.key.userid == me).collect()
}

fn timestamp(t: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(t)
        .unwrap_or_else(|_| TimestampWithTimeZone::try_from(0).unwrap())
}

fn ms(h: &Histogram, q: f64) -> f64 {
    h.quantile(q).unwrap_or(0.0) / 1000.0
}

/// Raw rows behind the `pitstop.query_latency` view (which adds role and database names).
#[pg_extern(volatile, parallel_restricted)]
#[allow(clippy::type_complexity)]
fn query_latency_raw() -> TableIterator<
    'static,
    (
        name!(dbid, pg_sys::Oid),
        name!(userid, pg_sys::Oid),
        name!(queryid, i64),
        name!(calls, i64),
        name!(p50, f64),
        name!(p90, f64),
        name!(p95, f64),
        name!(p99, f64),
        name!(p999, f64),
        name!(max, f64),
        name!(since, TimestampWithTimeZone),
    ),
> {
    let rows: Vec<_> = visible_rows()
        .into_iter()
        .map(|r| {
            let h = &r.hist;
            (
                pg_sys::Oid::from(r.key.dbid),
                pg_sys::Oid::from(r.key.userid),
                r.key.queryid,
                h.calls as i64,
                ms(h, 0.5),
                ms(h, 0.9),
                ms(h, 0.95),
                ms(h, 0.99),
                ms(h, 0.999),
                h.max_us / 1000.0,
                timestamp(r.since),
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Each statement's raw histogram (for snapshots and merging): non-empty buckets as
/// parallel arrays of bucket index and count. Bucket i counts durations in
/// (min_ms·γ^(i-1), min_ms·γ^i] and reads as `bucket_ms`; below/above count durations outside.
#[pg_extern(volatile, parallel_restricted)]
#[allow(clippy::type_complexity)]
fn query_latency_histogram() -> TableIterator<
    'static,
    (
        name!(dbid, pg_sys::Oid),
        name!(userid, pg_sys::Oid),
        name!(queryid, i64),
        name!(calls, i64),
        name!(since, TimestampWithTimeZone),
        name!(max_ms, f64),
        name!(below, i64),
        name!(above, i64),
        name!(buckets, Vec<i32>),
        name!(counts, Vec<i64>),
        name!(bucket_ms, Vec<f64>),
    ),
> {
    let rows: Vec<_> = visible_rows()
        .into_iter()
        .map(|r| {
            let sparse = r.hist.sparse();
            (
                pg_sys::Oid::from(r.key.dbid),
                pg_sys::Oid::from(r.key.userid),
                r.key.queryid,
                r.hist.calls as i64,
                timestamp(r.since),
                r.hist.max_us / 1000.0,
                r.hist.below as i64,
                r.hist.above as i64,
                sparse.iter().map(|&(i, _)| i as i32).collect(),
                sparse.iter().map(|&(_, n)| n as i64).collect(),
                sparse.iter().map(|&(i, _)| bucket_value(i) / 1000.0).collect(),
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Empties the latency table; returns how many statements were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn query_latency_reset() -> i64 {
    table().reset(backend::now()) as i64
}

/// The latency table's health: slots used, evictions, missed samples, statements without a
/// queryid, the histogram's range and accuracy.
#[pg_extern(volatile, parallel_restricted)]
#[allow(clippy::type_complexity)]
fn latency_stats() -> TableIterator<
    'static,
    (
        name!(statements, i64),
        name!(capacity, i64),
        name!(recorded, i64),
        name!(evictions, i64),
        name!(missed_samples, i64),
        name!(no_queryid, i64),
        name!(since, TimestampWithTimeZone),
        name!(min_ms, f64),
        name!(max_ms, f64),
        name!(relative_error, f64),
    ),
> {
    let table = table();
    let c = table.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
    let held: u64 = table.snapshot().iter().map(|r| r.hist.calls).sum();
    TableIterator::once((
        table.used() as i64,
        table.capacity() as i64,
        held as i64,
        load(&c.evictions),
        load(&c.missed),
        load(&c.no_queryid),
        timestamp(table.reset_at()),
        MIN_US / 1000.0,
        MAX_US / 1000.0,
        ALPHA,
    ))
}

/// The q-quantile (ms) of a histogram the snapshot job stored (`query_snapshots.latency`), of
/// the calls after `earlier` when given: an older snapshot of the same statement, ignored
/// when the histogram was reset or evicted in between (its `since` differs or calls fell).
/// NULL without calls in the window.
#[pg_extern(immutable, parallel_safe)]
fn latency_quantile(
    histogram: pgrx::JsonB,
    q: f64,
    earlier: default!(Option<pgrx::JsonB>, "NULL"),
) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        PitstopError::OutOfRange { name: "q", value: q.to_string(), expected: "between 0 and 1" }
            .report();
    }
    let read = |json: &serde_json::Value, name| {
        Histogram::from_snapshot(json).ok_or(PitstopError::NotAHistogram(name)).or_report()
    };
    let later = read(&histogram.0, "histogram");
    let window = match earlier {
        Some(earlier) if earlier.0.get("since") == histogram.0.get("since") => {
            let earlier = read(&earlier.0, "earlier");
            if earlier.calls <= later.calls {
                later.since(&earlier)
            } else {
                later
            }
        }
        _ => later,
    };
    window.quantile(q).map(|us| us / 1000.0)
}
