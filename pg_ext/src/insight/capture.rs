//! Slow-statement capture: decides what to measure and what to keep, and exposes the ring
//! through `pitstop.slow_queries`.

use crate::error::{OrReport, PitstopError};
use crate::gucs;
use crate::insight::ring::{self, EntryMeta, Ring, RingHeader, Slot};
use crate::pg::executor::{self, FinishedQuery, Measure, Observer};
use crate::pg::{backend, shmem, subxact};
use pgrx::prelude::*;
use std::sync::atomic::Ordering;

/// The ring's shared memory.
static RING: shmem::SlotRegion<RingHeader, Slot> = shmem::SlotRegion::new(
    c"pitstop slow query ring",
    gucs::slow_query_buffer,
    RingHeader::new,
    ring::empty_slot,
);

/// The ring, when shared memory is attached (pitstop was preloaded).
fn attached_ring() -> Option<Ring<'static>> {
    RING.get().map(|(header, slots)| Ring::new(header, slots))
}

/// Requests the ring's shared memory and installs the executor hooks (preload only).
pub fn init() {
    RING.install();
    executor::install(Observer { at_start: measure_for, at_end: record_if_slow });
}

fn wants_capture(nesting_level: u32) -> bool {
    gucs::slow_query_ms() >= 0
        && RING.is_attached()
        && (nesting_level == 0 || gucs::capture_nested())
}

fn measure_for(nesting_level: u32) -> Measure {
    match (wants_capture(nesting_level), gucs::capture_analyze()) {
        (false, _) => Measure::Nothing,
        (true, false) => Measure::Duration,
        (true, true) => Measure::DurationAndActuals,
    }
}

fn record_if_slow(query: &FinishedQuery) {
    let threshold_ms = gucs::slow_query_ms();
    if threshold_ms < 0 || (query.nesting_level > 0 && !gucs::capture_nested()) {
        return;
    }
    let Some(ring) = attached_ring() else { return };
    let duration_ms = query.duration_ms();
    if duration_ms < f64::from(threshold_ms) {
        return;
    }
    let captured = subxact::shielded(|| {
        let plan = query.plan_json();
        if plan.is_none() {
            ring.counters().failed.fetch_add(1, Ordering::Relaxed);
        }
        let meta = EntryMeta {
            queryid: query.queryid(),
            userid: backend::current_user().to_u32(),
            dbid: backend::current_database().to_u32(),
            start_time: backend::now() - (duration_ms * 1000.0) as i64,
            duration_ms,
            rows: query.rows(),
            nesting_level: query.nesting_level,
            analyzed: query.has_actuals(),
            plan_bytes: 0,
        };
        ring.record(meta, &query.statement_text(), plan.as_deref());
    });
    if captured.is_none() {
        ring.counters().failed.fetch_add(1, Ordering::Relaxed);
    }
}

fn ring() -> Ring<'static> {
    attached_ring().ok_or(PitstopError::NotPreloaded).or_report()
}

const HIDDEN: &str = "<insufficient privilege>";

/// Raw rows behind the `pitstop.slow_queries` view (which adds role and database names).
/// Other users' statements are hidden unless the caller has pg_read_all_stats.
#[pg_extern(volatile, parallel_restricted)]
#[allow(clippy::type_complexity)]
fn slow_queries_raw() -> TableIterator<
    'static,
    (
        name!(seq, i64),
        name!(started_at, TimestampWithTimeZone),
        name!(duration_ms, f64),
        name!(rows, i64),
        name!(queryid, i64),
        name!(userid, pg_sys::Oid),
        name!(dbid, pg_sys::Oid),
        name!(nesting_level, i32),
        name!(query, String),
        name!(query_truncated, bool),
        name!(plan, Option<String>),
        name!(plan_bytes, i32),
        name!(plan_analyzed, bool),
    ),
> {
    let ring = ring();
    let see_all = backend::can_read_all_stats();
    let me = backend::current_user().to_u32();
    let rows: Vec<_> = ring
        .snapshot()
        .into_iter()
        .map(|c| {
            let visible = see_all || c.meta.userid == me;
            (
                c.seq as i64,
                TimestampWithTimeZone::try_from(c.meta.start_time)
                    .unwrap_or_else(|_| TimestampWithTimeZone::try_from(0).unwrap()),
                c.meta.duration_ms,
                c.meta.rows as i64,
                c.meta.queryid,
                pg_sys::Oid::from(c.meta.userid),
                pg_sys::Oid::from(c.meta.dbid),
                c.meta.nesting_level as i32,
                if visible { c.query } else { HIDDEN.to_string() },
                c.query_truncated,
                if visible { c.plan } else { None },
                c.meta.plan_bytes as i32,
                c.meta.analyzed,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Empties the ring; returns how many entries were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn slow_queries_reset() -> i64 {
    ring().reset() as i64
}

/// Capture health: how many statements were captured, failed, dropped, and the ring's size.
#[pg_extern(volatile, parallel_restricted)]
fn slow_query_stats() -> TableIterator<
    'static,
    (
        name!(captured, i64),
        name!(capture_failures, i64),
        name!(dropped_busy, i64),
        name!(plans_too_large, i64),
        name!(entries, i64),
        name!(capacity, i64),
    ),
> {
    let ring = ring();
    let c = ring.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as i64;
    TableIterator::once((
        load(&c.captured),
        load(&c.failed),
        load(&c.dropped_busy),
        load(&c.plans_too_large),
        ring.snapshot().len() as i64,
        ring.capacity() as i64,
    ))
}
